"""The matrix run: every model × target × device, builds in parallel, one timing job per device at a time.

Plan: each cell needs a build (model, target, device profile; equal builds are shared, so two devices with
the same profile, or two nodes with identical CPUs, cost one build) and a measurement on its device. Builds
are kept in flight up to the farm's build slots; each device has at most one measure job in flight (and its
Ray resource ``edgeopt:device:<name>`` = 1 holds any other client to the same). A result is installed only
after its hashes check out (``edgeopt.farm.receive``) and then registered. Faults end in a cell status,
never in a partial file: a job past ``timeout_s`` is cancelled (``timed out``); a job whose workers died past
the retries is ``failed`` with that reason; a device whose node left the farm makes its pending cells
``gone``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError, FarmError
from edgeopt.farm.executors import JobLost
from edgeopt.farm.jobs import BuildJob, DeployOptions, MeasureJob, blob_for
from edgeopt.farm.matrix import Cell, FarmComparison, cell_from_manifest, with_winners
from edgeopt.farm.receive import install_result, register_result
from edgeopt.farm.resources import FarmDevice

Progress = Callable[[int, int, str], None]
"""``(cells decided, cells in all, what just happened)``."""
_POLL_S = 0.25
_NODES_EVERY_S = 1.0


@dataclass
class _Build:
    job: BuildJob
    blobs: list[Any]
    cells: list[int]
    handle: Any = None
    submitted: float = 0.0
    result: dict | None = None


@dataclass
class _Run:
    cells: list[Cell]
    builds: dict[str, _Build] = field(default_factory=dict)
    measures: dict[str, list[tuple[int, MeasureJob]]] = field(default_factory=dict)
    """Per device, the measure jobs whose build is done, waiting for the device."""
    in_flight: dict[Any, tuple[str, Any, float]] = field(default_factory=dict)
    """handle -> (``build`` key or ``measure`` device, build key or cell index, submitted at)."""
    busy: set[str] = field(default_factory=set)
    started: dict[int, float] = field(default_factory=dict)
    sources: dict[int, Path] = field(default_factory=dict)
    """Cell index -> the client's model file."""
    warnings: list[str] = field(default_factory=list)


def model_name(path: Path) -> str:
    from edgeopt.registry.recording import deployment_name

    return deployment_name(str(path))


