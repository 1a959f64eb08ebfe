"""The best runtime for one model on one device: ``edgeopt compare`` and ``edgeopt deploy --target auto``.

Stages, the same ones a single-target deploy runs (``edgeopt.deploy``): the model is imported, the data
loaded and the fp32 reference run once (``prepare``); each target runs its own ``--precision auto`` search,
fastest fp32 baseline first, each screened against the best of those before it (``target_order``); each
target's candidates are timed against each other in one interleaved run right after its search, and each
target keeps its winner (``select``). Then parallelism is searched: each winner is re-loaded with
every thread count and batch the objective asks for (``settings_for``), and all of those are timed together,
one runner busy at a time, the order rotating each round and each turn opened by an untimed run so the
previous runtime's thread pool is idle before the next one is timed. The winner across targets is the
best of those figures for the objective; ``--target auto`` deploys it with ``deploy.finish``.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from edgeopt.artifact.write import check_destination, verify_artifact
from edgeopt.compression.deploy_guard import target_request
from edgeopt.errors import AccuracyBudgetExceeded, EdgeoptError, TargetError
from edgeopt.measure.devices import get_profile, host_profile
from edgeopt.measure.energy import estimate_energy, metered
from edgeopt.measure.harness import measure
from edgeopt.measure.host import physical_cores
from edgeopt.measure.significance import Choice, Contender, choose
from edgeopt.passes.batch import checked_batches
from edgeopt.pipeline.comparison import Comparison, Setting, TargetResult
from edgeopt.pipeline.finish import finish
from edgeopt.pipeline.request import (
    AUTO_BUDGET_S,
    AUTO_TARGET,
    Deployment,
    DeployRequest,
    LogEvents,
    check_deploy_request,
    default_out,
)
from edgeopt.pipeline.stages import Prepared, TargetSearch, feeds_for_batch, prepare
from edgeopt.pipeline.target_order import search_targets
from edgeopt.plugin.manager import PluginManager, get_plugin_manager
from edgeopt.search.candidates import Candidate, Events, time_candidates
from edgeopt.search.selection import Selection, select
from edgeopt.types import DeviceProfile, LatencyStats, Runner, RunSettings, TargetInfo

SETTLE_RUNS = 2
"""Untimed runs opening each runner's turn when runtimes alternate: the previous runtime's spinning thread
pool goes idle and this one's wakes before anything is timed."""


RUNS_PER_ROUND = 5
"""Timed runs per turn when runtimes alternate (so the settle runs cost a fraction of the timing)."""


ENERGY_RUNS = 20
"""Timed runs per winner when a real energy meter is present."""


def _device(request: DeployRequest) -> DeviceProfile:
    return get_profile(request.device) if request.device not in (None, "host") else host_profile()


def eligible_targets(
    pm: PluginManager, request: DeployRequest, device: DeviceProfile
) -> tuple[list[TargetInfo], list[TargetResult]]:
    """Targets to search, and rows for the ones that cannot be (unavailable, wrong device kind, precision).

    Named targets (``request.targets``) must exist; without names every installed target is considered, except
    those that only emulate their device here (``TargetInfo.emulated``)."""
    names = list(request.targets) or [t.name for t in pm.targets()]
    usable: list[TargetInfo] = []
    rows: list[TargetResult] = []
    for name in dict.fromkeys(names):
        info = pm.target(name, require_available=False)  # unknown names raise TargetError: bad input
        if not info.available:
            rows.append(TargetResult(name, "unavailable", info.reason))
        elif device.kind not in info.device_kinds:
            rows.append(TargetResult(name, "unavailable", f"runs on {'/'.join(info.device_kinds)} devices; "
                                     f"the device profile {device.name!r} is a {device.kind}"))
        elif info.emulated and name not in request.targets:
            rows.append(TargetResult(name, "unavailable", f"{info.emulated}; name it in --targets to measure it "
                                     "anyway"))
        elif request.precision != "auto" and request.precision not in info.precisions:
            rows.append(TargetResult(name, "refused", f"does not offer precision {request.precision!r}"))
        else:
            usable.append(info)
    return usable, rows


def settings_for(device: DeviceProfile, request: DeployRequest, base_batch: int) -> list[Setting]:
    """The parallelism configurations worth timing: every core vs one thread (``--threads`` pins it), at the
    model's batch for ``latency`` or at each ``--batch`` for ``throughput`` (batches other than the model's
    own only when it is built for batch 1)."""
    cores = min(device.cores or physical_cores(), physical_cores()) if device.kind == "cpu" else None
    threads: list[int | None] = [request.threads] if request.threads else list(dict.fromkeys([cores, 1]))
    if device.kind != "cpu":
        threads = [request.threads]
    batches = [base_batch]
    if request.objective == "throughput" and base_batch == 1:
        batches = sorted(set(request.batches) | {1})
    return [Setting(t, b) for b in batches for t in threads]


