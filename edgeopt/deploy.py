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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edgeopt.artifact import check_destination, verify_artifact, write_artifact
from edgeopt.candidates import CandidateContext, Events, search_plans, select, time_candidates
from edgeopt.data import load_dataset, synthetic_dataset
from edgeopt.errors import DataError, InputSpecError, ModelError, TargetError
from edgeopt.graph import inspect_model, load_model
from edgeopt.hardware import get_profile, host_profile
from edgeopt.harness import peak_memory, profile_runner
from edgeopt.manifest import build_manifest
from edgeopt.memory import measure_memory
from edgeopt.metrics import FIDELITY_METRICS, METRICS, run_outputs
from edgeopt.passes.batch import checked_batches
from edgeopt.plugins import PluginManager, get_plugin_manager
from edgeopt.reference import ReferenceRunner, batch_size_of, trim_labels
from edgeopt.report import render_markdown
from edgeopt.report_html import HTML_NAME, render_html
from edgeopt.search import open_cache, report_sensitivity, run_search, search_section, sensitivity_rows
from edgeopt.types import Dataset, DeviceProfile, Graph, ImportOptions, RunSettings, TargetInfo

log = logging.getLogger("edgeopt")

SYNTHETIC_SAMPLES = 32


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
    weights: Path | None = None
    runs: int | None = None
    timing_s: float = 2.0
    threads: int | None = None
    budget_s: float | None = None
    """Wall-clock limit for the candidate search (compile, check, fallback); candidates not started in time
    are listed as skipped. Timing (``timing_s`` per run) and profiling come on top. None: no limit."""
    cache: bool = True
    """Reuse compiled and evaluated candidates from the search cache (``edgeopt.search_cache``)."""


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
    """Default Events for the SDK: steps to the log, warnings through ``warnings.warn``."""

    def step(self, message: str) -> None:
        log.info(message)

    def warn(self, message: str) -> None:
        warnings.warn(message, stacklevel=3)


def resolve_device(name: str | None, target: TargetInfo) -> DeviceProfile:
    if name is None or name == "host":
        if "cpu" in target.device_kinds:
            return host_profile()
        raise TargetError(
            f"target {target.name!r} needs a device profile (--device)",
            hint="run `edgeopt devices` and pass --device NAME",
        )
    return get_profile(name)


def default_out(source: object, target: str) -> Path:
    stem = Path(source).stem if isinstance(source, (str, Path)) else type(source).__name__.lower()
    stem = stem.replace(":", "-").replace(".", "-") or "model"
    return Path.cwd() / f"{stem}-{target}.edgeopt"


