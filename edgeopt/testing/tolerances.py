"""How far a target's outputs may stray from the fp32 reference, per precision.

The error of one output is ``max|candidate - reference| / max|reference|``: the worst element's
deviation relative to the output's range, so one number reads the same for logits, probabilities or
embeddings. A target declares its own bounds with ``register.add_target(..., tolerances={...})``;
a precision it leaves out gets ``DEFAULT_TOLERANCES`` (matched by name, then by family).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeopt.types import TargetInfo

DEFAULT_TOLERANCES: dict[str, float] = {
    "fp32": 1e-4,
    "fp16": 1e-2,
    "bf16": 5e-2,
    "int8": 0.1,
    "int8-dynamic": 0.1,
    "int4": 0.25,
}
"""Bounds for precisions a target does not declare: fp32 allows reordered sums and fused kernels,
fp16/bf16 their mantissas, int8 the quantization noise of calibrated 8-bit activations."""

_FAMILIES = (("fp32", "fp32"), ("float32", "fp32"), ("fp16", "fp16"), ("float16", "fp16"), ("bf16", "bf16"),
             ("int8", "int8"), ("uint8", "int8"), ("int4", "int4"))


def tolerance_for(target: TargetInfo, precision: str) -> float:
    """The bound for ``precision`` on ``target``: declared, else the default for its name or family.

    Raises ``LookupError`` for a precision that has neither (the plugin must declare one).
    """
    if precision in target.tolerances:
        return float(target.tolerances[precision])
    if precision in DEFAULT_TOLERANCES:
        return DEFAULT_TOLERANCES[precision]
    for prefix, family in _FAMILIES:
        if precision.startswith(prefix):
            return DEFAULT_TOLERANCES[family]
    raise LookupError(
        f"target {target.name!r} declares precision {precision!r} without a tolerance and edgeopt has no default "
        f"for it; pass tolerances={{{precision!r}: ...}} to register.add_target"
    )


def relative_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """``max|candidate - reference| / max|reference|`` in float64 (absolute error when the reference is all 0)."""
    ref = np.asarray(reference, dtype=np.float64)
    cand = np.asarray(candidate, dtype=np.float64)
    if ref.size == 0:
        return 0.0
    if not np.all(np.isfinite(cand)):
        return float("inf")
    scale = float(np.max(np.abs(ref)))
    return float(np.max(np.abs(cand - ref))) / (scale if scale > 0 else 1.0)


def compare_runs(
    reference: Sequence[Sequence[np.ndarray]],
    candidate: Sequence[Sequence[np.ndarray]],
    *,
    names: Sequence[str],
    tolerance: float,
) -> list[str]:
    """Problems with several runs of a candidate against the reference's runs on the same feeds.

    Every run must return as many outputs as the graph has, each shaped like the reference's; the
    error is then ``relative_error`` over each output stacked across runs. Empty when it matches.
    """
    for index, (ref_run, cand_run) in enumerate(zip(reference, candidate, strict=True)):
        if len(cand_run) != len(ref_run):
            return [f"run {index} returned {len(cand_run)} outputs, the graph has {len(ref_run)} ({', '.join(names)})"]
        for name, ref, cand in zip(names, ref_run, cand_run, strict=True):
            if np.shape(cand) != np.shape(ref):
                got, want = list(np.shape(cand)), list(np.shape(ref))
                return [f"run {index}: output {name!r} has shape {got}, the reference {want}"]
    problems = []
    for j, name in enumerate(names):
        ref = np.concatenate([np.asarray(run[j]).reshape(-1) for run in reference])
        cand = np.concatenate([np.asarray(run[j]).reshape(-1) for run in candidate])
        error = relative_error(ref, cand)
        if not error <= tolerance:
            problems.append(f"output {name!r} differs from the reference by {error:.3g} (tolerance {tolerance:g})")
    return problems
