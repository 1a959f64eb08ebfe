"""Which TFLite builds are worth measuring, per target.

``tflite`` (LiteRT on a CPU): ``fp32``; ``int8`` (full integer: int8 weights and activations, int8
model I/O, ai-edge-quantizer ``static_wi8_ai8`` calibrated on the deploy's calibration data);
``int8-dynamic`` (int8 weights, activations quantized per inference); ``fp16`` (fp16 weights, fp32
compute). ``auto`` offers all four, fp32 first; the core judges and times them.

``edgetpu`` (Coral): ``int8`` only — full integer, static shapes, batch 1, as the Edge TPU requires.
Its plan carries the Edge TPU runtime version the compatibility report judges against.
"""

from __future__ import annotations

from edgeopt.plugin import DeviceProfile, Graph, PassSpec, Plan, TargetError

from edgeopt_edgetpu.edgetpu_ops import LATEST_RUNTIME

TFLITE, EDGETPU = "tflite", "edgetpu"
TFLITE_PRECISIONS = ("fp32", "int8", "int8-dynamic", "fp16")
EDGETPU_PRECISIONS = ("int8",)
CONVERT = "litert-convert"
QUANTIZE = "litert-quantize"
EDGETPU_COMPILE = "edgetpu-compile"
CONVERTER = "onnx2torch+litert-torch"
RECIPES = {"int8": "static_wi8_ai8", "int8-dynamic": "dynamic_wi8_afp32", "fp16": "weight_only_fp16"}
LABELS = {
    "fp32": "fp32 (LiteRT CPU)",
    "int8": "int8 full-integer, int8 I/O (LiteRT CPU)",
    "int8-dynamic": "int8 dynamic-range weights (LiteRT CPU)",
    "fp16": "fp16 weights, fp32 compute (LiteRT CPU)",
}


def precisions_for(target: str) -> tuple[str, ...]:
    return EDGETPU_PRECISIONS if target == EDGETPU else TFLITE_PRECISIONS


def _plan(target: str, precision: str, *, runtime: int = LATEST_RUNTIME) -> Plan:
    passes = [PassSpec(CONVERT, {"converter": CONVERTER})]
    if precision != "fp32":
        params: dict = {"recipe": RECIPES[precision]}
        if precision == "int8":
            params["io"] = "int8"
        passes.append(PassSpec(QUANTIZE, params))
    label = LABELS[precision]
    if target == EDGETPU:
        passes.append(PassSpec(EDGETPU_COMPILE, {"runtime": runtime}))
        label = f"int8 full-integer for the Edge TPU (runtime {runtime})"
    return Plan(target, precision, tuple(passes), label, threads=None)


def plan_candidates(graph: Graph, target: str, device: DeviceProfile, precision: str) -> list[Plan]:
    """Candidate plans for ``precision`` (``auto`` or one of the target's precisions)."""
    offered = precisions_for(target)
    if precision != "auto" and precision not in offered:
        raise TargetError(f"target {target!r} cannot compile precision {precision!r}",
                          hint=f"choose auto or one of {', '.join(offered)}")
    wanted = offered if precision == "auto" else (precision,)
    return [_plan(target, p) for p in wanted]
