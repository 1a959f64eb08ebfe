"""The candidate search of one deploy: evaluate plans, fall back to mixed precision, measure sensitivity.

``run_search`` evaluates the plans in order (the first one always; later ones only while the
``--budget-s`` deadline holds), and when no quantized candidate of the wanted precision is accepted,
ranks the nodes of the closest refused one by sensitivity and re-plans it with the top 1, 2, 4...
nodes kept in fp32 (``candidates.run_fallback``). Results are cached by content (``search_cache``).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from edgeopt.evaluate.sensitivity import (
    SensitivityReport,
    activation_sensitivity,
    quantizable_nodes,
    recompile_sensitivity,
    weight_prior,
)
from edgeopt.search.candidates import FLOAT_PRECISIONS, Candidate, CandidateContext, evaluate_plan, run_fallback
from edgeopt.search.speed_screen import SpeedScreen, speed_key
from edgeopt.types import Plan, Runner

if TYPE_CHECKING:
    pass


PROBE_INDEX = 10_000
"""Work folders of leave-one-fp32 probes are numbered from here, apart from the candidates'."""


@dataclass
class Search:
    """What the candidate search produced."""

    candidates: list[Candidate] = field(default_factory=list)
    runners: dict[int, Runner] = field(default_factory=dict)
    sensitivity: SensitivityReport | None = None
    fallback: dict | None = None
    notes: list[str] = field(default_factory=list)
    planned: int = 0
    """How many of the search's plans were evaluated or skipped (``run_search`` resumes after them)."""
    screen: SpeedScreen | None = None
    """The speed screen of a ``--precision auto`` search, set once the fp32 baseline ran."""
    analysis_s: float = 0.0
    """Seconds spent on sensitivity after the search loop (for the chosen candidate's report)."""

    def add(self, candidate: Candidate, runner: Runner | None) -> None:
        if runner is not None:
            self.runners[len(self.candidates)] = runner
        self.candidates.append(candidate)

    def close(self) -> None:
        for r in self.runners.values():
            r.close()


def analyse(ctx: CandidateContext, candidate: Candidate) -> SensitivityReport:
    """Per-node sensitivity of a quantized candidate: activation SQNR for ONNX models, else leave-one-fp32
    re-compiles of the top nodes by a weight prior (see ``edgeopt.evaluate.sensitivity``). Cached with the candidate."""
    compiled = candidate.compiled
    assert compiled is not None
    stored = ctx.cache.load_json(candidate.plan, "sensitivity") if ctx.cache is not None else None
    if stored is not None:
        return SensitivityReport.from_dict(stored)
    ctx.events.step(f"measuring per-layer sensitivity of {candidate.label}")
    began = time.monotonic()
    if compiled.model_file.endswith(".onnx"):
        report = activation_sensitivity(ctx.graph.path, compiled.model_path, ctx.evaluation, batch=ctx.batch,
                                        label=candidate.label, keep_fp32=candidate.plan.keep_fp32)
    else:
        probes = itertools.count(PROBE_INDEX)

        def measure(keep: tuple[str, ...]) -> float | None:
            plan = replace(candidate.plan, keep_fp32=keep, label=f"{candidate.label} (sensitivity probe)")
            probe, runner = evaluate_plan(ctx, plan, next(probes), origin="probe")
            if runner is not None:
                runner.close()
            return None if probe.status in ("failed", "skipped") else probe.drop

        ops = dict(quantizable_nodes(ctx.graph.path))
        report = recompile_sensitivity(weight_prior(ctx.graph.path), ops, measure, base_drop=candidate.drop,
                                       label=candidate.label)
    report = replace(report, seconds=round(time.monotonic() - began, 3))
    if ctx.cache is not None:
        ctx.cache.store_json(candidate.plan, "sensitivity", report.to_dict())
    return report


def run_search(ctx: CandidateContext, plans: list[tuple], precision: str, *, search: Search | None = None,
               stop_after: int | None = None) -> Search:
    """Evaluate the plans in order, then fall back to mixed precision when no quantized one is accepted.

    ``search`` resumes an earlier call's search after the plans it already consumed; ``stop_after`` evaluates only
    that many plans and returns before any fallback (``--target auto`` ranks targets by their fp32 baselines).
    Every build runs in the context's memory-limited worker, stopped when the call returns."""
    try:
        return _run_search(ctx, plans, precision, search or Search(), stop_after)
    finally:
        ctx.close_builds()


