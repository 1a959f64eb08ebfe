"""Where farm jobs run: on a Ray cluster (``RayExecutor``) or in this process (``LocalExecutor``, the same jobs
without the farm, used as the reference the farm is checked against and by the overhead benchmark).

Both submit only the fixed entry points of ``edgeopt.farm.worker`` with a job as JSON and file bytes; Ray
sends the functions by reference (module and name) and the arguments as data. A Ray task whose worker process
or node dies is retried by Ray up to ``retries`` times on any node holding the same resources; a job that
fails for a reason the user can act on comes back as data (``{"ok": False}``) and is not retried.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgeopt.farm import worker
from edgeopt.farm.jobs import BuildJob, MeasureJob, job_to_json
from edgeopt.farm.resources import FarmDevice, build_resource, farm_devices, host_signature, measure_resources


class JobLost(Exception):
    """A job that produced no result: its workers died past the retries, it was cancelled, or it timed out."""


class _Done:
    """A finished local job (hashable by identity, like a Ray ``ObjectRef``)."""

    def __init__(self, value: dict) -> None:
        self.value = value


class LocalExecutor:
    """Runs every job here, one after another, as ``Done`` handles: the farm's jobs without the farm."""

    address = "local"

    def __init__(self, device: str = "local") -> None:
        from edgeopt.api import targets
        from edgeopt.measure.devices import host_profile

        host = host_profile()
        names = tuple(t.name for t in targets() if t.available and not t.emulated and "cpu" in t.device_kinds)
        self._device = FarmDevice(device, host_signature(host.isa, host.cores), names, ("local",), 1.0)

    def devices(self) -> dict[str, FarmDevice]:
        return {self._device.name: self._device}

    def build_slots(self) -> int:
        return 1

    def put(self, path: Path) -> bytes:
        return path.read_bytes()

    def submit_build(self, job: BuildJob, blobs: Sequence[Any]) -> _Done:
        return _Done(worker.build(job_to_json(job), *blobs))

    def submit_measure(self, job: MeasureJob, built: _Done, device: FarmDevice) -> _Done:
        return _Done(worker.measure(job_to_json(job), built.value))

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        return list(handles)

    def result(self, handle: _Done) -> dict:
        return handle.value

    def cancel(self, handle: Any) -> None:
        return None


class RayExecutor:
    """Jobs as Ray tasks on a connected cluster (``ray.init`` already called)."""

    def __init__(self, ray: Any, *, address: str = "", retries: int = 2) -> None:
        self.ray = ray
        self.address = address
        self.retries = retries
        self._build = ray.remote(worker.build)
        self._measure = ray.remote(worker.measure)

    def nodes(self) -> list[Mapping[str, Any]]:
        return list(self.ray.nodes())

    def devices(self) -> dict[str, FarmDevice]:
        """Devices alive now, and those seen before whose node has died (``gone``; ``edgeopt.farm.book``)."""
        from edgeopt.farm.book import devices_with_gone

        return devices_with_gone(self.ray, farm_devices(self.nodes()))

    def build_slots(self) -> int:
        """CPUs of the alive nodes that can build something: the builds kept in flight at once."""
        cpus = sum(float((n.get("Resources") or {}).get("CPU", 0)) for n in self.nodes() if n.get("Alive") and any(
            k.startswith("edgeopt:build:") for k in (n.get("Resources") or {})))
        return max(1, int(cpus))

    def put(self, path: Path) -> Any:
        return self.ray.put(path.read_bytes())

    def submit_build(self, job: BuildJob, blobs: Sequence[Any]) -> Any:
        return self._build.options(
            num_cpus=1, resources={build_resource(job.target, job.profile_key): 1}, max_retries=self.retries,
            retry_exceptions=False, name=f"edgeopt-build-{job.target}",
        ).remote(job_to_json(job), *blobs)

    def submit_measure(self, job: MeasureJob, built: Any, device: FarmDevice) -> Any:
        # every CPU of the device's node: no build or other job runs beside a timing run
        return self._measure.options(
            num_cpus=device.cpus, resources=measure_resources(job.target, job.device), max_retries=self.retries,
            retry_exceptions=False, name=f"edgeopt-measure-{job.target}@{job.device}",
        ).remote(job_to_json(job), built)

    def wait(self, handles: Sequence[Any], timeout: float) -> list[Any]:
        if not handles:
            time.sleep(min(timeout, 0.05))
            return []
        ready, _ = self.ray.wait(list(handles), num_returns=len(handles), timeout=timeout, fetch_local=True)
        return ready

    def result(self, handle: Any) -> dict:
        try:
            return self.ray.get(handle)
        except self.ray.exceptions.RayError as exc:
            raise JobLost(_lost_reason(exc, self.retries)) from exc

    def cancel(self, handle: Any) -> None:
        with contextlib.suppress(Exception):  # already finished, or its node is gone: nothing left to stop
            self.ray.cancel(handle, force=True)


def _lost_reason(exc: Exception, retries: int) -> str:
    name = type(exc).__name__
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else name
    if "WorkerCrashed" in name or "NodeDied" in name or "died" in first.lower():
        return f"its worker died and {retries} retr{'y' if retries == 1 else 'ies'} did not finish it ({name})"
    if "Cancelled" in name:
        return "cancelled"
    return f"{name}: {first[:300]}"
