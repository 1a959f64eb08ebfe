"""One deploy: import → plan → compile candidates → guard → profile → atomic artifact.

Nothing is written to the output location until a verified model exists; a failure at any step
leaves no directory behind.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgeopt.artifact.manifest import build_manifest
from edgeopt.artifact.report import render_markdown
from edgeopt.artifact.report_html import HTML_NAME, render_html
from edgeopt.artifact.write import check_destination, verify_artifact, write_artifact
from edgeopt.compress.deploy_guard import calibration_from_train, speedup_warnings, target_request, with_deployed
from edgeopt.compress.sdk import compress_for_deploy
from edgeopt.compress.spec import CompressionSpec
from edgeopt.compress.target_timing import stages_on_target
from edgeopt.data.datasets import load_dataset, synthetic_dataset
from edgeopt.data.stream import answers, stream_outputs, with_stream_states
from edgeopt.errors import DataError, EdgeoptWarning, InputSpecError, ModelError, TargetError
from edgeopt.evaluate.metrics import run_outputs
from edgeopt.evaluate.reference import ReferenceRunner, batch_size_of, trim_labels
from edgeopt.graph.normalize import inspect_model, load_model
from edgeopt.measure.devices import get_profile, host_profile
from edgeopt.measure.harness import peak_memory, profile_runner
from edgeopt.measure.memory import measure_memory
from edgeopt.passes.batch import checked_batches
from edgeopt.plugin.manager import PluginManager, get_plugin_manager
from edgeopt.process.memory_limit import memory_limit_bytes
from edgeopt.search.candidates import (
    Candidate,
    CandidateContext,
    Events,
    Selection,
    search_plans,
    select,
    time_candidates,
)
from edgeopt.search.run import (
    Search,
    open_cache,
    report_sensitivity,
    run_search,
    search_section,
    sensitivity_rows,
)
from edgeopt.search.speed_screen import Bar
from edgeopt.types import Dataset, DeviceProfile, Graph, ImportOptions, RunSettings, TargetInfo

log = logging.getLogger("edgeopt")

SYNTHETIC_SAMPLES = 32
AUTO_TARGET = "auto"
AUTO_BUDGET_S = 70.0
"""Default search budget of ``--target auto`` (seconds, every target's fp32 baseline and all the searches
together; the searches get at least a third of it after the baselines, ``edgeopt.pipeline.target_order``): its searches
run fastest target first and screened for speed, so what the budget leaves out is the least promising part."""
"""``--target auto``: search every available target and deploy the fastest (see ``edgeopt.compare``)."""
OBJECTIVES = ("latency", "latency-p90", "throughput")


@dataclass(frozen=True)
class DeployRequest:
    """Everything a deploy needs; plain data so a deploy can run as a job elsewhere."""

    source: object
    target: str = "cpu"
    device: str | None = None
    precision: str = "auto"
    calib: object = None
    eval: object = None
    max_drop: float = 1.0
    metric: str | Callable | None = None
    input_shapes: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    batches: tuple[int, ...] = (1,)
    slo_ms: float | None = None
    out: Path | None = None
    force_precision: bool = False
    trust_pickle: bool = False
    trust_code: bool = False
    """Let a model file run code from outside its framework while loading (Keras Lambda/custom layers)."""
    weights: Path | None = None
    runs: int | None = None
    timing_s: float = 2.0
    threads: int | None = None
    budget_s: float | None = None
    """Wall-clock limit for the candidate search (compile, check, fallback); candidates not started in time
    are listed as skipped. Timing (``timing_s`` per run) and profiling come on top. With several targets it
    bounds their searches together (``edgeopt.pipeline.target_order``). None: no limit, except that ``--target auto``
    stops starting candidates after ``AUTO_BUDGET_S`` unless ``exhaustive``."""
    cache: bool = True
    """Reuse compiled and evaluated candidates from the search cache (``edgeopt.search.cache``)."""
    exhaustive: bool = False
    """Build every plan of a ``--precision auto`` search, even those the speed screen shows cannot win
    (``edgeopt.search.speed_screen``)."""
    objective: str = "latency"
    """What ``--target auto`` and ``edgeopt compare`` optimize: ``latency`` (batch 1, p50 with p90 shown) or
    ``throughput`` (samples/s over ``batches``, the largest batch whose p90 meets ``slo_ms`` when given)."""
    targets: tuple[str, ...] = ()
    """Targets ``--target auto`` searches; empty: every available target."""
    compression: CompressionSpec | None = None
    """Compress the torch source first (prune, distill, cluster, binarize, QAT; ``edgeopt.compress``); the
    deploy then imports the compressed model and records every stage in ``manifest["compression"]``."""
    state: Mapping[str, str] | None = None
    """Recurrent state of a streaming model, output -> input (``{"stateN": "state"}``): calibration, evaluation
    and synthetic data then run as a stream, each call's state fed back (``edgeopt.data.stream``). None detects
    obvious pairs (``edgeopt.data.stream.detect_state``); ``{}`` runs the model without state."""
    max_memory: int | str | None = None
    """Memory each candidate build may use, bytes or a size such as ``"2GiB"``: every build runs in a worker
    process whose tree is stopped past it, the candidate then failed with that reason (``edgeopt.search.build_worker``).
    None: 60% of the memory available when the search starts (``edgeopt.process.memory_limit``)."""


@dataclass(frozen=True)
class Deployment:
    """A written, verified artifact."""

    path: Path
    manifest: dict
    warnings: tuple[str, ...] = ()

    @property
    def profile(self) -> dict:
        return self.manifest.get("profile", {})

    @property
    def metrics(self) -> dict:
        return self.manifest.get("metrics", {})


class LogEvents:
    """Default Events for the SDK: steps to the ``edgeopt`` log, warnings through ``warnings.warn`` as
    ``EdgeoptWarning``."""

    def step(self, message: str) -> None:
        log.info(message)

    def warn(self, message: str) -> None:
        warnings.warn(message, EdgeoptWarning, stacklevel=3)


def resolve_device(name: str | None, target: TargetInfo) -> DeviceProfile:
    if name is None or name == "host":
        if "cpu" in target.device_kinds:
            return host_profile()
        raise TargetError(
            f"target {target.name!r} needs a device profile (--device)",
            hint="run `edgeopt devices` and pass --device NAME",
        )
    return get_profile(name)


def measured_on_host(device: DeviceProfile) -> str:
    """"this host" when ``device`` is a CPU profile of another machine (CPU runners run here), else ""."""
    return "this host" if device.kind == "cpu" and device.name != host_profile().name else ""


def default_out(source: object, target: str) -> Path:
    stem = Path(source).stem if isinstance(source, (str, Path)) else type(source).__name__.lower()
    stem = stem.replace(":", "-").replace(".", "-") or "model"
    return Path.cwd() / f"{stem}-{target}.edgeopt"


def feeds_for_batch(dataset: Dataset, batch: int, *, limit: int = 8) -> list[dict[str, np.ndarray]]:
    """Up to ``limit`` feeds of exactly ``batch`` samples, repeating samples when the data is short. Feeds of a
    stateful dataset are single steps with the states its reference stream fed (``edgeopt.data.stream``); a batch
    above 1 of data that is ``not_batchable`` raises ``DataError``."""
    if len(dataset) < batch:
        reps = -(-batch // max(len(dataset), 1))
        dataset = replace(dataset, arrays={k: np.concatenate([v] * reps) for k, v in dataset.arrays.items()},
                          labels=None)
    return dataset.batches(batch)[:limit]


def _data(request: DeployRequest, graph: Graph, events: Events) -> tuple[Dataset, Dataset, list[str]]:
    notes: list[str] = []
    state = request.state
    calib = load_dataset(request.calib, graph, purpose="calibration", state=state) if request.calib is not None \
        else None
    evaluation = load_dataset(request.eval, graph, purpose="evaluation", state=state) if request.eval is not None \
        else None
    if calib is None:
        calib = synthetic_dataset(graph, samples=SYNTHETIC_SAMPLES, seed=0, state=state)
        notes.append(
            "no --calib data: calibrating on synthetic random inputs; quantized accuracy on real inputs may differ, "
            "give --calib with representative samples"
        )
    if evaluation is None:
        if calib.synthetic:
            evaluation = synthetic_dataset(graph, samples=SYNTHETIC_SAMPLES, seed=1, state=state)
            notes.append(
                "no --eval data: accuracy is fidelity to the original model on synthetic inputs, not task accuracy"
            )
        else:
            evaluation = calib
            notes.append("no --eval data: evaluating on the calibration data (give --eval with held-out samples)")
    for note in notes:
        events.warn(note)
    if len(evaluation) == 0:
        raise DataError("the evaluation data holds no samples")
    return calib, evaluation, notes


def _check_request(request: DeployRequest, pm: PluginManager | None = None) -> None:
    from edgeopt.evaluate.metric_table import check_metric
    from edgeopt.extras import check_request

    check_request(request.source, weights=request.weights, compression=request.compression)  # before any work
    if request.max_memory is not None:
        memory_limit_bytes(request.max_memory)  # a malformed --max-memory fails here, not in every build
    check_metric(request.metric, pm)  # a plugin's metric name activates pm's plugin metrics
    if request.budget_s is not None and not (math.isfinite(request.budget_s) and request.budget_s > 0):
        raise InputSpecError(f"--budget-s must be a positive number of seconds, got {request.budget_s}",
                             hint="leave --budget-s unset for no limit")
    if request.objective not in OBJECTIVES:
        raise InputSpecError(f"unknown objective {request.objective!r}", hint=f"choose one of: {', '.join(OBJECTIVES)}")
    if not math.isfinite(request.max_drop):
        raise InputSpecError(f"--max-drop must be a finite number, got {request.max_drop}",
                             hint="give the largest accepted drop in the metric's own units, e.g. 1.0")


@dataclass(frozen=True)
class Prepared:
    """What every target's search shares, computed once: the normalized graph, data, the fp32 reference."""

    graph: Graph
    calibration: Dataset
    evaluation: Dataset
    reference_outputs: tuple[np.ndarray, ...]
    batch: int
    """The batch the normalized graph was built for."""
    warnings: tuple[str, ...]
    workdir: Path
    compression: dict | None = None
    """``edgeopt.compress`` record (stages before/after) when the request asked for compression."""


