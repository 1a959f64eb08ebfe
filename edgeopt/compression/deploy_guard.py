"""What a deploy checks around compression: the accuracy budget it spends, and whether the target gains speed.

``compress_for_deploy`` charges the compression's metric drop to ``--max-drop`` (the deploy refuses when the
compression alone exceeds it) and hands the target's search only what is left, so the shipped model stays
within ``--max-drop`` of the *uncompressed* model. ``speedup_warnings`` says plainly when a pruning kind
gains nothing on the chosen target (``TargetInfo.compression_speedups``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from edgeopt.compression.spec import CompressionSpec
from edgeopt.compression.target_timing import STAGE_PATHS
from edgeopt.errors import AccuracyBudgetExceeded
from edgeopt.types import TargetInfo

SPEEDUP_KIND = {"structured": "structured", "unstructured": "unstructured", "unstructured-global": "unstructured",
                "2:4": "2:4"}
"""Pruning kind (``PruneSpec.kind``) → the name a target declares in ``TargetInfo.compression_speedups``."""


def _speedup_kind(spec: CompressionSpec | None) -> str | None:
    return SPEEDUP_KIND[spec.prune.kind] if spec is not None and spec.prune is not None else None


def speedup_warnings(spec: CompressionSpec | None, target: TargetInfo, every: Sequence[TargetInfo]) -> list[str]:
    """Warnings for a pruning kind ``target`` does not declare it turns into speed (empty when it does).

    ``every``: all targets, to name those that do."""
    kind = _speedup_kind(spec)
    if kind is None or kind in target.compression_speedups:
        return []
    assert spec is not None and spec.prune is not None
    others = sorted(t.name for t in every if kind in t.compression_speedups)
    where = f"Targets that declare it: {', '.join(others)}" if others else "No installed target declares it"
    if kind == "structured":
        return [f"--prune {spec.prune.label}: target {target.name!r} does not declare that it runs channel-pruned "
                f"models faster ({where}); the smaller dense model is still what is measured and shipped"]
    return [
        f"--prune {spec.prune.label} speeds nothing up on target {target.name!r} and shrinks nothing: the pruned "
        "weights are zeros inside dense tensors, so the model runs the same kernels and the ONNX file keeps its size "
        f"(zeros are stored like any other weight; only a zip of the artifact gets smaller). {where}; for speed "
        f"on {target.name!r} use --prune structured:RATIO"
    ]


def charge_budget(record: dict, *, max_drop: float, metric: object) -> dict:
    """Charge the compression's metric drop (``record["summary"]["metric_drop"]``) to ``max_drop``.

    Returns ``record`` with ``budget`` (``max_drop``, ``compression_drop``, ``target_max_drop``) and a note in
    ``warnings``. Raises ``AccuracyBudgetExceeded`` when the compression alone loses more than ``max_drop``.
    A ``metric`` other than the compression's own (accuracy for integer labels, MSE for float ones) is not
    charged, only noted: its units differ."""
    stages = record.get("stages") or []
    drop = (record.get("summary") or {}).get("metric_drop")
    if not stages or drop is None:
        return record
    first, last = stages[0], stages[-1]
    name = first.get("metric_name", "accuracy")
    unit = " points" if name == "accuracy" else ""
    said = (f"compression: {name} {first['metric']:.2f} → {last['metric']:.2f} on the evaluation data "
            f"({'drop' if drop >= 0 else 'gain'} {abs(drop):.2f}{unit})")
    if isinstance(metric, str) and metric != name or callable(metric):
        note = (f"{said}; not charged to --max-drop ({metric!s} has other units): the target's check compares "
                "against the compressed model")
        return {**record, "warnings": [*record.get("warnings", []), note]}
    if drop > max_drop:
        raise AccuracyBudgetExceeded(
            f"{said} exceeds --max-drop {max_drop:g}; nothing was written",
            hint="fine-tune longer (--epochs), add --distill, prune less, or raise --max-drop to accept the loss",
        )
    left = min(max_drop, max_drop - drop)
    note = (f"{said} uses {max(drop, 0.0):.2f} of --max-drop {max_drop:g}; the target's accuracy check compares "
            f"against the compressed model with the {left:.2f}{unit} left")
    return {**record, "budget": {"max_drop": max_drop, "compression_drop": drop, "target_max_drop": left},
            "warnings": [*record.get("warnings", []), note]}


def target_request(request: Any, record: Mapping[str, Any] | None) -> Any:
    """``request`` with ``max_drop`` set to what the compression left for the target (unchanged without one)."""
    budget = (record or {}).get("budget")
    return replace(request, max_drop=budget["target_max_drop"]) if budget else request


def with_deployed(record: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict:
    """``record`` plus ``deployed``: the shipped model's metric and its drop against the uncompressed model.
    Drops the deploy-time stage paths (``target_timing.STAGE_PATHS``)."""
    record = {k: v for k, v in record.items() if k != STAGE_PATHS}
    stages = record.get("stages") or []
    value = metrics.get("candidate")
    if not stages or value is None or metrics.get("metric") != stages[0].get("metric_name"):
        return record
    original = stages[0]["metric"]
    drop = original - value if metrics.get("higher_is_better", True) else value - original
    return {**record, "deployed": {"metric": value, "drop_vs_uncompressed": drop}}


def calibration_from_train(request: Any) -> Any:
    """``request`` with its compression's ``--train`` data as calibration data when no ``--calib`` was given."""
    spec = getattr(request, "compression", None)
    if request.calib is not None or spec is None or not spec.active or spec.train is None:
        return request
    return replace(request, calib=spec.train)
