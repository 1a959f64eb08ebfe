"""The last stage of a deploy: profile the selected candidate, assemble the manifest, write the artifact atomically."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

from edgeopt.artifact.manifest import build_manifest
from edgeopt.artifact.report import render_markdown
from edgeopt.artifact.report_html import HTML_NAME, render_html
from edgeopt.artifact.write import write_artifact
from edgeopt.graph.inspect import inspect_model
from edgeopt.graph.model_io import load_model
from edgeopt.measure.harness import profile_runner
from edgeopt.measure.memory import measure_memory, peak_memory
from edgeopt.passes.batch import checked_batches
from edgeopt.pipeline.request import DeployRequest, measured_on_host
from edgeopt.pipeline.stages import Prepared, TargetSearch, feeds_for_batch
from edgeopt.plugin.manager import PluginManager, load_runner
from edgeopt.search.candidates import Events
from edgeopt.search.run import report_sensitivity
from edgeopt.search.selection import Selection
from edgeopt.types import RunSettings


def deploy_warnings(prepared: Prepared, selection: Selection, extra: Sequence[str] = ()) -> list[str]:
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
    selection_record: Mapping[str, object] | None = None,
) -> Path:
    """Profile the selected candidate, build the manifest and write the artifact atomically to ``out``.

    ``selection_record``: ``--target auto``'s comparison (every target measured and why the winner won), kept
    as the manifest's ``selection``."""
    for w in selection.warnings:
        events.warn(w)
    decision = selection.chosen.choice or {}
    if decision.get("tied"):  # within noise of each other: say so, and what broke the tie
        events.step(decision["statement"])
    warnings_ = deploy_warnings(prepared, selection, extra_warnings)
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
        memory = measure_memory(functools.partial(load_runner, compiled, target, device, settings), memory_feeds)
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
        search=search,
        search_context=ctx,
        search_s=search_s,
        compression=prepared.compression,
        selection=selection_record,
    )
    events.step(f"writing the artifact to {out}")
    files = {f: compiled.directory / f for f in compiled.files}
    return write_artifact(
        out, files=files, manifest=manifest, report_md=render_markdown(manifest),
        extra_text={HTML_NAME: render_html(manifest)},
    )
