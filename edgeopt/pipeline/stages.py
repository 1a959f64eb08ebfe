"""The stages every deploy runs, shared by a single-target deploy, ``--target auto`` and ``edgeopt compare``:
``prepare`` (import, normalize, data, the fp32 reference) once; ``open_search``/``search_target`` per target;
``time_searches`` for the runners left open."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgeopt.compression.deploy_guard import calibration_from_train
from edgeopt.compression.sdk import compress_for_deploy
from edgeopt.data.datasets import load_dataset, synthetic_dataset
from edgeopt.data.stream import answers, stream_outputs, with_stream_states
from edgeopt.errors import DataError, ModelError, TargetError
from edgeopt.evaluate.judge import run_outputs
from edgeopt.evaluate.reference import ReferenceRunner, batch_size_of, trim_labels
from edgeopt.pipeline.request import SYNTHETIC_SAMPLES, DeployRequest
from edgeopt.plugin.manager import PluginManager
from edgeopt.search import code_fingerprint as fingerprints
from edgeopt.search.cache import SearchCache, cache_limit_bytes, cache_root, data_fingerprint, evict, search_context
from edgeopt.search.candidates import Candidate, CandidateContext, Events, search_plans, time_candidates
from edgeopt.search.run import Search, run_search
from edgeopt.search.speed_screen import Bar
from edgeopt.types import Dataset, DeviceProfile, Graph, ImportOptions, TargetInfo
from edgeopt.version import __version__


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

    @functools.cached_property
    def data_fingerprints(self) -> tuple[str, str]:
        """``(calibration, evaluation)`` content hashes for the search cache, computed once for every target."""
        return data_fingerprint(self.calibration), data_fingerprint(self.evaluation)


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
        cache=open_cache(request, graph, target, device, pm, prepared.data_fingerprints),
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


def open_cache(request: DeployRequest, graph: Graph, target: TargetInfo, device: DeviceProfile, pm: PluginManager,
               data: tuple[str, str]) -> SearchCache | None:
    """The search cache of this target's candidates, keyed by content: graph, ``data`` (the calibration and
    evaluation fingerprints), target, plugin code and version, device, edgeopt's code, threads. None when
    ``request.cache`` is off."""
    if not request.cache:
        return None
    plugin = pm.plugin_object(target.plugin)
    plugin_code = "" if plugin is None else fingerprints.code_fingerprint(
        plugin, distribution=fingerprints.distribution_of_plugin(target.plugin))
    context = search_context(
        graph=graph.fingerprint, calibration=data[0], evaluation=data[1],
        target=target.name, plugin=target.plugin, plugin_version=pm.plugin_versions().get(target.plugin),
        plugin_code=plugin_code,
        device=device, edgeopt=__version__,
        edgeopt_code=fingerprints.code_fingerprint(fingerprints, distribution="edgeopt"),
        threads=request.threads,
    )
    root = cache_root()
    evict(root, cache_limit_bytes())
    return SearchCache(root, context=context)
