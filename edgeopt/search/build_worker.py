"""Candidate builds in a memory-limited worker process: ``edgeopt_compile`` for each plan of a search.

Every candidate's compile runs in an ``edgeopt.process.isolation.IsolatedWorker`` whose process tree is held to a
memory limit (``edgeopt.process.memory_limit``: ``--max-memory``, else a share of the available memory). A build past
the limit, one that crashes, and one that hangs past ``EDGEOPT_ISOLATION_TIMEOUT_S`` each raise
``CompileError`` with the reason, which the search records as a ``failed`` candidate before it moves on.

The child rebuilds the target's plugin from a ``PluginRef``: a plugin that is an importable module
(entry-point plugins, and modules given to ``PluginManager.register``) is imported there by name; any other
object is sent pickled. A plugin that allows neither is built in this process, without the limit, and the
search says so once. One worker serves a target's builds one at a time, so a plugin's own long-lived state
(e.g. OpenVINO's NNCF worker, which takes seconds to start) lives on between builds; a worker whose tree still
holds more than ``RECYCLE_SHARE`` of the limit after a build is replaced by a fresh one, and a build that goes
past the limit in a used worker is tried once more in a fresh one before its candidate fails.

``EDGEOPT_ISOLATION=0`` builds in this process, without a memory limit (for debuggers).

What is bounded is the build, whose memory grows with calibration data and vendor compilers. Evaluating and
timing a candidate load its model in the deploy process (all runners stay open to be timed together): one
inference session per candidate plus the evaluation outputs, whatever the calibration; the artifact's
profile measures the chosen model's load-and-run memory in a fresh process.
"""

from __future__ import annotations

import importlib
import pickle
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from edgeopt.errors import CompileError, PluginError
from edgeopt.process.isolation import (
    IsolatedWorker,
    WorkerCrashed,
    WorkerMemoryExceeded,
    WorkerTimeout,
    isolation_enabled,
)
from edgeopt.process.memory_limit import fmt_bytes, tree_rss

if TYPE_CHECKING:
    from edgeopt.plugin.manager import PluginManager
    from edgeopt.types import Compiled, Dataset, DeviceProfile, Graph, Plan, TargetInfo

FUNCTION = "edgeopt.search.build_worker:compile_in_worker"
RECYCLE_SHARE = 0.5
"""A worker whose tree holds more than this share of the limit after a build is replaced before the next."""
_PRELOAD = ("numpy", "onnx", "onnxruntime")


@dataclass(frozen=True)
class PluginRef:
    """How a worker process loads the plugin that owns a target: by module name, or from a pickle."""

    name: str
    version: str
    module: str = ""
    pickled: bytes = b""


def plugin_ref(pm: PluginManager, plugin: str) -> PluginRef | None:
    """A ``PluginRef`` for ``pm``'s plugin ``plugin``, or None when it can be neither imported nor pickled."""
    obj = pm.plugin_object(plugin)
    if obj is None:
        return None
    version = pm.plugin_versions().get(plugin, "0")
    if isinstance(obj, ModuleType):
        name = obj.__name__
        if name != "__main__" and sys.modules.get(name) is obj and getattr(obj, "__spec__", None) is not None:
            return PluginRef(plugin, version, module=name)
        return None
    try:
        data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(data)  # noqa: S301 - our own object, checked to round-trip
    except Exception:
        return None
    return PluginRef(plugin, version, pickled=data)


_MANAGERS: dict[PluginRef, PluginManager] = {}


def _manager(ref: PluginRef) -> PluginManager:
    """The worker's own plugin manager holding only ``ref``'s plugin (kept for the worker's life)."""
    pm = _MANAGERS.get(ref)
    if pm is not None:
        return pm
    from edgeopt.plugin.manager import PluginManager

    obj = importlib.import_module(ref.module) if ref.module else pickle.loads(ref.pickled)  # noqa: S301 - parent's
    pm = PluginManager()
    pm.register(obj, ref.name, version=ref.version)
    status = next(s for s in pm.plugins() if s.name == ref.name)
    if status.status != "ok":
        raise PluginError(f"plugin {ref.name!r} could not be loaded in the build worker: {status.error}")
    _MANAGERS[ref] = pm
    return pm