LATENCY_FIGURE = {"latency": "p50", "latency-p90": "p90"}
"""Which latency statistic each latency objective ranks by: p50 by default (on a shared machine p90 mostly
measures the neighbours), p90 for ``latency-p90`` (tail latency, on a quiet device)."""


def rank_key(objective: str, slo_ms: float | None) -> Callable[[LatencyStats], tuple]:
    """Sort key, best first: p50 for ``latency``, p90 for ``latency-p90``; for ``throughput`` meeting the SLO
    (p90) first, then the highest samples/s."""
    if objective in LATENCY_FIGURE:
        figure = LATENCY_FIGURE[objective]
        return lambda s: (getattr(s, figure),)
    return lambda s: (slo_ms is not None and s.p90 * 1e3 > slo_ms, -s.throughput)


@dataclass
class _Entry:
    found: TargetSearch
    selection: Selection
    setting: Setting | None = None
    latency: LatencyStats | None = None
    tried: list[dict] = field(default_factory=list)


def _open_settings(
    entries: dict[str, _Entry], prepared: Prepared, request: DeployRequest, pm: PluginManager, events: Events
) -> tuple[dict[str, Runner], dict[str, list], dict[str, tuple[str, Setting]]]:
    runners: dict[str, Runner] = {}
    feeds: dict[str, list] = {}
    keys: dict[str, tuple[str, Setting]] = {}
    for name, entry in entries.items():
        chosen, found = entry.selection.chosen, entry.found
        assert chosen.compiled is not None
        for setting in settings_for(found.device, request, prepared.batch):
            if setting.batch != prepared.batch and prepared.evaluation.not_batchable:
                entry.tried.append({**asdict(setting), "error": f"not batchable: {prepared.evaluation.not_batchable}"})
                continue

            def make(b: int, t: int | None = setting.threads, c: Candidate = chosen, f: TargetSearch = found) -> Runner:
                return pm.runner(c.compiled, f.target, f.device, RunSettings(batch=b, threads=t))

            def data(b: int) -> list:
                return feeds_for_batch(prepared.evaluation, b)

            try:
                runner = checked_batches(make, data, base_batch=prepared.batch)(setting.batch)
            except EdgeoptError as exc:
                entry.tried.append({**asdict(setting), "error": exc.message})
                events.warn(f"{name}: {setting.label} not timed: {exc.message}")
                continue
            key = f"{name} {setting.label}"
            runners[key], feeds[key], keys[key] = runner, data(setting.batch), (name, setting)
    return runners, feeds, keys


def _energy(runner: Runner, feeds: list, stats: LatencyStats, device: DeviceProfile, meters: list) -> tuple:
    if meters:
        with metered(meters) as reading:
            timed = measure(runner, feeds, warmup=2, runs=ENERGY_RUNS, batch=stats.batch)
        if reading.readings:
            return reading.joules / (timed.runs * stats.batch), reading.method
    energy = estimate_energy(stats.p50 / stats.batch, device)
    return energy.joules, energy.method


def _time_settings(
    entries: dict[str, _Entry], prepared: Prepared, request: DeployRequest, pm: PluginManager, events: Events
) -> dict[str, tuple[float | None, str]]:
    """Time every winner at every setting together; keep each target's best; return energy per target."""
    runners, feeds, keys = _open_settings(entries, prepared, request, pm, events)
    key = rank_key(request.objective, request.slo_ms)
    energy: dict[str, tuple[float | None, str]] = {}
    try:
        events.step(f"timing {len(runners)} configuration(s) of {len(entries)} target(s), interleaved")
        stats = time_candidates(runners, feeds, batch=1, budget_s=request.timing_s * max(1, len(runners)),
                                settle_runs=SETTLE_RUNS, runs_per_round=RUNS_PER_ROUND)
        for k, raw in stats.items():
            name, setting = keys[k]
            s = replace(raw, batch=setting.batch, throughput=setting.batch / raw.mean if raw.mean > 0 else math.inf)
            entry = entries[name]
            entry.tried.append({**asdict(setting), "p50_s": s.p50, "p90_s": s.p90, "stdev_s": s.stdev,
                                "runs": s.runs, "throughput": s.throughput})
            if entry.latency is None or key(s) < key(entry.latency):
                entry.setting, entry.latency = setting, s
        for name, entry in entries.items():
            if entry.latency is not None:
                k = f"{name} {entry.setting.label}"  # type: ignore[union-attr]
                energy[name] = _energy(runners[k], feeds[k], entry.latency, entry.found.device,
                                       pm.energy_meters(entry.found.device))
    finally:
        for r in runners.values():
            r.close()
    return energy


