"""Time every compression stage on the deploy's target, so the record's latency is the target's, not ONNX Runtime's.

``edgeopt.compression.measure.time_stages`` times the stages with ONNX Runtime on the CPU, which is all the SDK's
``compress`` knows. A deploy knows its target: ``time_on_target`` imports each stage's ONNX file, has the
target's plugin plan and compile it (fp32, or the target's first precision when it has no fp32) and times all
stages with the target's runners, interleaved in one run by the core harness. When the target cannot build or
run a stage, the ONNX Runtime CPU figures stay and the record says why.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError, TargetError
from edgeopt.measure.harness import measure_interleaved
from edgeopt.types import Dataset, DeviceProfile, ImportOptions, RunSettings, TargetInfo

STAGE_PATHS = "_stage_paths"
"""Key of the stage ONNX paths in the deploy's compression record while the deploy runs; never in a manifest."""


def _build(pm: Any, path: Path, target: TargetInfo, device: DeviceProfile, calibration: Dataset, workdir: Path,
           threads: int | None) -> tuple[Any, str]:
    """A runner of the target for the stage at ``path`` and the plan's label."""
    graph = pm.import_model(path, ImportOptions(), workdir / "graph")
    precision = "fp32" if "fp32" in target.precisions else target.precisions[0]
    plans = pm.plan(graph, target, device, precision)
    if not plans:
        raise TargetError(f"target {target.name!r} offered no {precision} plan")
    (workdir / "compiled").mkdir(parents=True, exist_ok=True)
    compiled = pm.compile(graph, plans[0], target, device, calibration, workdir / "compiled")
    batch = int(graph.inputs[0].shape[0]) if graph.inputs and isinstance(graph.inputs[0].shape[0], int) else 1
    runner = pm.runner(compiled, target, device, RunSettings(batch=batch, threads=threads))
    return runner, plans[0].label or plans[0].precision


def time_on_target(
    record: Mapping[str, Any],
    *,
    pm: Any,
    target: TargetInfo,
    device: DeviceProfile,
    calibration: Dataset,
    feeds: list[dict],
    batch: int,
    workdir: Path,
    budget_s: float,
    threads: int | None = None,
    warn: Callable[[str], None] = lambda _: None,
) -> dict:
    """``record`` with every stage's ``latency`` measured on ``target`` (and ``summary.speedup_p50`` updated).

    Uses the stage files under ``record[STAGE_PATHS]`` (removed from the result). On an ``EdgeoptError`` the
    ONNX Runtime CPU figures stay, with a note and a ``warn``."""
    out = {k: v for k, v in record.items() if k != STAGE_PATHS}
    paths = [Path(p) for p in record.get(STAGE_PATHS) or []]
    stages = [dict(s) for s in out.get("stages") or []]
    if not paths or len(paths) != len(stages):
        return out
    runners: dict[str, Any] = {}
    labels: dict[str, str] = {}
    try:
        for i, path in enumerate(paths):
            runners[str(i)], labels[str(i)] = _build(pm, path, target, device, calibration, workdir / f"stage-{i}",
                                                     threads)
        stats = measure_interleaved(runners, feeds, warmup=10, budget_s=budget_s, min_rounds=20, batch=batch)
    except EdgeoptError as exc:
        note = f"compression latency stays ONNX Runtime CPU: target {target.name!r} could not run a stage ({exc})"
        warn(note)
        return {**out, "notes": [*out.get("notes", []), note]}
    finally:
        for r in runners.values():
            r.close()
    for i, stage in enumerate(stages):
        st = stats[str(i)]
        stage["latency"] = {
            "batch": batch, "p50_s": st.p50, "min_s": st.min, "p90_s": st.p90, "runs": st.runs,
            "method": f"target {target.name} on {device.name} ({labels[str(i)]}), core harness, all stages "
                      "interleaved" + (f", {threads} thread(s)" if threads else ""),
            "onnxruntime_cpu_p50_s": (stage.get("latency") or {}).get("p50_s"),
        }
    summary = dict(out.get("summary") or {})
    first, last = stages[0]["latency"]["p50_s"], stages[-1]["latency"]["p50_s"]
    summary["speedup_p50"] = first / last if last else None
    return {**out, "stages": stages, "summary": summary}


def stages_on_target(prepared: Any, target: TargetInfo, device: DeviceProfile, *, pm: Any, request: Any, events: Any,
                     feeds: Sequence[Mapping[str, Any]]) -> Any:
    """The deploy's ``Prepared`` with its compression record timed on ``target`` (unchanged without one)."""
    if not prepared.compression:
        return prepared
    events.step(f"timing the compression stages on target {target.name}")
    record = time_on_target(
        prepared.compression, pm=pm, target=target, device=device, calibration=prepared.calibration,
        feeds=[dict(f) for f in feeds], batch=prepared.batch, workdir=prepared.workdir / "compress-timing",
        budget_s=max(float(request.timing_s), 0.1), threads=request.threads, warn=events.warn,
    )
    return replace(prepared, compression=record)