def run_matrix(
    models: Sequence[Path], *, executor: Any, targets: Sequence[str] = (), devices: Sequence[str] = (),
    options: DeployOptions | None = None, calib: Path | None = None, eval_: Path | None = None,
    out_dir: Path, timeout_s: float = 1800.0, progress: Progress | None = None,
) -> FarmComparison:
    """Run the matrix on ``executor`` (``RayExecutor`` or ``LocalExecutor``) and return every cell; artifacts go
    to ``out_dir/<model>/<target>@<device>.edgeopt``. ``FarmError`` when the farm offers none of what is asked."""
    began = time.monotonic()
    options = options or DeployOptions()
    available = executor.devices()
    names = list(dict.fromkeys(devices)) or [d.name for d in available.values() if not d.gone]
    unknown = [d for d in names if d not in available]
    if unknown or not names:
        raise FarmError(f"no device named {', '.join(unknown) or '(any)'} in the farm at {executor.address}",
                        hint=f"devices there: {', '.join(available) or 'none'}; see `edgeopt farm status`")
    wanted = list(dict.fromkeys(targets)) or sorted({t for d in names for t in available[d].targets})
    model_paths = [Path(m) for m in models]
    blobs = {m: blob_for(m, kind="model") for m in model_paths}
    data = {k: (p, blob_for(p, kind="data")) for k, p in (("calib", calib), ("eval", eval_)) if p is not None}
    refs: dict[str, Any] = {}

    def ref(path: Path, sha: str) -> Any:
        if sha not in refs:  # each file goes to the object store once, whatever number of jobs reads it
            refs[sha] = executor.put(path)
        return refs[sha]

    run = _Run([])
    for m in model_paths:
        for t in wanted:
            for d in names:
                dev = available[d]
                cell = Cell(model_name(m), t, d)
                if dev.gone:
                    run.cells.append(replace(cell, status="gone", reason=f"device {d} has left the farm"))
                    continue
                if t not in dev.targets:
                    run.cells.append(replace(cell, status="unavailable",
                                             reason=f"device {d} offers {', '.join(dev.targets) or 'no target'}"))
                    continue
                job = BuildJob(blobs[m], t, dev.profile_key, cell.model, options,
                               calib=data["calib"][1] if "calib" in data else None,
                               eval=data["eval"][1] if "eval" in data else None)
                build = run.builds.get(job.key)
                if build is None:
                    inputs = [ref(m, blobs[m].sha256)]
                    inputs += [ref(data[k][0], data[k][1].sha256) if k in data else None for k in ("calib", "eval")]
                    build = run.builds[job.key] = _Build(job, inputs, [])
                build.cells.append(len(run.cells))
                run.sources[len(run.cells)] = m
                run.cells.append(cell)
    _loop(run, executor, available, options=options, out_dir=out_dir, calib=calib, timeout_s=timeout_s,
          progress=progress)
    return FarmComparison(
        models=tuple(dict.fromkeys(model_name(m) for m in model_paths)), targets=tuple(wanted), devices=tuple(names),
        objective=options.objective, cells=with_winners(run.cells, options.objective), address=executor.address,
        seconds=time.monotonic() - began, warnings=tuple(dict.fromkeys(run.warnings)),
    )


def _loop(run: _Run, executor: Any, devices: dict[str, FarmDevice], *, options: DeployOptions, out_dir: Path,
          calib: Path | None, timeout_s: float, progress: Progress | None) -> None:
    total = len(run.cells)
    pending = list(run.builds.values())
    slots = executor.build_slots()
    checked = time.monotonic()

    def decide(index: int, cell: Cell, what: str) -> None:
        run.cells[index] = cell
        if progress is not None:
            progress(sum(1 for c in run.cells if c.status != "pending"), total, what)

    if progress is not None:
        progress(sum(1 for c in run.cells if c.status != "pending"), total, "submitting")
    while any(c.status == "pending" for c in run.cells):
        while pending and sum(1 for v in run.in_flight.values() if v[0] == "build") < slots:
            b = pending.pop(0)
            b.submitted = time.monotonic()
            for i in b.cells:
                run.started[i] = b.submitted
            b.handle = executor.submit_build(b.job, b.blobs)
            run.in_flight[b.handle] = ("build", b.job.key, b.submitted)
        for device, queue in run.measures.items():
            if queue and device not in run.busy:
                index, job = queue.pop(0)
                built = run.builds[job.build].handle
                handle = executor.submit_measure(job, built, devices[device])
                run.in_flight[handle] = (f"measure:{device}", index, time.monotonic())
                run.busy.add(device)
        for handle in executor.wait(list(run.in_flight), _POLL_S):
            kind, item, _ = run.in_flight.pop(handle)
            _finish(run, executor, handle, kind, item, options=options, out_dir=out_dir, calib=calib, decide=decide)
        now = time.monotonic()
        for handle, (kind, item, since) in list(run.in_flight.items()):
            if now - since > timeout_s:
                executor.cancel(handle)
                del run.in_flight[handle]
                reason = f"timed out after {timeout_s:g} s"
                _fail(run, kind, item, "timed out", reason, decide)
        if now - checked > _NODES_EVERY_S:
            checked = now
            _gone(run, executor, decide)
        if not run.in_flight and not pending and not any(run.measures.values()):
            for i, c in enumerate(run.cells):  # nothing left that could decide them (a bug, said plainly)
                if c.status == "pending":
                    decide(i, replace(c, status="failed", reason="no job left for this cell"), "failed")


