"""Which GPU configurations are worth measuring for a graph: fp32, fp16 and (with TensorRT) int8.

- ``fp32``: the CUDA EP with TF32 off, so every product is a true fp32 product.
- ``tf32``: fp32 weights and activations, MatMul/Conv on TF32 tensor cores (operands rounded to 10-bit
  mantissas, fp32 accumulation): the CUDA EP with ``use_tf32``, and TensorRT with the fp32 model
  (TensorRT allows TF32 for fp32 layers by default; ONNX Runtime does not expose turning that off).
- ``fp16``: the model converted by onnxconverter-common (fp32 I/O, unsafe ops blocked; see ``fp16.py``)
  on the CUDA EP; and the fp32 model with TensorRT's ``trt_fp16_enable`` (TensorRT picks fp16 per layer).
- ``int8`` only with the TensorRT EP (the CUDA EP has no int8 convolution kernels worth having): QDQ
  from the core's static quantizer with what TensorRT's explicit quantization wants — int8 activations
  and int8 weights, symmetric (zero point 0), per-channel weights, full 8-bit range — then TensorRT with
  ``trt_int8_enable`` and, for the layers left in float, fp16 (first) or fp32.

Every plan ends with an ``ep-config`` pass that records the provider settings. Inputs with a dynamic
batch dimension get a TensorRT optimization profile (min 1, opt ``OPT_BATCH``, max ``MAX_BATCH``);
CUDA graphs are planned only for static shapes.
"""

from __future__ import annotations

from edgeopt.plugin import DeviceProfile, Graph, PassSpec, Plan, StaticInt8Options, TargetError

from edgeopt_cuda.config import EpConfig, TrtProfile
from edgeopt_cuda.fp16 import Fp16Options

TARGET = "cuda"
PRECISIONS = ("fp32", "tf32", "fp16", "int8")
MAX_BATCH = 32
"""Largest batch a dynamic-batch TensorRT engine is built for."""
OPT_BATCH = 1
"""Batch TensorRT tunes its kernels for."""

INT8_TENSORRT = (
    StaticInt8Options(
        per_channel=True, activation_type="int8", weight_type="int8", symmetric_activation=True, reduce_range=False
    ),
    StaticInt8Options(
        per_channel=True,
        activation_type="int8",
        weight_type="int8",
        symmetric_activation=True,
        reduce_range=False,
        calibrate_method="percentile",
    ),
)
"""Static QDQ settings TensorRT's explicit quantization accepts, best guess first."""


def trt_profiles(
    graph: Graph, *, max_batch: int = MAX_BATCH, opt_batch: int = OPT_BATCH
) -> tuple[tuple[TrtProfile, ...], str | None]:
    """TensorRT profiles for inputs whose only dynamic dimension is the batch, and a note when some
    input has other dynamic dimensions (then no explicit profile: TensorRT builds per shape range met)."""
    profiles = []
    for spec in graph.inputs:
        if spec.is_static:
            continue
        rest = spec.shape[1:]
        if not spec.shape or not all(isinstance(d, int) and d > 0 for d in rest):
            return (), (
                f"input {spec.name!r} has dynamic dimensions besides the batch ({list(spec.shape)}): no TensorRT "
                "optimization profile is planned; TensorRT builds an engine for the shapes it meets"
            )
        dims = tuple(int(d) for d in rest)
        profiles.append(TrtProfile(spec.name, (1, *dims), (opt_batch, *dims), (max_batch, *dims)))
    return tuple(profiles), None


def _static(graph: Graph) -> bool:
    return all(spec.is_static for spec in graph.inputs)


def _ep(config: EpConfig) -> PassSpec:
    return PassSpec("ep-config", config.to_params())


def int8_label(options: StaticInt8Options, fallback: str) -> str:
    return (
        f"int8 QDQ {'per-channel' if options.per_channel else 'per-tensor'} {options.calibrate_method} "
        f"symmetric, {fallback} fallback (TensorRT)"
    )