@dataclass
class TargetSearch:
    """One target's candidate search: its candidates, and the runners still open for timing."""

    target: TargetInfo
    device: DeviceProfile
    ctx: CandidateContext
    search: Search
    search_s: float
    plans: list[tuple] = field(default_factory=list)
    """``(plan, origin)`` in search order; ``search.planned`` of them are done."""
    precision: str = "auto"
    """The precision the request asked for."""

    def advance(self, *, bar: Bar | None = None, stop_after: int | None = None) -> TargetSearch:
        """Evaluate the remaining plans (``stop_after``: only that many, no fallback), ``bar`` the fastest
        accepted candidate of the targets searched before (see ``edgeopt.search.speed_screen``)."""
        began = time.monotonic()
        self.ctx.bar = bar
        run_search(self.ctx, self.plans, self.precision, search=self.search, stop_after=stop_after)
        self.search_s += time.monotonic() - began
        return self

    @property
    def candidates(self) -> list[Candidate]:
        return self.search.candidates

    def close(self) -> None:
        self.search.close()
        self.search.runners.clear()


def check_target(pm: PluginManager, name: str, precision: str) -> TargetInfo:
    """The target called ``name``, refusing a precision it does not offer."""
    target = pm.target(name)
    if precision != "auto" and precision not in target.precisions:
        raise TargetError(
            f"target {target.name!r} does not support precision {precision!r}",
            hint=f"choose one of: auto, {', '.join(target.precisions)}",
        )
    return target