def _fail(run: _Run, kind: str, item: Any, status: str, reason: str, decide: Callable, hint: str = "") -> None:
    if kind == "build":
        for i in run.builds[item].cells:
            if run.cells[i].status == "pending":
                decide(i, replace(run.cells[i], status=status, reason=f"build: {reason}", hint=hint),
                       f"{run.cells[i].target}@{run.cells[i].device} {status}")
        for device, queue in run.measures.items():
            run.measures[device] = [(i, j) for i, j in queue if j.build != item]
        return
    run.busy.discard(kind.removeprefix("measure:"))
    cell = run.cells[item]
    decide(item, replace(cell, status=status, reason=f"measure: {reason}", hint=hint),
           f"{cell.model} {cell.target}@{cell.device} {status}")


def _finish(run: _Run, executor: Any, handle: Any, kind: str, item: Any, *, options: DeployOptions, out_dir: Path,
            calib: Path | None, decide: Callable) -> None:
    try:
        result = executor.result(handle)
    except JobLost as exc:
        _fail(run, kind, item, "failed", str(exc), decide)
        return
    if not result.get("ok"):
        err = result.get("error") or {}
        _fail(run, kind, item, "failed", f"error[{err.get('code', '?')}]: {err.get('message', '')}", decide,
              hint=str(err.get("hint") or ""))
        return
    if kind == "build":
        build = run.builds[item]
        build.result = result
        run.warnings.extend(result.get("warnings") or [])
        for i in build.cells:
            c = run.cells[i]
            if c.status != "pending":
                continue
            job = MeasureJob(item, c.target, c.device, timing_s=options.timing_s, runs=options.runs)
            run.measures.setdefault(c.device, []).append((i, job))
        return
    run.busy.discard(kind.removeprefix("measure:"))
    cell = run.cells[item]
    out = out_dir / cell.model / f"{cell.target}@{cell.device}.edgeopt"
    try:
        path, manifest = install_result(result, out, device=cell.device, target=cell.target)
    except EdgeoptError as exc:
        decide(item, replace(cell, status="failed", reason=f"receive: {exc.message}", hint=exc.hint),
               f"{cell.target}@{cell.device} failed")
        return
    source = str(Path(run.sources[item]).resolve())
    request = {"source": source, "farm": executor.address, "device": cell.device, "target": cell.target,
               "calib": str(calib.resolve()) if calib else None, "precision": options.precision}
    # the registry names the client's model file; the sealed manifest keeps the path the worker built from
    record = register_result(path, {**manifest, "source": {**(manifest.get("source") or {}), "path": source}},
                             name=cell.model, request=request, calib=calib, warn=run.warnings.append)
    decide(item, cell_from_manifest(cell, manifest, artifact=str(path), ref=record.ref if record else "",
                                    seconds=time.monotonic() - run.started.get(item, time.monotonic())),
           f"{cell.model} {cell.target}@{cell.device} measured")


def _gone(run: _Run, executor: Any, decide: Callable) -> None:
    """Cells waiting on a device no alive node offers any more end as ``gone``."""
    try:
        now_devices = executor.devices()
    except Exception:  # noqa: BLE001 - the head is unreachable: the job timeouts still bound the run
        return
    for i, cell in enumerate(run.cells):
        dev = now_devices.get(cell.device)
        if cell.status == "pending" and (dev is None or dev.gone):
            for handle, (kind, item, _) in list(run.in_flight.items()):
                if kind == f"measure:{cell.device}" and item == i:
                    executor.cancel(handle)
                    del run.in_flight[handle]
                    run.busy.discard(cell.device)
            run.measures[cell.device] = [(j, m) for j, m in run.measures.get(cell.device, []) if j != i]
            decide(i, replace(cell, status="gone", reason=f"device {cell.device} left the farm before it was measured"),
                   f"{cell.target}@{cell.device} gone")