def compile_in_worker(ref: PluginRef, graph: Graph, plan: Plan, target: TargetInfo, device: DeviceProfile,
                      calibration: Dataset, workdir: str) -> Compiled:
    """Worker side: ``edgeopt_compile`` through the plugin named by ``ref``. A ``MemoryError`` (an allocation
    refused by the worker's ``RLIMIT_DATA`` backstop) leaves as one, so the parent reports the memory limit."""
    try:
        return _manager(ref).compile(graph, plan, target, device, calibration, Path(workdir))
    except PluginError as exc:
        if isinstance(exc.__cause__, MemoryError):
            raise MemoryError(str(exc.__cause__)) from None
        raise


class BuildWorker:
    """Builds one target's candidates in a worker held to ``memory_limit`` bytes. Call ``close()`` when done."""

    def __init__(self, pm: PluginManager, target: TargetInfo, *, memory_limit: int) -> None:
        self.pm = pm
        self.target = target
        self.memory_limit = memory_limit
        self.ref = plugin_ref(pm, target.plugin)
        self.peaks: dict[str, int] = {}
        """Largest tree RSS seen while building each plan label (bytes; worker builds only)."""
        self._worker: IsolatedWorker | None = None
        self._served = 0
        """Builds the running worker has completed (0: it is fresh, or none runs)."""

    @property
    def bounded(self) -> bool:
        """Whether builds run in the memory-limited worker (False: isolation off, or the plugin cannot move)."""
        return isolation_enabled() and self.ref is not None

    def compile(self, graph: Graph, plan: Plan, device: DeviceProfile, calibration: Dataset,
                workdir: Path) -> Compiled:
        """``pm.compile`` for ``plan`` in the worker; ``CompileError`` when it runs out of memory, crashes or hangs.

        A build past the limit in a worker that earlier builds had used is tried once more in a fresh worker
        (into an emptied ``workdir``), so what earlier builds left behind never fails a candidate."""
        if not self.bounded:
            return self.pm.compile(graph, plan, self.target, device, calibration, workdir)
        label = plan.label or plan.precision
        what = f"building {label}"
        while True:
            fresh = self._served == 0
            try:
                compiled = self._call(graph, plan, device, calibration, workdir, label=label, what=what)
                break
            except WorkerMemoryExceeded as exc:
                self._served = 0
                if fresh:
                    raise CompileError(_memory_reason(what, plan, len(calibration), exc),
                                       hint="raise --max-memory (default: 60% of the available memory)") from exc
                shutil.rmtree(workdir, ignore_errors=True)
                Path(workdir).mkdir(parents=True, exist_ok=True)
            except WorkerCrashed as exc:
                self._served = 0
                raise CompileError(f"{what} crashed the build worker of plugin {self.target.plugin!r} "
                                   f"({exc.detail})", hint="the plugin or its vendor compiler failed hard on this plan"
                                   ) from exc
            except WorkerTimeout as exc:
                self._served = 0
                raise CompileError(exc.message, hint=exc.hint) from exc
        self._served += 1
        pid = self._worker.pid if self._worker is not None else None
        if pid is not None and tree_rss(pid) > RECYCLE_SHARE * self.memory_limit:
            self.close()
        return compiled

    def _call(self, graph: Graph, plan: Plan, device: DeviceProfile, calibration: Dataset, workdir: Path, *,
              label: str, what: str) -> Compiled:
        if self._worker is None:
            preload = (*_PRELOAD, self.ref.module) if self.ref.module else _PRELOAD  # type: ignore[union-attr]
            self._worker = IsolatedWorker(preload=preload, memory_limit=self.memory_limit)
        worker = self._worker
        try:
            return worker.call(FUNCTION, self.ref, graph, plan, self.target, device, calibration, str(workdir),
                               what=what)
        finally:
            self.peaks[label] = worker.last_peak

    def close(self) -> None:
        """Stop the worker (and whatever it started); a later build starts a fresh one."""
        self._served = 0
        if self._worker is not None:
            self._worker.close()
            self._worker = None


def _memory_reason(what: str, plan: Plan, samples: int, exc: WorkerMemoryExceeded) -> str:
    calibrated = plan.precision == "int8" and samples
    cause = f" (it calibrates on {samples} samples)" if calibrated else ""
    seen = f", stopped at {fmt_bytes(exc.peak)}" if exc.peak > exc.limit else ", an allocation failed"
    fix = "a larger --max-memory or fewer --calib samples" if calibrated else "a larger --max-memory"
    return f"{what}{cause} needed more than {fmt_bytes(exc.limit)} (--max-memory{seen}); try {fix}"