def _row(name: str, entry: _Entry, energy: tuple[float | None, str]) -> TargetResult:
    chosen = entry.selection.chosen
    compiled = chosen.compiled
    assert compiled is not None
    m = chosen.metrics
    return TargetResult(
        name, "ok", label=chosen.label, precision=chosen.plan.precision, setting=entry.setting,
        latency=entry.latency, size_bytes=sum((compiled.directory / f).stat().st_size for f in compiled.files),
        metric=m.metric if m else None, reference=m.reference if m else None,
        candidate=m.candidate if m else None, drop=m.drop if m else None, energy_j=energy[0],
        energy_method=energy[1], runtime=compiled.runtime, settings_tried=tuple(entry.tried),
        candidates=tuple(c.summary() for c in entry.found.candidates),
    )


def _pick(timed: Sequence[TargetResult], objective: str, slo_ms: float | None) -> tuple[TargetResult, Choice | None]:
    """The best row for the objective; rows within noise of it (``edgeopt.measure.significance``, same SLO class) are
    tied and the tie-break picks among them. No choice is made from rows timed without samples."""
    key = rank_key(objective, slo_ms)
    first = min(timed, key=lambda r: key(r.latency))  # type: ignore[arg-type]
    peers = [r for r in timed if key(r.latency)[:-1] == key(first.latency)[:-1]]  # type: ignore[arg-type]
    if any(not r.latency or not r.latency.samples for r in peers):
        return first, None
    statistic = LATENCY_FIGURE.get(objective, "mean")  # throughput: mean time per sample
    scale = (lambda r: 1.0) if objective in LATENCY_FIGURE else (lambda r: 1.0 / r.latency.batch)
    choice = choose([Contender(r.target, [t * scale(r) for t in r.latency.samples], size_bytes=r.size_bytes,
                               drop=r.drop, precision=r.precision) for r in peers], statistic=statistic)
    return next(r for r in peers if r.target == choice.chosen), choice


def _why(objective: str, winner: TargetResult, rows: Sequence[TargetResult], choice: Choice | None = None) -> str:
    others = [r for r in rows if r.latency is not None and r is not winner]
    w = winner.latency
    assert w is not None and winner.setting is not None
    figure = LATENCY_FIGURE.get(objective)
    what = (f"{figure} {getattr(w, figure) * 1e3:.3g} ms" if figure else f"{w.throughput:.4g} samples/s")
    text = f"{winner.target} {winner.label} at {winner.setting.label}: {what}"
    if not others:
        return text + " (the only target with a candidate within --max-drop)"
    def part(r: TargetResult) -> str:
        assert r.latency is not None
        if not figure:
            return f"{r.target} {r.latency.throughput:.4g}/s"
        theirs, ours = getattr(r.latency, figure), getattr(w, figure)
        return f"{r.target} {theirs * 1e3:.3g} ms ({theirs / ours:.2f}x)"

    parts = [part(r) for r in others if r.latency is not None]
    if choice is not None and choice.is_tie:
        return f"{text}; {choice.statement()}; all measured in the same interleaved run: {', '.join(parts)}"
    return f"{text}, fastest of the targets measured in the same interleaved run: {', '.join(parts)}"