def plan_candidates(
    graph: Graph, device: DeviceProfile, precision: str, *, tensorrt: bool, tensorrt_reason: str = ""
) -> list[Plan]:
    """Candidate plans for ``precision`` (``auto`` or one of ``PRECISIONS``), fp32 first."""
    if device.kind != "gpu":
        raise TargetError(
            f"target {TARGET!r} runs on GPU device profiles, and {device.name!r} is a {device.kind}",
            hint="pass a GPU profile with --device (run `edgeopt devices`), e.g. nvidia-h100",
        )
    if precision != "auto" and precision not in PRECISIONS:
        raise TargetError(
            f"target {TARGET!r} cannot compile precision {precision!r}",
            hint=f"choose auto or one of {', '.join(PRECISIONS)}",
        )
    if precision == "int8" and not tensorrt:
        raise TargetError(
            f"int8 on target {TARGET!r} needs ONNX Runtime's TensorRT execution provider: "
            f"{tensorrt_reason or 'absent'}",
            hint="install TensorRT 10 for CUDA 13 (docs/gpu.md), or choose fp16",
        )
    static = _static(graph)
    profiles, profile_note = trt_profiles(graph)
    graph_note = () if static else ("dynamic input shapes: CUDA graphs are off (they replay fixed shapes only)",)
    trt_notes = graph_note + ((profile_note,) if profile_note else ())
    if profiles:
        shown = "; ".join(f"{p.name} min {list(p.min)} opt {list(p.opt)} max {list(p.max)}" for p in profiles)
        trt_notes += (f"TensorRT optimization profile: {shown}",)

    fp32 = Plan(TARGET, "fp32", (_ep(EpConfig(cuda_graph=static)),), label="fp32 (CUDA EP, TF32 off)", notes=graph_note)
    tf32 = Plan(
        TARGET,
        "tf32",
        (_ep(EpConfig(cuda_graph=static, tf32=True)),),
        label="tf32 tensor cores (CUDA EP use_tf32)",
        notes=(*graph_note, "TF32 rounds MatMul/Conv operands to 10-bit mantissas, accumulating in fp32"),
    )
    fp16 = Plan(
        TARGET,
        "fp16",
        (PassSpec("fp16-convert", Fp16Options().to_params()), _ep(EpConfig(cuda_graph=static))),
        label="fp16 converted, fp32 I/O (CUDA EP)",
        notes=graph_note,
    )
    plans = {"fp32": [fp32], "tf32": [tf32], "fp16": [fp16], "int8": []}
    if tensorrt:
        trt = EpConfig(provider="tensorrt", cuda_graph=static, profiles=profiles)
        plans["tf32"].append(
            Plan(
                TARGET,
                "tf32",
                (_ep(trt),),
                label="fp32 model on TensorRT (TF32 allowed, TensorRT's default)",
                notes=trt_notes,
            )
        )
        plans["fp16"].append(
            Plan(
                TARGET,
                "fp16",
                (_ep(EpConfig(provider="tensorrt", fp16=True, cuda_graph=static, profiles=profiles)),),
                label="fp16 by TensorRT per layer (trt_fp16_enable)",
                notes=trt_notes,
            )
        )
        for options, fp16_fallback in ((INT8_TENSORRT[0], True), (INT8_TENSORRT[1], True), (INT8_TENSORRT[0], False)):
            config = EpConfig(provider="tensorrt", int8=True, fp16=fp16_fallback, cuda_graph=static, profiles=profiles)
            plans["int8"].append(
                Plan(
                    TARGET,
                    "int8",
                    (PassSpec("quantize-static", options.to_params()), _ep(config)),
                    label=int8_label(options, "fp16" if fp16_fallback else "fp32"),
                    notes=trt_notes,
                )
            )
    if precision == "auto":
        return [*plans["fp32"], *plans["tf32"], *plans["fp16"], *plans["int8"]]
    return plans[precision]
