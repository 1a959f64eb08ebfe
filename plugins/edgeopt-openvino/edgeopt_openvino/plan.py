"""Which OpenVINO configurations are worth measuring for a graph on a device.

- ``fp32``: the IR with fp32 weights, run with ``INFERENCE_PRECISION_HINT=f32``.
- ``fp16``: the IR with weights stored as fp16 (half the size). Devices that compute in fp16 (GPU,
  NPU, CPUs with AVX512-FP16/AMX-FP16) run it in fp16; other CPUs decompress to f32 at load time.
- ``bf16``: the IR with fp32 weights, run with ``INFERENCE_PRECISION_HINT=bf16``; planned only where OpenVINO
  reports ``BF16`` compute for the device (x86 CPUs with AVX512_BF16 or AMX, Arm CPUs with BF16). OpenVINO's
  own default on such CPUs is bf16; edgeopt offers it as a candidate judged like any other, never silently.
- ``int8``: NNCF post-training quantization, a few variants for the core to judge and time:

  - conv/MLP graphs: first the ``performance`` preset (symmetric) with global min/max activation
    ranges, and on x86 CPUs without VNNI/AMX 7-bit weights in every layer (NNCF's overflow fix: u8*s8
    products saturate in int16 there; measured on the golden models, 8-bit weights err up to 8x more);
    then NNCF's defaults exactly (``performance``, ranges from the mean of per-sample min/max, which
    clips the extremes of individual samples, overflow fix on the first layer only); then ``mixed``
    (asymmetric activations) when the graph has activations other than ReLU (GELU, Swish, Tanh...);
  - attention graphs (``model_type=transformer``): ``mixed`` first (NNCF's recommendation for
    transformers), then ``performance``, both with NNCF's default ranges (outliers in attention make
    global min/max ranges coarse).

Where the device computes bf16, ``auto`` and ``int8`` also offer the first int8 variant with its float
parts (the ops NNCF leaves unquantized: softmax, norms, the output head) in bf16.

A graph counts as attention when it has a Softmax and at least two MatMuls whose both operands are
computed tensors (Q·Kᵀ and scores·V) — read from the op graph, never from node names.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from edgeopt.plugin import (
    WEIGHTED_OPS,
    DeviceProfile,
    Graph,
    PassSpec,
    Plan,
    TargetError,
    int8_family,
    physical_cores,
    refuse_int8_without_weighted_ops,
)
from edgeopt.plugin import computes_bf16 as isa_computes_bf16

from edgeopt_openvino.devices import TargetSpec, computes_bf16, computes_fp16
from edgeopt_openvino.options import NncfInt8Options

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
CONVERT = "ov-convert"
QUANTIZE = "nncf-quantize"
SIGNED_ACTIVATIONS = ("Gelu", "Sigmoid", "HardSigmoid", "HardSwish", "Mish", "Elu", "Selu", "LeakyRelu", "PRelu",
                      "Tanh", "Softplus", "Erf")
"""Activation ops whose outputs are not a ReLU's non-negative range (``Erf`` is how GELU is exported)."""


@dataclass(frozen=True)
class GraphTraits:
    """What about a graph decides the plans: its op histogram and attention pattern."""

    ops: Counter[str]
    activation_matmuls: int
    """MatMuls whose two inputs are both computed (neither an initializer nor a Constant output)."""

    @property
    def weighted(self) -> int:
        return sum(self.ops[o] for o in WEIGHTED_OPS)

    @property
    def signed_activations(self) -> bool:
        """Whether activations other than ReLU's (GELU, Swish, Tanh...) feed later layers: asymmetric
        (``mixed``) activation quantization can then be closer."""
        return any(self.ops[o] for o in SIGNED_ACTIVATIONS)

    @property
    def is_transformer(self) -> bool:
        return self.ops["Softmax"] > 0 and self.activation_matmuls >= 2


