"""Which ONNX Runtime CPU configurations are worth measuring for a graph on a device.

The int8 settings follow the CPU's integer dot-product support:

- VNNI / AMX (x86) accumulate u8×s8 products in 32 bits: U8S8, full 8-bit weights.
- AVX2 without VNNI multiplies u8×s8 pairs into a saturating int16 (``vpmaddubsw``): full-range
  weights can overflow, so weights get 7 bits (``reduce_range``); U8U8 (no saturation, different
  kernel) is the alternative.
- Arm NEON (dot product, i8mm): S8S8 first, U8S8 as the alternative.
- Unknown ISA: the AVX2 choices, which are safe everywhere.

Dynamic quantization is offered for ``auto`` only when MatMul/Gemm outnumber convolutions: on conv
nets ConvInteger with run-time activation quantization is several times slower than float.

Transformer encoders (``edgeopt.graph.model_family.detect_family``: attention blocks and layer norms in the graph) get
every plan on top of ``transformer-fuse`` (ONNX Runtime's Attention/SkipLayerNorm/BiasGelu fusion), plus
the plain fp32 plan as the unfused alternative. Their static int8 quantizes only MatMul/Gemm: the
attention mask adds float-min values before the Softmax, and calibrating the Add/Softmax ranges on them
would leave every other score in one quantization step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgeopt.plugin import (
    CONV_OPS,
    MATMUL_OPS,
    DeviceProfile,
    DynamicInt8Options,
    Family,
    Graph,
    PassSpec,
    Plan,
    StaticInt8Options,
    TargetError,
    TransformerFusionOptions,
    detect_family,
    int8_family,
    op_histogram,
    physical_cores,
    refuse_int8_without_weighted_ops,
)

TARGET = "cpu"
PRECISIONS = ("fp32", "int8", "int8-dynamic")
FP32_LEVEL = "extended"
"""Offline ORT optimization level for fp32: portable fusions only, no host-specific layouts."""

FUSE = "transformer-fuse"


@dataclass(frozen=True)
class IsaClass:
    """How this CPU family wants int8 laid out."""

    tag: str
    """Short name used in labels: ``VNNI``, ``AMX``, ``AVX2``, ``NEON``, ``generic CPU``."""
    statics: tuple[StaticInt8Options, ...]
    """Static variants, best guess first."""
    dynamic: DynamicInt8Options
    note: str


def isa_class(isa: tuple[str, ...]) -> IsaClass:
    """The int8 choices for a CPU with these ISA flags (see the module docstring for why)."""
    family = int8_family(isa)
    if family in ("AMX", "VNNI"):
        tag = family
        return IsaClass(
            tag,
            (
                StaticInt8Options(per_channel=True, reduce_range=False),
                StaticInt8Options(per_channel=True, reduce_range=False, calibrate_method="percentile"),
                StaticInt8Options(per_channel=False, reduce_range=False),
            ),
            DynamicInt8Options(per_channel=True, reduce_range=False),
            f"{tag} accumulates u8*s8 in int32: U8S8 with full 8-bit weights",
        )
    if family == "NEON":
        return IsaClass(
            "NEON",
            (
                StaticInt8Options(per_channel=True, activation_type="int8", reduce_range=False),
                StaticInt8Options(per_channel=True, activation_type="uint8", reduce_range=False),
                StaticInt8Options(
                    per_channel=True, activation_type="int8", reduce_range=False, calibrate_method="percentile"
                ),
            ),
            DynamicInt8Options(per_channel=True, reduce_range=False),
            "Arm int8 dot products take signed operands: S8S8 first",
        )
    tag = "AVX2" if family == "AVX2" else "generic CPU"
    return IsaClass(
        tag,
        (
            StaticInt8Options(per_channel=True, reduce_range=True),
            StaticInt8Options(per_channel=True, weight_type="uint8", reduce_range=False),
            StaticInt8Options(per_channel=True, reduce_range=True, calibrate_method="percentile"),
        ),
        DynamicInt8Options(per_channel=True, reduce_range=True),
        f"{tag} without VNNI: u8*s8 pairs saturate in int16, so weights use 7 bits (reduce_range) or U8U8",
    )


def static_label(options: StaticInt8Options, tag: str) -> str:
    """A readable name such as ``int8 static per-channel minmax reduce-range (AVX2)``."""
    parts = ["int8 static", "per-channel" if options.per_channel else "per-tensor", options.calibrate_method]
    if options.reduce_range:
        parts.append("reduce-range")
    if (options.activation_type, options.weight_type) != ("uint8", "int8"):
        parts.append(f"{options.activation_type[0]}8{options.weight_type[0]}8")
    return f"{' '.join(parts)} ({tag})"


def dynamic_label(options: DynamicInt8Options, tag: str) -> str:
    """A readable name such as ``int8 dynamic per-channel reduce-range (AVX2)``."""
    parts = ["int8 dynamic", "per-channel" if options.per_channel else "per-tensor"]
    if options.reduce_range:
        parts.append("reduce-range")
    return f"{' '.join(parts)} ({tag})"


def is_prequantized(graph: Graph) -> bool:
    """True for a QDQ graph (QuantizeLinear and DequantizeLinear, e.g. exported after quantization-aware
    training): it is compiled as given, never quantized a second time."""
    ops = op_histogram(graph)
    return ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > 0


def static_kernels(options: StaticInt8Options, *, prefix: str = "") -> str:
    """``Plan.kernels`` of a static int8 plan: ORT picks its integer kernels by operand types (and the weights'
    reduced range); the calibration method and the scales' granularity change only the scales."""
    reduced = " reduce-range" if options.reduce_range else ""
    return f"{prefix}static {options.activation_type}x{options.weight_type}{reduced}"