def _run_search(ctx: CandidateContext, plans: list[tuple], precision: str, search: Search,
                stop_after: int | None) -> Search:
    todo = plans[search.planned:] if stop_after is None else plans[search.planned:search.planned + stop_after]
    if search.screen is not None and ctx.bar is not None and ctx.bar.label not in search.screen.measured:
        _time_bar(ctx, search.screen)
    for k, (plan, origin) in enumerate(todo):
        search.planned += 1
        skip = _skip_reason(search, plan, origin)
        if skip is not None:
            search.add(Candidate(plan, "skipped", skip, origin=origin), None)
            continue
        # a stop_after call (the --target auto baselines) ends after its plans, with no fallback: its last build's
        # worker is not kept for the evaluation
        candidate, runner = evaluate_plan(ctx, plan, len(search.candidates), origin=origin,
                                          force=not search.candidates,
                                          last_build=stop_after is not None and k == len(todo) - 1)
        if origin == "baseline":
            candidate = replace(candidate, status="baseline" if candidate.status == "accepted" else candidate.status,
                                origin="plan")
        search.add(candidate, runner)
        if runner is not None and ctx.screen:  # set only for --precision auto (deploy.open_search)
            _screen(ctx, search, candidate, runner)
    if stop_after is not None:
        return search
    # the fallback rescues integer plans: an accepted bf16/fp16 model does not make a refused int8 one moot
    quantized = [c for c in search.candidates if c.plan.precision.startswith("int8")
                 and (precision == "auto" or c.plan.precision == precision)]
    bases = [c for c in quantized if c.status == "refused" and c.compiled is not None]
    if not bases or any(c.status == "accepted" for c in quantized):
        return search
    base = min(bases, key=lambda c: c.drop)
    if ctx.out_of_time():
        search.notes.append(f"no mixed-precision fallback from {base.label}: the search budget was spent")
        return search
    if search.screen is not None and (slow := search.screen.slow.get(speed_key(base.plan))) is not None:
        search.notes.append(f"no mixed-precision fallback from {base.label}: it cannot win on speed ({slow}); "
                            "keeping nodes in fp32 only slows it further")
        return search
    search.sensitivity = analyse(ctx, base)
    ranking = search.sensitivity.ranked()
    if not ranking:
        search.notes.append(f"no mixed-precision fallback from {base.label}: no node could be ranked")
        return search
    ctx.events.step(f"{base.label} exceeds the budget: keeping its most sensitive nodes in fp32")
    steps = run_fallback(ctx, base, ranking, first_index=len(search.candidates))
    for candidate, runner in steps:
        search.add(candidate, runner)
    search.fallback = {
        "base": base.label,
        "base_drop": base.metrics.drop if base.metrics else None,
        "ranking": ranking,
        "steps": [{"label": c.label, "keep_fp32": list(c.plan.keep_fp32), "status": c.status,
                   "drop": c.metrics.drop if c.metrics else None} for c, _ in steps],
        "recovered": any(c.status == "accepted" for c, _ in steps),
    }
    return search


def _skip_reason(search: Search, plan: Plan, origin: str) -> str | None:
    """Why ``plan`` is not built: a variant of an accepted precision, or a plan the speed screen rules out."""
    if origin == "variant" and (won := _accepted_like(search, plan.precision)) is not None:
        return f"{SKIPPED_VARIANT} ({won})"
    return search.screen.skip_reason(plan) if search.screen is not None else None


def _screen(ctx: CandidateContext, search: Search, candidate: Candidate, runner: Runner) -> None:
    """Start the speed screen at the fp32 baseline (timing the other targets' bar against it), then place every
    later candidate that ran."""
    if search.screen is None:
        if candidate.plan.precision != "fp32" or candidate.status not in ("baseline", "accepted"):
            return
        search.screen = SpeedScreen(runner, ctx.timing_feeds, ctx.device, batch=ctx.batch)
        if ctx.bar is not None:
            _time_bar(ctx, search.screen)
        return
    if candidate.status not in ("accepted", "refused"):
        return
    rel = search.screen.observe(candidate.plan, candidate.label, candidate.status == "accepted", runner)
    ctx.events.step(f"speed screen: {candidate.label} runs at {rel:.2f}x fp32")


def _time_bar(ctx: CandidateContext, screen: SpeedScreen) -> None:
    assert ctx.bar is not None
    rel = screen.against(ctx.bar)
    ctx.events.step(f"speed screen: {ctx.bar.label} runs at {rel:.2f}x this target's fp32")


SKIPPED_VARIANT = "skipped: a plan of the same precision was already accepted"
"""Reason of a calibration/granularity variant not built: variants exist to rescue accuracy, not speed."""


def _accepted_like(search: Search, precision: str) -> str | None:
    """The label of an accepted candidate of ``precision`` (the target's own plans), or None."""
    return next((c.label for c in search.candidates if c.status == "accepted" and c.plan.precision == precision), None)


def report_sensitivity(ctx: CandidateContext, search: Search, chosen: Candidate) -> None:
    """Keep the fallback's analysis; else analyse the chosen candidate, or the first quantized one that ran."""
    if search.sensitivity is not None:
        return
    pool = [chosen] + [c for c in search.candidates if c.status in ("accepted", "refused")]
    target = next((c for c in pool if c.plan.precision not in FLOAT_PRECISIONS and c.compiled is not None), None)
    if target is None:
        return
    if ctx.out_of_time():
        search.notes.append("per-layer sensitivity not measured: the search budget was spent")
        return
    began = time.monotonic()
    try:
        search.sensitivity = analyse(ctx, target)
    finally:
        ctx.close_builds()  # leave-one-fp32 probes build in the worker too
    search.analysis_s = time.monotonic() - began