def _run(
    request: DeployRequest, pm: PluginManager, events: Events, work: Path
) -> tuple[Comparison, dict[str, _Entry], Prepared, DeployRequest]:
    """The comparison, each target's selected entry, the shared preparation, and the request as searched."""
    device = _device(request)
    usable, rows = eligible_targets(pm, request, device)
    if not usable:
        raise TargetError("no target can run this comparison: " + "; ".join(f"{r.target}: {r.reason}" for r in rows),
                          hint="install a target plugin (see `edgeopt targets`) or name a different --device")
    prepared = prepare(request, pm, events, work)
    request = target_request(request, prepared.compression)  # --max-drop less what compression used
    warnings: list[str] = list(prepared.warnings)

    def failed(name: str, exc: EdgeoptError) -> None:
        rows.append(TargetResult(name, "failed", exc.message, hint=exc.hint))

    searches = search_targets(request, prepared, usable, device, pm=pm, events=events, failed=failed)
    entries: dict[str, _Entry] = {}
    for name, found in searches.items():
        try:
            selection = select(found.candidates, precision=request.precision,
                               force_precision=request.force_precision, max_drop=request.max_drop)
        except AccuracyBudgetExceeded as exc:
            rows.append(TargetResult(name, "refused", exc.message, hint=exc.hint,
                                     candidates=tuple(c.summary() for c in found.candidates)))
            continue
        warnings.extend(f"{name}: {w}" for w in selection.warnings)
        entries[name] = _Entry(found, selection)
    energy = _time_settings(entries, prepared, request, pm, events) if entries else {}
    rows.extend(_row(n, e, energy[n]) for n, e in entries.items() if e.latency is not None)
    timed = [r for r in rows if r.latency is not None]
    winner, why, choice = None, "no target has a candidate within --max-drop", None
    if timed:
        best, choice = _pick(timed, request.objective, request.slo_ms)
        why = _why(request.objective, best, timed, choice)
        winner = best.target
        rows = [replace(r, status="winner") if r is best else r for r in rows]
    order = {"winner": 0, "ok": 1, "refused": 2, "failed": 3, "unavailable": 4}
    rows.sort(key=lambda r: (order.get(r.status, 9), r.latency.p50 if r.latency else math.inf, r.target))
    comparison = Comparison(
        model=str(request.source) if isinstance(request.source, (str, Path)) else type(request.source).__name__,
        device=device.name, objective=request.objective, slo_ms=request.slo_ms, max_drop=request.max_drop,
        results=tuple(rows), winner=winner, why=why, warnings=tuple(dict.fromkeys(warnings)),
        device_isa=tuple(device.isa),
        timing={
            "method": "measured:wallclock, interleaved rounds (order rotating), one runner busy at a time",
            "settle_runs_per_turn": SETTLE_RUNS, "timed_runs_per_turn": RUNS_PER_ROUND,
            "budget_s_per_configuration": request.timing_s,
            "rank": f"{LATENCY_FIGURE[request.objective]} latency" if request.objective in LATENCY_FIGURE
            else "throughput (samples/s), SLO on p90",
            **({"decision": choice.to_dict()} if choice is not None else {}),
        },
    )
    return comparison, entries, prepared, request


def run_compare(request: DeployRequest, *, pm: PluginManager | None = None, events: Events | None = None) -> Comparison:
    """Run every eligible target's search on the same data and time their winners together."""
    pm = pm or get_plugin_manager()
    check_deploy_request(request, pm)
    with tempfile.TemporaryDirectory(prefix="edgeopt-compare-") as tmp:
        comparison, *_ = _run(request, pm, events or LogEvents(), Path(tmp))
    return comparison


def no_winner(comparison: Comparison, request: DeployRequest) -> AccuracyBudgetExceeded:
    """E600 for ``--target auto`` when no target has an accepted candidate: each target's own reasons (see
    ``candidates.refusal``) and the hints that fit them, grouped by target."""
    prefix = f"no {request.precision} candidate stays within --max-drop {request.max_drop:g}: "
    reasons = "; ".join(f"{r.target}: {r.reason.removeprefix(prefix)}" for r in comparison.results)
    by_hint: dict[str, list[str]] = {}
    for r in comparison.results:
        if r.hint and r.status in ("refused", "failed"):
            by_hint.setdefault(r.hint, []).append(r.target)
    hint = " | ".join(f"{', '.join(targets)}: {h}" for h, targets in by_hint.items()) if len(by_hint) > 1 else (
        next(iter(by_hint), "give representative --calib data, or name other --targets (see `edgeopt targets`)"))
    return AccuracyBudgetExceeded(f"no target has a candidate within --max-drop {request.max_drop:g}: {reasons}",
                                  hint=hint)


def deploy_auto(request: DeployRequest, *, pm: PluginManager, events: Events) -> Deployment:
    """``--target auto``: the comparison's winner deployed with its parallelism setting; the manifest's
    ``selection`` records every alternative measured and why the winner won."""
    out = Path(request.out) if request.out else default_out(request.source, AUTO_TARGET)
    check_destination(out)
    if request.budget_s is None and not request.exhaustive:
        request = replace(request, budget_s=AUTO_BUDGET_S)
    with tempfile.TemporaryDirectory(prefix="edgeopt-") as tmp:
        comparison, entries, prepared, request = _run(request, pm, events, Path(tmp))
        if comparison.winner is None:
            raise no_winner(comparison, request)
        entry = entries[comparison.winner]
        setting = entry.setting
        assert setting is not None
        chosen = replace(entry.selection.chosen, latency=entry.latency)
        final = replace(request, target=comparison.winner, threads=setting.threads,
                        batches=tuple(sorted({setting.batch, *request.batches})))
        selection = {**comparison.to_dict(), "chosen_setting": asdict(setting)}
        path = finish(final, prepared, entry.found, replace(entry.selection, chosen=chosen), out=out, pm=pm,
                      events=events, selection_record=selection)
    return Deployment(path=path, manifest=verify_artifact(path), warnings=comparison.warnings)