def prepare(request: DeployRequest, pm: PluginManager, events: Events, work: Path) -> Prepared:
    """Import and normalize the model, load the data, run the fp32 reference: the stage every target shares."""
    warnings_: list[str] = []
    events.step("importing and normalizing the model")
    options = ImportOptions(
        input_shapes=dict(request.input_shapes), trust_pickle=request.trust_pickle, weights=request.weights,
        trust_code=request.trust_code,
    )
    source, compression = compress_for_deploy(request, work, events)
    warnings_.extend((compression or {}).get("warnings", []))
    (work / "graph").mkdir()
    graph = pm.import_model(source, options, work / "graph")
    if graph is None:
        raise ModelError(
            f"no importer recognises {request.source!r}",
            hint="give an .onnx file, a .keras file, a torch nn.Module or 'package.module:factory', or a "
            "scikit-learn estimator",
        )
    for note in graph.notes:
        events.warn(note)
    warnings_.extend(graph.notes)
    calib, evaluation, data_notes = _data(calibration_from_train(request), graph, events)  # --calib or --train
    warnings_.extend(data_notes)
    batch = batch_size_of(graph.inputs, skip=evaluation.fed_whole)
    if evaluation.state and batch != 1:
        raise DataError(f"the model is built for batch {batch}, but a stateful model runs as a stream of one "
                        "sample per call", hint="fix its batch to 1 with --input-shape NAME=1x...")
    events.step("running the reference (fp32, ONNX Runtime CPU)" + (
        f" as a stream of {len(evaluation)} steps, state fed back: "
        + ", ".join(f"{p.output} -> {p.input}" for p in evaluation.state) if evaluation.state else ""))
    reference = ReferenceRunner(graph.path, threads=request.threads)
    try:
        if evaluation.state:  # calibration and timing feed single steps: give them the states a stream feeds
            outputs, fed = stream_outputs(reference.run, evaluation)
            calib = with_stream_states(calib, fed if calib is evaluation else stream_outputs(reference.run, calib)[1])
            evaluation = with_stream_states(evaluation, fed)
            reference_outputs = tuple(answers(outputs, evaluation))
        else:
            reference_outputs = tuple(run_outputs(reference, evaluation, batch=batch))
    finally:
        reference.close()
    return Prepared(graph, calib, evaluation, reference_outputs, batch, tuple(warnings_), work, compression)