def graph_traits(graph: Graph) -> GraphTraits:
    """Op histogram and attention pattern of the graph's top level (weights are not loaded)."""
    import onnx

    model = onnx.load(str(graph.path), load_external_data=False)
    constants = {i.name for i in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    ops = Counter(n.op_type for n in model.graph.node)
    act = sum(
        1
        for n in model.graph.node
        if n.op_type == "MatMul" and len(n.input) == 2 and not (set(n.input) & constants)
    )
    return GraphTraits(ops, act)


def isa_tag(device: DeviceProfile) -> str:
    """``AMX``, ``VNNI``, ``AVX2``, ``NEON`` or ``CPU``: the integer-dot-product family of a CPU profile."""
    return int8_family(device.isa)


def int8_options(spec: TargetSpec, device: DeviceProfile, traits: GraphTraits) -> list[tuple[NncfInt8Options, str]]:
    """The int8 variants with their labels, best guess first (see the module docstring)."""
    where = isa_tag(device) if spec.kind == "cpu" else spec.ov_device
    if traits.is_transformer:
        base = NncfInt8Options(target_device=spec.ov_device, model_type="transformer")
        return [
            (replace(base, preset="mixed"), f"int8 NNCF transformer mixed ({where})"),
            (base, f"int8 NNCF transformer performance ({where})"),
        ]
    saturates = spec.kind == "cpu" and where == "AVX2"
    fix = "enable" if saturates else "first_layer_only"
    bits = " 7-bit weights" if saturates else ""
    best = NncfInt8Options(target_device=spec.ov_device, calibration="minmax", overflow_fix=fix)
    variants = [
        (best, f"int8 NNCF performance per-channel{bits} minmax ({where})"),
        (NncfInt8Options(target_device=spec.ov_device), f"int8 NNCF defaults (performance, mean-min/max) ({where})"),
    ]
    if traits.signed_activations:
        variants.append((replace(best, preset="mixed"), f"int8 NNCF mixed per-channel{bits} minmax ({where})"))
    return variants


def plan_candidates(graph: Graph, spec: TargetSpec, device: DeviceProfile, precision: str) -> list[Plan]:
    """Candidate plans for ``precision`` (``auto`` or one of ``PRECISIONS``) on ``spec``'s device."""
    if precision != "auto" and precision not in PRECISIONS:
        raise TargetError(
            f"target {spec.name!r} cannot compile precision {precision!r}",
            hint=f"choose auto or one of {', '.join(PRECISIONS)}",
        )
    threads = (device.cores or physical_cores()) if spec.kind == "cpu" else None
    where = spec.ov_device
    fp32 = Plan(spec.name, "fp32", (PassSpec(CONVERT, {"compress_to_fp16": False}),), f"fp32 (OpenVINO {where})",
                threads)
    fp16_compute = computes_fp16(spec.ov_device)
    fp16 = Plan(
        spec.name,
        "fp16",
        (PassSpec(CONVERT, {"compress_to_fp16": True}),),
        f"fp16 (OpenVINO {where})" if fp16_compute else f"fp16 weights, f32 compute (OpenVINO {where})",
        threads,
        () if fp16_compute else (f"OpenVINO reports no FP16 compute on {where}: weights are stored in fp16 "
                                 "(half the size) and run in f32",),
    )
    bf16_compute = computes_bf16(spec.ov_device) and (spec.kind != "cpu" or isa_computes_bf16(device.isa))
    bf16 = Plan(spec.name, "bf16", (PassSpec(CONVERT, {"compress_to_fp16": False, "inference_precision": "bf16"}),),
                f"bf16 (OpenVINO {where})", threads)
    if precision == "fp32":
        return [fp32]
    if precision == "fp16":
        return [fp16]
    if precision == "bf16":
        if not bf16_compute:
            raise TargetError(f"no BF16 compute on {where} for device {device.name!r} here",
                              hint="bf16 needs a CPU with AVX512_BF16 or AMX (or Arm BF16); choose fp32, fp16 or int8")
        return [bf16]
    traits = graph_traits(graph)
    if precision == "int8":
        refuse_int8_without_weighted_ops(traits.ops, precision, kernels="OpenVINO's int8 (NNCF) kernels")
    int8 = [
        Plan(
            spec.name,
            "int8",
            (PassSpec(CONVERT, {"compress_to_fp16": False}), PassSpec(QUANTIZE, options.to_params())),
            label,
            threads,
            (f"attention graph ({traits.activation_matmuls} activation MatMuls, Softmax): NNCF transformer scheme",)
            if traits.is_transformer else (),
        )
        for options, label in int8_options(spec, device, traits)
    ]
    if bf16_compute and int8:
        first = int8[0]
        convert = PassSpec(CONVERT, {"compress_to_fp16": False, "inference_precision": "bf16"})
        int8.append(replace(first, passes=(convert, *first.passes[1:]), label=f"{first.label}, bf16 float parts"))
    if precision == "int8":
        return int8
    if traits.weighted == 0:
        note = "no Conv/MatMul/Gemm node: int8 and fp16 have nothing to speed up, only fp32 is planned"
        return [Plan(fp32.target, fp32.precision, fp32.passes, fp32.label, fp32.threads, (note,))]
    return [fp32, *int8, *([bf16] if bf16_compute else []), fp16]
