"""What ``edgeopt compare`` and ``--target auto`` found: every target's result with its winner's figures, the
parallelism setting each was timed at, and which target won and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edgeopt.evaluate.task_metrics import metric_unit
from edgeopt.types import LatencyStats


@dataclass(frozen=True)
class Setting:
    """One parallelism configuration of a compiled candidate."""

    threads: int | None
    """Intra-op / inference threads; None: the target's own choice."""
    batch: int

    @property
    def label(self) -> str:
        return f"{self.threads if self.threads is not None else 'auto'} thr x b{self.batch}"


@dataclass(frozen=True)
class TargetResult:
    """One target's row of the comparison: its winner, or why it has none."""

    target: str
    status: str
    """``winner``, ``ok``, ``unavailable`` (not installed/no device), ``refused`` (no candidate within
    ``--max-drop``, precision or device kind not offered) or ``failed`` (the search raised)."""
    reason: str = ""
    label: str = ""
    precision: str = ""
    setting: Setting | None = None
    latency: LatencyStats | None = None
    size_bytes: int | None = None
    metric: str | None = None
    reference: float | None = None
    candidate: float | None = None
    drop: float | None = None
    energy_j: float | None = None
    energy_method: str = ""
    runtime: str = ""
    settings_tried: tuple[dict, ...] = ()
    candidates: tuple[dict, ...] = ()
    hint: str = ""
    """What to do about a ``refused`` or ``failed`` target (the hint of its error)."""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["setting"] = asdict(self.setting) if self.setting else None
        out["latency"] = {k: v for k, v in asdict(self.latency).items() if k != "samples"} if self.latency else None
        out["units"] = metric_unit(self.metric) if self.metric else None
        out["settings_tried"] = list(self.settings_tried)
        out["candidates"] = list(self.candidates)
        return out


@dataclass(frozen=True)
class Comparison:
    """Every target's best configuration for one model on one device, timed in one interleaved run."""

    model: str
    device: str
    objective: str
    slo_ms: float | None
    max_drop: float
    results: tuple[TargetResult, ...]
    winner: str | None
    why: str
    warnings: tuple[str, ...] = ()
    timing: dict = field(default_factory=dict)
    device_isa: tuple[str, ...] = ()
    """The device's ISA flags (detected for the host): they decide which int8 kernels each target has."""

    def result(self, target: str) -> TargetResult:
        return next(r for r in self.results if r.target == target)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "device": self.device, "device_isa": list(self.device_isa),
            "objective": self.objective, "slo_ms": self.slo_ms,
            "max_drop": self.max_drop, "winner": self.winner, "why": self.why, "warnings": list(self.warnings),
            "timing": self.timing, "results": [r.to_dict() for r in self.results],
        }
