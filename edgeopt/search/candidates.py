"""Compile, check and time candidate plans; pick the fastest one inside the accuracy budget.

The accuracy guard, the speed guard, the ``--precision auto`` search space and the mixed-precision
fallback live here, in the core, so every target gets them.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import numpy as np

from edgeopt.errors import CompileError, EdgeoptError
from edgeopt.evaluate.judge import check_outputs, evaluate, run_outputs
from edgeopt.evaluate.task_metrics import metric_unit
from edgeopt.measure.harness import measure_interleaved
from edgeopt.plugin.manager import PluginManager
from edgeopt.process.isolation import isolation_enabled
from edgeopt.process.memory_limit import memory_limit_bytes
from edgeopt.search.build_worker import BuildWorker
from edgeopt.search.cache import SearchCache, plan_identity
from edgeopt.search.speed_screen import Bar
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

FLOAT_PRECISIONS = ("fp32",)
"""Precisions that have nothing to fall back from."""


SKIPPED_BUDGET = "skipped: search budget (--budget-s) spent before this candidate"


class Events(Protocol):
    """Where progress and warnings go (the CLI shows them with Rich; the SDK logs them)."""

    def step(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


@dataclass(frozen=True)
class Candidate:
    """One plan after compile, check and (if it ran) timing."""

    plan: Plan
    status: str
    """``accepted``, ``refused`` (accuracy/collapse), ``failed`` (compile/run error), ``baseline``, ``skipped``
    (search budget spent) or ``duplicate`` (the target built the same files as an earlier candidate)."""
    reason: str = ""
    compiled: Compiled | None = None
    metrics: Metrics | None = None
    latency: LatencyStats | None = None
    origin: str = "plan"
    """``plan`` (offered by the target), ``variant`` (the search's calibration/granularity variant) or
    ``fallback`` (mixed precision: the most sensitive nodes kept in fp32)."""
    cached: bool = False
    """Compiled files and evaluation outputs came from the search cache (timing is always fresh)."""
    seconds: float = 0.0
    """Wall time spent compiling and evaluating (or loading from the cache)."""
    build_memory: int | None = None
    """Largest resident memory (bytes) of the build worker's process tree while it built this candidate; None
    when it was not built in the worker (reused from the cache, or built in this process)."""
    error: EdgeoptError | None = field(default=None, compare=False, repr=False)
    """The error a ``failed`` candidate's build or run raised (its ``reason`` is the message)."""
    choice: dict | None = field(default=None, compare=False, repr=False)
    """On the selected candidate only: how it was chosen (``edgeopt.measure.significance.Choice.to_dict``: the latency
    ratios with confidence intervals, and whether it was tied and what broke the tie); the manifest's
    ``decision``."""

    @property
    def label(self) -> str:
        return self.plan.label or self.plan.precision

    @property
    def drop(self) -> float:
        """The metric drop, +inf when not measured."""
        d = self.metrics.drop if self.metrics is not None else None
        return d if d is not None and math.isfinite(d) else math.inf

    def summary(self) -> dict:
        return {
            "label": self.label,
            "precision": self.plan.precision,
            "status": self.status,
            "reason": self.reason,
            "origin": self.origin,
            "keep_fp32": list(self.plan.keep_fp32),
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
            "build_memory_bytes": self.build_memory,
            "latency_p50_s": self.latency.p50 if self.latency else None,
            "latency_p90_s": self.latency.p90 if self.latency else None,
            "metric": self.metrics.metric if self.metrics else None,
            "reference": self.metrics.reference if self.metrics else None,
            "candidate": self.metrics.candidate if self.metrics else None,
            "drop": self.metrics.drop if self.metrics else None,
            "higher_is_better": self.metrics.higher_is_better if self.metrics else None,
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
    cache: SearchCache | None = None
    deadline: float | None = None
    """``time.monotonic()`` after which no further candidate is started (``--budget-s``)."""
    seen: dict[str, str] = field(default_factory=dict)
    """sha256 of each candidate's compiled files -> its label, to spot duplicates."""
    max_memory: int | str | None = None
    """Memory limit of each build (``--max-memory``; ``edgeopt.process.memory_limit``). None: a share of the memory
    available when the first build starts."""
    screen: bool = False
    """Speed-screen a ``--precision auto`` search (``edgeopt.search.speed_screen``); off with ``--exhaustive``."""
    bar: Bar | None = field(default=None, repr=False)
    """The fastest accepted candidate of the targets searched before this one (``--target auto``)."""
    timing_feeds: Sequence[Mapping[str, np.ndarray]] = ()
    """Feeds the screen times candidates on (one batch each)."""
    builder: BuildWorker | None = field(default=None, repr=False)
    """The worker building this target's candidates (``edgeopt.search.build_worker``), started by the first build."""

    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def compile(self, plan: Plan, workdir: Path) -> Compiled:
        """Build ``plan`` in this search's memory-limited worker (see ``edgeopt.search.build_worker``)."""
        if self.builder is None:
            self.builder = BuildWorker(self.pm, self.target, memory_limit=memory_limit_bytes(self.max_memory))
            if not self.builder.bounded and isolation_enabled():
                self.events.warn(f"plugin {self.target.plugin!r} cannot be loaded in a worker process: its builds "
                                 "run in this process, without the --max-memory limit")
        return self.builder.compile(self.graph, plan, self.device, self.calibration, workdir)

    def close_builds(self) -> None:
        """Stop the build worker (a later build starts a new one)."""
        if self.builder is not None:
            self.builder.close()


def _files_digest(compiled: Compiled) -> str:
    from edgeopt.hashing import sha256_file

    h = hashlib.sha256()
    for name in sorted(compiled.files):
        h.update(f"{name}:{sha256_file(compiled.directory / name)};".encode())
    return h.hexdigest()


def judge(ctx: CandidateContext, outputs: Sequence[np.ndarray]) -> tuple[str, str, Metrics | None]:
    """``(status, reason, metrics)`` of a candidate's evaluation outputs against the reference and budget."""
    problem = check_outputs(ctx.reference_outputs, outputs)
    metrics = None
    if all(np.all(np.isfinite(o)) for o in outputs if np.asarray(o).dtype.kind in "fc"):
        try:  # collapsed candidates get figures too (for the report); mismatched shapes cannot
            metrics = evaluate(ctx.reference_outputs, outputs, labels=ctx.labels, metric=ctx.metric,
                               synthetic=ctx.evaluation.synthetic, inputs=ctx.evaluation.arrays)
        except CompileError:
            if not problem:
                raise
    if problem:
        return "refused", problem, metrics
    if metrics is not None and metrics.drop is not None and metrics.drop > ctx.max_drop:
        return "refused", budget_reason(metrics, ctx.max_drop), metrics
    return "accepted", "", metrics


def budget_reason(metrics: Metrics, max_drop: float) -> str:
    """Why a candidate whose outputs pass every check is refused: its drop is over ``max_drop``."""
    return f"{metrics.metric} drop {metrics.drop:.3g} {metric_unit(metrics.metric)} exceeds the budget {max_drop:g}"


def evaluate_plan(
    ctx: CandidateContext, plan: Plan, index: int, *, origin: str = "plan", force: bool = False,
    last_build: bool = False,
) -> tuple[Candidate, Runner | None]:
    """Compile ``plan`` (or reuse it from the cache), run it on the evaluation data, judge it against the
    reference. Returns the runner, still open, for every candidate that ran (accepted or refused) so all of
    them can be timed; ``force`` ignores the search deadline (the fp32 baseline). ``last_build``: no build
    follows, so the build worker (and whatever it started, e.g. a converter process) is stopped as soon as the
    plan is built instead of idling beside the evaluation."""
    label = plan.label or plan.precision
    if not force and ctx.out_of_time():
        return Candidate(plan, "skipped", SKIPPED_BUDGET, origin=origin), None
    began = time.monotonic()
    workdir = ctx.workdir / f"candidate-{index}"
    hit = ctx.cache.load(plan, workdir) if ctx.cache is not None else None
    ctx.events.step(f"{'reusing cached' if hit else 'compiling'} candidate {index}: {label}")
    settings = RunSettings(batch=ctx.batch, threads=ctx.threads)
    runner: Runner | None = None
    common: dict = {"origin": origin, "cached": hit is not None}
    try:
        if hit is not None:
            compiled, outputs = hit.compiled, hit.outputs
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            try:
                compiled = ctx.compile(plan, workdir)
            finally:
                common["build_memory"] = ctx.builder.peaks.get(label) if ctx.builder is not None else None
                if last_build:
                    ctx.close_builds()
        digest = _files_digest(compiled)
        if digest in ctx.seen:  # before evaluating it: the same files give the same outputs
            reason = f"the target built the same files as {ctx.seen[digest]}"
            return Candidate(plan, "duplicate", reason, compiled, seconds=time.monotonic() - began, **common), None
        runner = ctx.pm.runner(compiled, ctx.target, ctx.device, settings)
        if hit is None:
            outputs = run_outputs(runner, ctx.evaluation, batch=ctx.batch)
            if ctx.cache is not None:
                ctx.cache.store(plan, compiled, outputs)
    except EdgeoptError as exc:
        if runner is not None:
            runner.close()
        return Candidate(plan, "failed", exc.message, seconds=time.monotonic() - began, error=exc, **common), None
    ctx.seen[digest] = label
    status, reason, metrics = judge(ctx, outputs)
    return Candidate(plan, status, reason, compiled, metrics, seconds=time.monotonic() - began, **common), runner


def _relabel(label: str, words: tuple[str, ...], new: str) -> str:
    for word in words:
        if word in label:
            return label.replace(word, new, 1)
    return f"{label} [{new}]"


def search_plans(
    pm: PluginManager, graph: Graph, target: TargetInfo, device: DeviceProfile, precision: str, events: Events
) -> list[tuple[Plan, str]]:
    """``(plan, origin)`` to evaluate, best guess first.

    For ``auto``: the target's own ``auto`` plans, then the plans of each precision it lists that ``auto``
    left out (e.g. int8-dynamic on a conv net), then variants of its first calibrated int8 plan with
    per-tensor weight scales and with entropy calibration (the plan's generic ``granularity`` and
    ``calibration`` fields), unless the target already offers those; int8-dynamic after the other int8 plans,
    and the first plan of each precision before the others (``_each_precision_first``). Other precisions: the
    target's plans.
    """
    plans = pm.plan(graph, target, device, precision)
    if precision != "auto":
        return [(p, "plan") for p in plans]
    seen = {repr(plan_identity(p)) for p in plans}
    for extra in target.precisions:
        if extra == "auto" or any(p.precision == extra for p in plans):
            continue
        try:
            more = pm.plan(graph, target, device, extra)
        except EdgeoptError as exc:
            events.warn(f"target {target.name!r} offered no {extra} plan: {exc.message}")
            continue
        for p in more:
            if repr(plan_identity(p)) not in seen:
                plans.append(p)
                seen.add(repr(plan_identity(p)))
    out = [(p, "plan") for p in plans]
    int8 = [p for p in plans if p.precision == "int8"]
    if int8:
        first, labels = int8[0], " ".join(p.label for p in int8)
        if "per-tensor" not in labels:
            label = _relabel(first.label, ("per-channel",), "per-tensor")
            out.append((replace(first, granularity="per-tensor", label=label), "variant"))
        if "entropy" not in labels:
            label = _relabel(first.label, ("minmax", "percentile"), "entropy")
            out.append((replace(first, calibration="entropy", label=label), "variant"))
    dynamic = [item for item in out if item[0].precision == "int8-dynamic"]
    return _each_precision_first([item for item in out if item[0].precision != "int8-dynamic"] + dynamic)


def _each_precision_first(plans: list[tuple[Plan, str]]) -> list[tuple[Plan, str]]:
    """The first plan of each precision family (``int8-dynamic`` is ``int8``'s), float families before integer
    ones and otherwise in the given order, then the rest in the given order: a search cut short by its budget
    has tried every kind of plan before any refinement of one kind, and a float plan (seconds to build, no
    calibration) accepted early sets the bar the speed screen measures the others by."""
    seen: set[str] = set()
    first, rest = [], []
    for item in plans:
        family = item[0].precision.split("-")[0]
        (rest if family in seen else first).append(item)
        seen.add(family)
    first.sort(key=lambda item: item[0].precision.startswith("int"))  # stable: float first
    return first + rest


def fallback_sizes(nodes: int) -> list[int]:
    """How many of the ranked nodes each fallback step keeps in fp32: 1, 2, 4, 8... and finally all but one."""
    sizes = [2**i for i in range(nodes.bit_length()) if 2**i < nodes]
    if nodes > 1 and nodes - 1 not in sizes:
        sizes.append(nodes - 1)
    return sizes


def fallback_label(label: str, keep: Sequence[str]) -> str:
    shown = ", ".join(keep[:2]) + (f" +{len(keep) - 2} more" if len(keep) > 2 else "")
    return f"{label} + fp32 {{{shown}}}"


def run_fallback(
    ctx: CandidateContext, base: Candidate, ranking: Sequence[str], *, first_index: int
) -> list[tuple[Candidate, Runner | None]]:
    """Re-plan ``base`` with its most sensitive nodes kept in fp32, a few more each step (``fallback_sizes``),
    until a step is accepted, gains nothing over the best drop so far, or the search budget runs out."""
    results: list[tuple[Candidate, Runner | None]] = []
    best = base.drop
    for k in fallback_sizes(len(ranking)):
        keep = tuple(ranking[:k])
        plan = replace(base.plan, keep_fp32=keep, label=fallback_label(base.label, keep))
        candidate, runner = evaluate_plan(ctx, plan, first_index + len(results), origin="fallback")
        results.append((candidate, runner))
        if candidate.status in ("accepted", "skipped", "failed", "duplicate") or candidate.drop >= best:
            break
        best = candidate.drop
    return results


def time_candidates(
    candidates: Mapping[str, Runner],
    feeds: Sequence[Mapping[str, np.ndarray]] | Mapping[str, Sequence[Mapping[str, np.ndarray]]],
    *,
    batch: int,
    budget_s: float,
    runs_per_round: int = 1,
    settle_runs: int = 0,
) -> dict[str, LatencyStats]:
    """Interleaved timing of every candidate that ran (and the fp32 baseline) in one run; ``feeds`` is shared
    or per candidate. Across runtimes give ``settle_runs`` (see ``measure_interleaved``)."""
    return measure_interleaved(candidates, feeds, warmup=5, budget_s=budget_s, batch=batch,
                               runs_per_round=runs_per_round, settle_runs=settle_runs)
