"""Which ncnn builds to try: fp32, and fp16 storage (half the weight bytes; faster where the CPU has F16C/NEON fp16).

ncnn has no batch dimension: a model is converted for one sample and the runner loops over the batch,
so every input must lead with a batch of 1 (or a symbolic batch) and hold float32.
"""

from __future__ import annotations

from edgeopt.plugin import DeviceProfile, Graph, PassSpec, Plan, TargetError, TensorSpec, UnsupportedModelError

TARGET = "ncnn"
PRECISIONS = ("fp32", "fp16")
MAX_SAMPLE_RANK = 4
"""An ncnn Mat holds at most four dimensions (w, h, d, c) per sample."""


def _check(spec: TensorSpec, kind: str) -> None:
    if spec.dtype != "float32":
        raise UnsupportedModelError(
            f"{kind} {spec.name!r} is {spec.dtype}; the ncnn target takes float32 tensors only",
            hint="deploy this model to another target (edgeopt targets), or export it with float32 inputs/outputs",
        )
    if not spec.shape or len(spec.shape) - 1 > MAX_SAMPLE_RANK:
        raise UnsupportedModelError(
            f"{kind} {spec.name!r} has shape {list(spec.shape)}; ncnn needs a leading batch and 1-4 more dims"
        )
    first = spec.shape[0]
    if isinstance(first, int) and first != 1:
        raise UnsupportedModelError(
            f"{kind} {spec.name!r} has a fixed batch of {first}; ncnn converts one sample",
            hint="import the model with a batch of 1 (--input-shape 1x...)",
        )


def plan_candidates(graph: Graph, device: DeviceProfile, precision: str) -> list[Plan]:
    """fp32 and/or fp16 plans for ``precision`` (``auto`` gives both, fp32 first)."""
    if precision != "auto" and precision not in PRECISIONS:
        raise TargetError(
            f"target {TARGET!r} cannot build precision {precision!r}",
            hint=f"choose auto or one of {', '.join(PRECISIONS)}",
        )
    for spec in graph.inputs:
        _check(spec, "input")
    for spec in graph.outputs:
        _check(spec, "output")
    plans = {
        "fp32": Plan(TARGET, "fp32", (PassSpec("pnnx", {"fp16": False}),), label="fp32 (ncnn)", threads=device.cores),
        "fp16": Plan(
            TARGET,
            "fp16",
            (PassSpec("pnnx", {"fp16": True}),),
            label="fp16 storage (ncnn)",
            threads=device.cores,
            notes=("weights stored as fp16; ncnn uses fp16 storage/arithmetic where the CPU supports it",),
        ),
    }
    return list(plans.values()) if precision == "auto" else [plans[precision]]