def prequantized_plan(device: DeviceProfile) -> Plan:
    """The one plan for an already-quantized graph, whatever precision was asked: its QDQ as given (ORT fuses
    it into integer kernels at load)."""
    return Plan(
        TARGET, "int8", (), label="int8 QDQ as given (pre-quantized)", threads=device.cores or physical_cores(),
        notes=("the graph is already quantized (QuantizeLinear/DequantizeLinear, e.g. from QAT): not re-quantized",),
    )


def plan_candidates(graph: Graph, device: DeviceProfile, precision: str) -> list[Plan]:
    """Candidate plans for ``precision`` (``auto`` or one of ``PRECISIONS``), best guess first."""
    if precision != "auto" and precision not in PRECISIONS:
        raise TargetError(
            f"target {TARGET!r} cannot compile precision {precision!r}",
            hint=f"choose auto or one of {', '.join(PRECISIONS)}",
        )
    if is_prequantized(graph):
        return [prequantized_plan(device)]
    family = detect_family(graph.path)
    if family.is_transformer:
        return _transformer_plans(family, device, precision)
    threads = device.cores or physical_cores()
    cls = isa_class(tuple(device.isa))
    fp32 = Plan(
        TARGET, "fp32", (PassSpec("ort-optimize", {"level": FP32_LEVEL}),), label="fp32 (ORT extended)", threads=threads
    )
    statics = [
        Plan(
            TARGET,
            "int8",
            (PassSpec("quantize-static", options.to_params()),),
            label=static_label(options, cls.tag),
            threads=threads,
            notes=(cls.note,),
            kernels=static_kernels(options),
        )
        for options in cls.statics
    ]
    dynamic = Plan(
        TARGET,
        "int8-dynamic",
        (PassSpec("quantize-dynamic", cls.dynamic.to_params()),),
        label=dynamic_label(cls.dynamic, cls.tag),
        threads=threads,
        notes=(cls.note,),
    )
    if precision == "fp32":
        return [fp32]
    ops = op_histogram(graph)
    convs, matmuls = sum(ops[o] for o in CONV_OPS), sum(ops[o] for o in MATMUL_OPS)
    if precision in ("int8", "int8-dynamic"):
        refuse_int8_without_weighted_ops(ops, precision, kernels="ONNX Runtime's int8 kernels")
    if precision == "int8":
        return statics
    if precision == "int8-dynamic":
        return [dynamic]
    if convs + matmuls == 0:
        note = "no Conv/MatMul/Gemm node: int8 has nothing to speed up, only fp32 is planned"
        return [replace(fp32, notes=(note,))]
    plans = [fp32, *statics]
    if matmuls > convs:
        plans.append(dynamic)
    return plans


def _transformer_plans(family: Family, device: DeviceProfile, precision: str) -> list[Plan]:
    """Plans for a transformer encoder: fused fp32, then int8 on the fused graph, and unfused fp32."""
    threads = device.cores or physical_cores()
    cls = isa_class(tuple(device.isa))
    fuse = PassSpec(FUSE, TransformerFusionOptions(num_heads=family.num_heads or 0,
                                                   hidden_size=family.hidden_size or 0).to_params())
    why = f"transformer encoder: {family.evidence}"
    mask = "static int8 on MatMul/Gemm only: the attention mask's float-min values stay out of calibration"
    fused = Plan(TARGET, "fp32", (fuse,), label="fp32 (ORT transformer fusion)", threads=threads, notes=(why,))
    plain = Plan(TARGET, "fp32", (PassSpec("ort-optimize", {"level": FP32_LEVEL}),), label="fp32 (ORT extended)",
                 threads=threads)
    statics = [
        Plan(TARGET, "int8", (fuse, PassSpec("quantize-static", replace(o, op_types=MATMUL_OPS).to_params())),
             label=f"{static_label(o, cls.tag)} + transformer fusion", threads=threads, notes=(why, cls.note, mask),
             kernels=static_kernels(o, prefix="fused MatMul "))
        for o in cls.statics[:2]
    ]
    dynamic = Plan(TARGET, "int8-dynamic", (fuse, PassSpec("quantize-dynamic", cls.dynamic.to_params())),
                   label=f"{dynamic_label(cls.dynamic, cls.tag)} + transformer fusion", threads=threads,
                   notes=(why, cls.note))
    by_precision = {"fp32": [fused, plain], "int8": statics, "int8-dynamic": [dynamic]}
    if precision != "auto":
        return by_precision[precision]
    return [fused, dynamic, *statics, plain]