def search_target(
    request: DeployRequest,
    prepared: Prepared,
    target: TargetInfo,
    device: DeviceProfile,
    *,
    pm: PluginManager,
    events: Events,
) -> TargetSearch:
    """Compile, check and evaluate every candidate plan of one target; runners stay open for timing."""
    return open_search(request, prepared, target, device, pm=pm, events=events).advance()


def open_search(
    request: DeployRequest,
    prepared: Prepared,
    target: TargetInfo,
    device: DeviceProfile,
    *,
    pm: PluginManager,
    events: Events,
) -> TargetSearch:
    """One target's plans and candidate context, nothing evaluated yet (``TargetSearch.advance`` does)."""
    began = time.monotonic()
    graph = prepared.graph
    plans = search_plans(pm, graph, target, device, request.precision, events)
    if not plans:
        raise TargetError(f"target {target.name!r} offered no plan for precision {request.precision!r}")
    baseline = (
        []
        if any(p.precision == "fp32" for p, _ in plans) or "fp32" not in target.precisions
        else [(p, "baseline") for p in pm.plan(graph, target, device, "fp32")[:1]]
    )
    workdir = prepared.workdir / f"target-{target.name}"
    workdir.mkdir(parents=True, exist_ok=True)
    ctx = CandidateContext(
        pm=pm,
        graph=graph,
        target=target,
        device=device,
        calibration=prepared.calibration,
        evaluation=prepared.evaluation,
        reference_outputs=prepared.reference_outputs,
        labels=trim_labels(prepared.evaluation, prepared.batch),
        metric=request.metric,
        max_drop=request.max_drop,
        batch=prepared.batch,
        threads=request.threads,
        workdir=workdir,
        events=events,
        cache=open_cache(request, graph, target, device, pm, prepared.calibration, prepared.evaluation),
        deadline=began + request.budget_s if request.budget_s is not None else None,
        max_memory=request.max_memory,
        screen=request.precision == "auto" and not request.exhaustive,
        timing_feeds=feeds_for_batch(prepared.evaluation, prepared.batch),
    )
    return TargetSearch(target, device, ctx, Search(), time.monotonic() - began, [*baseline, *plans],
                        request.precision)


def time_searches(
    searches: Sequence[TargetSearch],
    prepared: Prepared,
    *,
    budget_s: float,
    events: Events,
    settle_runs: int = 0,
    runs_per_round: int = 1,
) -> None:
    """Time every open runner of every search in one interleaved run (one runner busy at a time, the order
    rotating each round; each turn ``settle_runs`` untimed then ``runs_per_round`` timed runs) and store the figures
    in the candidates."""
    runners = {f"{k}:{i}": r for k, s in enumerate(searches) for i, r in s.search.runners.items()}
    if not runners:
        return
    events.step(f"timing {len(runners)} candidate(s), interleaved")
    stats = time_candidates(
        runners, feeds_for_batch(prepared.evaluation, prepared.batch), batch=prepared.batch, budget_s=budget_s,
        settle_runs=settle_runs, runs_per_round=runs_per_round,
    )
    for k, s in enumerate(searches):
        for i in s.search.runners:
            s.candidates[i] = replace(s.candidates[i], latency=stats[f"{k}:{i}"])


def run_deploy(request: DeployRequest, *, pm: PluginManager | None = None, events: Events | None = None) -> Deployment:
    """Deploy ``request.source`` to ``request.target`` and return the verified artifact.

    ``target="auto"`` searches every available target and deploys the winner (``edgeopt.compare``)."""
    events = events or LogEvents()
    pm = pm or get_plugin_manager()
    _check_request(request, pm)
    if request.target == AUTO_TARGET:
        from edgeopt.pipeline.compare import deploy_auto

        return deploy_auto(request, pm=pm, events=events)
    target = check_target(pm, request.target, request.precision)
    device = resolve_device(request.device, target)
    out = Path(request.out) if request.out else default_out(request.source, target.name)
    check_destination(out)  # fail before the work, not after it: user files at --out are never replaced
    speedup = speedup_warnings(request.compression, target, pm.targets())
    for note in speedup:
        events.warn(note)

    with tempfile.TemporaryDirectory(prefix="edgeopt-") as tmp:
        prepared = prepare(request, pm, events, Path(tmp))
        request = target_request(request, prepared.compression)  # --max-drop less what compression used
        prepared = stages_on_target(prepared, target, device, pm=pm, request=request, events=events,
                                    feeds=feeds_for_batch(prepared.evaluation, prepared.batch))
        found = search_target(request, prepared, target, device, pm=pm, events=events)
        try:
            time_searches([found], prepared, budget_s=request.timing_s, events=events)
        finally:
            found.close()
        selection = select(
            found.candidates, precision=request.precision, force_precision=request.force_precision,
            max_drop=request.max_drop,
        )
        path = finish(request, prepared, found, selection, out=out, pm=pm, events=events, extra_warnings=speedup)
    return Deployment(path=path, manifest=verify_artifact(path),
                      warnings=tuple(_warnings(prepared, selection, speedup)))