def feeds_for_batch(dataset: Dataset, batch: int, *, limit: int = 8) -> list[dict[str, np.ndarray]]:
    """Up to ``limit`` feeds of exactly ``batch`` samples, repeating samples when the data is short."""
    if len(dataset) < batch:
        reps = -(-batch // max(len(dataset), 1))
        dataset = Dataset(
            {k: np.concatenate([v] * reps) for k, v in dataset.arrays.items()}, synthetic=dataset.synthetic
        )
    return dataset.batches(batch)[:limit]


def _data(request: DeployRequest, graph: Graph, events: Events) -> tuple[Dataset, Dataset, list[str]]:
    notes: list[str] = []
    calib = load_dataset(request.calib, graph, purpose="calibration") if request.calib is not None else None
    evaluation = load_dataset(request.eval, graph, purpose="evaluation") if request.eval is not None else None
    if calib is None:
        calib = synthetic_dataset(graph, samples=SYNTHETIC_SAMPLES, seed=0)
        notes.append(
            "no --calib data: calibrating on synthetic random inputs; quantized accuracy on real inputs may differ, "
            "give --calib with representative samples"
        )
    if evaluation is None:
        if calib.synthetic:
            evaluation = synthetic_dataset(graph, samples=SYNTHETIC_SAMPLES, seed=1)
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


def _check_request(request: DeployRequest) -> None:
    metric = request.metric
    if isinstance(metric, str) and metric not in METRICS and metric not in FIDELITY_METRICS:
        raise DataError(
            f"unknown metric {metric!r}", hint=f"choose one of: {', '.join([*METRICS, *FIDELITY_METRICS])}"
        )
    if request.budget_s is not None and not (math.isfinite(request.budget_s) and request.budget_s > 0):
        raise InputSpecError(f"--budget-s must be a positive number of seconds, got {request.budget_s}",
                             hint="leave --budget-s unset for no limit")
    if not math.isfinite(request.max_drop):
        raise InputSpecError(f"--max-drop must be a finite number, got {request.max_drop}",
                             hint="give the largest accepted drop in the metric's own units, e.g. 1.0")


def run_deploy(request: DeployRequest, *, pm: PluginManager | None = None, events: Events | None = None) -> Deployment:
    """Deploy ``request.source`` to ``request.target`` and return the verified artifact."""
    events = events or LogEvents()
    pm = pm or get_plugin_manager()
    _check_request(request)
    target = pm.target(request.target)
    if request.precision != "auto" and request.precision not in target.precisions:
        raise TargetError(
            f"target {target.name!r} does not support precision {request.precision!r}",
            hint=f"choose one of: auto, {', '.join(target.precisions)}",
        )
    device = resolve_device(request.device, target)
    out = Path(request.out) if request.out else default_out(request.source, target.name)
    check_destination(out)  # fail before the work, not after it: user files at --out are never replaced
    warnings_: list[str] = []

    with tempfile.TemporaryDirectory(prefix="edgeopt-") as tmp:
        work = Path(tmp)
        events.step("importing and normalizing the model")
        options = ImportOptions(
            input_shapes=dict(request.input_shapes), trust_pickle=request.trust_pickle, weights=request.weights
        )
        (work / "graph").mkdir()
        graph = pm.import_model(request.source, options, work / "graph")
        if graph is None:
            raise ModelError(
                f"no importer recognises {request.source!r}",
                hint="give an .onnx file, a torch nn.Module or 'package.module:factory', or a scikit-learn estimator",
            )
        for note in graph.notes:
            events.warn(note)
        warnings_.extend(graph.notes)
        calib, evaluation, data_notes = _data(request, graph, events)
        warnings_.extend(data_notes)
        batch = batch_size_of(graph.inputs)

        events.step("running the reference (fp32, ONNX Runtime CPU)")
        reference = ReferenceRunner(graph.path, threads=request.threads)
        reference_outputs = run_outputs(reference, evaluation, batch=batch)
        reference.close()

        began = time.monotonic()
        plans = search_plans(pm, graph, target, device, request.precision, events)
        if not plans:
            raise TargetError(f"target {target.name!r} offered no plan for precision {request.precision!r}")
        baseline = (
            []
            if any(p.precision == "fp32" for p, _ in plans) or "fp32" not in target.precisions
            else [(p, "baseline") for p in pm.plan(graph, target, device, "fp32")[:1]]
        )
        ctx = CandidateContext(
            pm=pm,
            graph=graph,
            target=target,
            device=device,
            calibration=calib,
            evaluation=evaluation,
            reference_outputs=reference_outputs,
            labels=trim_labels(evaluation, batch),
            metric=request.metric,
            max_drop=request.max_drop,
            batch=batch,
            threads=request.threads,
            workdir=work,
            events=events,
            cache=open_cache(request, graph, target, device, pm, calib, evaluation),
            deadline=began + request.budget_s if request.budget_s is not None else None,
        )
        search = run_search(ctx, [*baseline, *plans], request.precision)
        search_s = time.monotonic() - began
        candidates, runners = search.candidates, search.runners
        try:
            if runners:
                events.step(f"timing {len(runners)} candidate(s), interleaved")
                stats = time_candidates(
                    {str(i): r for i, r in runners.items()},
                    feeds_for_batch(evaluation, batch),
                    batch=batch,
                    budget_s=request.timing_s,
                )
                for i in runners:
                    candidates[i] = replace(candidates[i], latency=stats[str(i)])
        finally:
            search.close()
        selection = select(
            candidates, precision=request.precision, force_precision=request.force_precision, max_drop=request.max_drop
        )
        for w in selection.warnings:
            events.warn(w)
        warnings_.extend(selection.warnings)
        chosen = selection.chosen
        compiled = chosen.compiled
        assert compiled is not None
        report_sensitivity(ctx, search, chosen)
        search_s += search.analysis_s
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
            measure_memory=False,
        )
        memory_feeds = feeds_for_batch(evaluation, min(request.batches))
        settings = RunSettings(batch=min(request.batches), threads=request.threads)
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
            candidates=candidates,
            profile=profile,
            plugin_versions=pm.plugin_versions(),
            warnings=warnings_,
            calibration=calib,
            evaluation=evaluation,
        )
        manifest["search"] = search_section(request, ctx, search, chosen, search_s)
        manifest["sensitivity"] = sensitivity_rows(search, chosen)
        events.step(f"writing the artifact to {out}")
        files = {f: compiled.directory / f for f in compiled.files}
        path = write_artifact(
            out, files=files, manifest=manifest, report_md=render_markdown(manifest),
            extra_text={HTML_NAME: render_html(manifest)},
        )
    return Deployment(path=path, manifest=verify_artifact(path), warnings=tuple(warnings_))
