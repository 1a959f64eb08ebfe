"""``--target auto``'s searches, one target after another, fastest fp32 baseline first.

Each target's fp32 baseline is built and evaluated first, and the baselines are timed against each other in
one short interleaved run. The targets are then searched in that order (baselines near the fastest ordered by
their build time), each one given the fastest accepted
candidate of those before it (``speed_screen.Bar``): a plan that cannot beat it is not built. Searching the
fastest runtime first makes that bar tight early, so slower runtimes are screened hardest. Each target's
candidates are timed right after its search and closed, except the candidate that becomes the next bar: at
most one target's runners, the waiting baselines and the bar are open at a time.

Without the screen (``--exhaustive``, or a fixed precision) the targets are searched in the order given.
``--budget-s`` bounds the baselines and all the targets' searches together (the baselines always run; the
searches get at least a third of the budget after them); each target may use up to ``2 / (k + 1)`` of what
is left when its turn comes, ``k`` the targets still to search (``_share``), so the first one cannot starve
the rest.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

from edgeopt.errors import EdgeoptError
from edgeopt.pipeline.request import DeployRequest
from edgeopt.pipeline.stages import Prepared, TargetSearch, feeds_for_batch, open_search, time_searches
from edgeopt.plugin.manager import PluginManager
from edgeopt.search.candidates import Events, time_candidates
from edgeopt.search.speed_screen import Bar
from edgeopt.types import DeviceProfile, Runner, TargetInfo

RANK_BUDGET_S = 0.8
"""Seconds of timed runs per baseline when ranking the targets."""
MIN_SEARCH_SHARE = 1 / 3
"""Share of ``--budget-s`` the searches get after the baselines however long those took."""
NEAR_FASTEST = 1.15
"""Baselines within this ratio of the fastest rank together, the target whose baseline built and evaluated
fastest first (a short ranking run cannot tell them apart; build cost can: a converter that takes 20 s per
candidate spends a budget that another target's 3 s builds would stretch over many)."""

Failed = Callable[[str, EdgeoptError], None]


def search_targets(request: DeployRequest, prepared: Prepared, usable: Sequence[TargetInfo], device: DeviceProfile,
                   *, pm: PluginManager, events: Events, failed: Failed) -> dict[str, TargetSearch]:
    """Every usable target's finished and timed search (runners closed), by target name; a target whose search
    raised is passed to ``failed`` instead."""
    screened = request.precision == "auto" and not request.exhaustive
    began = time.monotonic()
    opened: dict[str, TargetSearch] = {}
    for info in usable:
        try:
            found = open_search(request, prepared, info, device, pm=pm, events=events)
            if screened:
                events.step(f"building target {info.name}'s fp32 baseline")
                found.advance(stop_after=1)
        except EdgeoptError as exc:
            failed(info.name, exc)
            continue
        opened[info.name] = found
    order = _ranked(opened, prepared, events) if screened else list(opened)
    deadline = _deadline(began, request.budget_s)
    done: dict[str, TargetSearch] = {}
    bar: Bar | None = None
    try:
        for name in order:
            found = opened.pop(name)
            found.ctx.deadline = _share(deadline, left=len(opened) + 1)
            events.step(f"searching target {name}")
            try:
                found.advance(bar=bar)
            except EdgeoptError as exc:
                found.close()
                failed(name, exc)
                continue
            done[name] = found
            try:
                time_searches([found], prepared, budget_s=request.timing_s, events=events)
                if screened:
                    bar = _next_bar(found, bar)
            finally:
                found.close()
    finally:
        for rest in opened.values():
            rest.close()
        if bar is not None:
            bar.runner.close()
    return done


def _deadline(began: float, budget_s: float | None) -> float | None:
    """When the searches stop starting candidates: ``budget_s`` after the first baseline began, but never less
    than ``MIN_SEARCH_SHARE`` of it after the baselines (slow baselines on a loaded host still leave a search)."""
    if budget_s is None:
        return None
    return max(began + budget_s, time.monotonic() + budget_s * MIN_SEARCH_SHARE)


def _share(deadline: float | None, *, left: int) -> float | None:
    """This target's deadline: at most ``2 / (left + 1)`` of the time still left (two thirds with two targets to
    go, half with three), so the first target searched cannot starve the others; what it leaves unused passes
    on. The last target gets all that is left."""
    if deadline is None:
        return None
    now = time.monotonic()
    return now + max(0.0, deadline - now) * 2 / (left + 1)


def _ranked(opened: dict[str, TargetSearch], prepared: Prepared, events: Events) -> list[str]:
    """Target names, fastest fp32 baseline first (targets without a baseline that ran last, in given order)."""
    runners: dict[str, Runner] = {}
    for name, found in opened.items():
        if found.search.runners and found.candidates and found.candidates[0].plan.precision == "fp32":
            runners[name] = next(iter(found.search.runners.values()))
    if len(runners) < 2:
        return sorted(opened, key=lambda n: n not in runners)
    events.step(f"ranking {len(runners)} targets by their fp32 baselines, interleaved")
    stats = time_candidates(runners, feeds_for_batch(prepared.evaluation, prepared.batch), batch=prepared.batch,
                            budget_s=RANK_BUDGET_S * len(runners), settle_runs=2, runs_per_round=3)
    fastest = min(st.p50 for st in stats.values())

    def key(name: str) -> tuple[int, float]:
        if name not in stats:
            return 2, 0.0
        if stats[name].p50 <= fastest * NEAR_FASTEST:  # as good a start: the cheaper builds first
            return 0, opened[name].candidates[0].seconds
        return 1, stats[name].p50

    return sorted(opened, key=key)


def _next_bar(found: TargetSearch, bar: Bar | None) -> Bar | None:
    """The faster of ``bar`` and this target's fastest accepted candidate, whose runner is then kept open (taken
    out of the search); the loser's runner is closed. Latencies compare through this target's screen, which
    timed the old bar against the same baseline."""
    screen = found.search.screen
    timed = [(i, c) for i, c in enumerate(found.candidates)
             if c.status in ("accepted", "baseline") and c.latency is not None and i in found.search.runners]
    base = found.candidates[0].latency if found.candidates else None
    if screen is None or not timed or base is None or base.p50 <= 0:
        return bar
    index, best = min(timed, key=lambda ic: ic[1].latency.p50)  # type: ignore[union-attr]
    rel = best.latency.p50 / base.p50  # type: ignore[union-attr]
    if bar is not None and rel >= screen.measured.get(bar.label, math.inf):
        return bar
    if bar is not None:
        bar.runner.close()
    return Bar(f"{found.target.name} {best.label}", found.search.runners.pop(index))