def _warnings(prepared: Prepared, selection: Selection, extra: Sequence[str] = ()) -> list[str]:
    return [*prepared.warnings, *selection.warnings, *extra]


def finish(
    request: DeployRequest,
    prepared: Prepared,
    found: TargetSearch,
    selection: Selection,
    *,
    out: Path,
    pm: PluginManager,
    events: Events,
    extra_warnings: Sequence[str] = (),
    manifest_extra: Mapping[str, object] | None = None,
) -> Path:
    """Profile the selected candidate, build the manifest and write the artifact atomically to ``out``."""
    for w in selection.warnings:
        events.warn(w)
    decision = selection.chosen.choice or {}
    if decision.get("tied"):  # within noise of each other: say so, and what broke the tie
        events.step(decision["statement"])
    warnings_ = _warnings(prepared, selection, extra_warnings)
    chosen, target, device, graph = selection.chosen, found.target, found.device, prepared.graph
    evaluation, batch = prepared.evaluation, prepared.batch
    compiled = chosen.compiled
    assert compiled is not None
    search, ctx = found.search, found.ctx
    report_sensitivity(ctx, search, chosen)
    search_s = found.search_s + search.analysis_s
    events.step(f"profiling {chosen.plan.label or chosen.plan.precision}")
    summary = inspect_model(load_model(graph))
    size_bytes = sum((compiled.directory / f).stat().st_size for f in compiled.files)
    profile = profile_runner(
        checked_batches(
            lambda b: pm.runner(compiled, target, device, RunSettings(batch=b, threads=request.threads)),
            lambda b: feeds_for_batch(evaluation, b),
            base_batch=batch,
        ),
        lambda b: feeds_for_batch(evaluation, b),
        batches=request.batches,
        device=device,
        meters=pm.energy_meters(device),
        runs=request.runs,
        budget_s=request.timing_s,
        slo_ms=request.slo_ms,
        size_bytes=size_bytes,
        flops=summary.flops,
        bytes_moved=summary.weight_bytes + summary.activation_bytes,
        precision=chosen.plan.precision,
        measured_on=measured_on_host(device),
        measure_memory=False,
        not_batchable=evaluation.not_batchable,
    )
    smallest = 1 if evaluation.not_batchable else min(request.batches)
    memory_feeds = feeds_for_batch(evaluation, smallest)
    settings = RunSettings(batch=smallest, threads=request.threads)
    try:
        memory = measure_memory(compiled, target, device, settings, memory_feeds)
    except Exception as exc:  # e.g. a plugin registered only in this process: measure here, say so
        events.warn(f"memory measured in this process (a fresh process could not load the target: {exc})")
        memory = peak_memory(lambda: pm.runner(compiled, target, device, settings), memory_feeds)
    profile = replace(profile, memory=memory)
    manifest = build_manifest(
        request=request,
        graph=graph,
        summary=summary,
        target=target,
        device=device,
        chosen=chosen,
        candidates=found.candidates,
        profile=profile,
        plugin_versions=pm.plugin_versions(),
        warnings=warnings_,
        calibration=prepared.calibration,
        evaluation=evaluation,
    )
    manifest["search"] = search_section(request, ctx, search, chosen, search_s)
    manifest["sensitivity"] = sensitivity_rows(search, chosen)
    if prepared.compression:
        manifest["compression"] = with_deployed(prepared.compression, manifest["metrics"])
    manifest.update(manifest_extra or {})
    events.step(f"writing the artifact to {out}")
    files = {f: compiled.directory / f for f in compiled.files}
    return write_artifact(
        out, files=files, manifest=manifest, report_md=render_markdown(manifest),
        extra_text={HTML_NAME: render_html(manifest)},
    )
