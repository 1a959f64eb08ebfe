"""Compile, check and time candidate plans; pick the fastest one inside the accuracy budget.

The accuracy guard and the speed guard live here, in the core, so every target gets them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeopt.errors import AccuracyBudgetExceeded, EdgeoptError
from edgeopt.harness import measure_interleaved
from edgeopt.metrics import check_outputs, evaluate, run_outputs
from edgeopt.plugins import PluginManager
from edgeopt.types import (
    Compiled,
    Dataset,
    DeviceProfile,
    Graph,
    LatencyStats,
    Metrics,
    Plan,
    Runner,
    RunSettings,
    TargetInfo,
)

SLOWER_MARGIN = 1.03
"""A quantized candidate counts as slower than fp32 when its p50 exceeds fp32's by more than this ratio
(3% absorbs timer noise between interleaved rounds)."""


class Events(Protocol):
    """Where progress and warnings go (the CLI shows them with Rich; the SDK logs them)."""

    def step(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


@dataclass(frozen=True)
class Candidate:
    """One plan after compile, check and (if it passed) timing."""

    plan: Plan
    status: str
    """``accepted``, ``refused`` (accuracy/collapse), ``failed`` (compile/run error) or ``baseline``."""
    reason: str = ""
    compiled: Compiled | None = None
    metrics: Metrics | None = None
    latency: LatencyStats | None = None

    def summary(self) -> dict:
        return {
            "label": self.plan.label or self.plan.precision,
            "precision": self.plan.precision,
            "status": self.status,
            "reason": self.reason,
            "latency_p50_s": self.latency.p50 if self.latency else None,
            "latency_p90_s": self.latency.p90 if self.latency else None,
            "metric": self.metrics.metric if self.metrics else None,
            "candidate": self.metrics.candidate if self.metrics else None,
            "drop": self.metrics.drop if self.metrics else None,
            "fidelity": dict(self.metrics.fidelity) if self.metrics else {},
        }


@dataclass
class CandidateContext:
    """Everything candidate evaluation needs, gathered once per deploy."""

    pm: PluginManager
    graph: Graph
    target: TargetInfo
    device: DeviceProfile
    calibration: Dataset
    evaluation: Dataset
    reference_outputs: Sequence[np.ndarray]
    labels: np.ndarray | None
    metric: str | Callable | None
    max_drop: float
    batch: int
    threads: int | None
    workdir: Path
    events: Events


def evaluate_plan(ctx: CandidateContext, plan: Plan, index: int) -> tuple[Candidate, Runner | None]:
    """Compile ``plan``, run it on the evaluation data, and judge it against the reference."""
    label = plan.label or plan.precision
    ctx.events.step(f"compiling candidate {index}: {label}")
    workdir = ctx.workdir / f"candidate-{index}"
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        compiled = ctx.pm.compile(ctx.graph, plan, ctx.target, ctx.device, ctx.calibration, workdir)
        runner = ctx.pm.runner(compiled, ctx.target, ctx.device, RunSettings(batch=ctx.batch, threads=ctx.threads))
        outputs = run_outputs(runner, ctx.evaluation, batch=ctx.batch)
    except EdgeoptError as exc:
        return Candidate(plan, "failed", f"{exc.message}"), None
    problem = check_outputs(ctx.reference_outputs, outputs)
    if problem:
        runner.close()
        return Candidate(plan, "refused", problem, compiled), None
    metrics = evaluate(
        ctx.reference_outputs,
        outputs,
        labels=ctx.labels,
        metric=ctx.metric,
        synthetic=ctx.evaluation.synthetic,
    )
    if metrics.drop is not None and metrics.drop > ctx.max_drop:
        runner.close()
        reason = f"{metrics.metric} drop {metrics.drop:.3g} exceeds the budget {ctx.max_drop:g}"
        return Candidate(plan, "refused", reason, compiled, metrics), None
    return Candidate(plan, "accepted", "", compiled, metrics), runner


def time_candidates(
    candidates: Mapping[str, Runner], feeds: Sequence[Mapping[str, np.ndarray]], *, batch: int, budget_s: float
) -> dict[str, LatencyStats]:
    """Interleaved timing of every accepted candidate (and the fp32 baseline) in one run."""
    return measure_interleaved(candidates, feeds, warmup=5, budget_s=budget_s, batch=batch)


@dataclass(frozen=True)
class Selection:
    chosen: Candidate
    warnings: tuple[str, ...]


def select(candidates: Sequence[Candidate], *, precision: str, force_precision: bool, max_drop: float) -> Selection:
    """The fastest accepted candidate of the requested precision, guarded against being slower than fp32."""
    accepted = [c for c in candidates if c.status in ("accepted", "baseline") and c.latency is not None]
    wanted = [c for c in accepted if precision == "auto" or c.plan.precision == precision]
    if not wanted:
        tried = [c for c in candidates if precision == "auto" or c.plan.precision == precision]
        judged = [c for c in tried if c.metrics is not None and c.metrics.drop is not None]
        if judged:
            best = min(judged, key=lambda c: c.metrics.drop)  # type: ignore[union-attr]
            detail = (
                f"the closest was {best.plan.label or best.plan.precision} with {best.metrics.metric} drop "  # type: ignore[union-attr]
                f"{best.metrics.drop:.3g}"  # type: ignore[union-attr]
            )
        else:
            reasons = "; ".join(f"{c.plan.label or c.plan.precision}: {c.reason}" for c in tried if c.reason)
            detail = reasons or "no candidate could be built"
        raise AccuracyBudgetExceeded(
            f"no {precision} candidate stays within --max-drop {max_drop:g}: {detail}",
        )
    best = min(wanted, key=lambda c: c.latency.p50)  # type: ignore[union-attr]
    warnings: list[str] = []
    fp32 = next((c for c in accepted if c.plan.precision == "fp32"), None)
    if fp32 is not None and best is not fp32 and best.plan.precision != "fp32":
        ratio = best.latency.p50 / fp32.latency.p50  # type: ignore[union-attr]
        if ratio > SLOWER_MARGIN:
            label = best.plan.label or best.plan.precision
            if force_precision:
                warnings.append(
                    f"{label} measured {ratio:.2f}x slower than fp32 on this device; shipping it because "
                    "--force-precision was given"
                )
            else:
                warnings.append(
                    f"{label} measured {ratio:.2f}x slower than fp32 on this device; shipping fp32 instead "
                    "(use --force-precision to ship the slower model)"
                )
                best = fp32
    if best.status == "baseline":
        best = replace(best, status="accepted")
    return Selection(best, tuple(warnings))
