"""The fixed entry points a farm worker runs: ``build``, ``measure`` and ``describe``. Nothing else is sent.

Each takes a job as JSON (``edgeopt.farm.jobs``) and file bytes whose sha256 the job names, runs the same SDK
a local deploy runs (``edgeopt.deploy``, ``edgeopt.profile``) in a private temp folder, and returns plain data:
``{"ok": True, ...}`` with the artifact as a tar archive and its sha256, or ``{"ok": False, "error": {code,
message, hint}}`` for a job that failed for a reason the user can act on (a refused model, an accuracy
budget no candidate meets). A worker never registers anything: the client verifies and registers results.
"""

from __future__ import annotations

import contextlib
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeopt.errors import EdgeoptError, InputSpecError
from edgeopt.farm.jobs import BuildJob, MeasureJob, job_from_json
from edgeopt.farm.transfer import checked_blob, pack_dir, sha256_bytes, unpack_into

ARTIFACT_DIR = "artifact.edgeopt"


def node_id() -> str:
    """The Ray node id this runs on, or ``local`` outside a Ray worker."""
    try:
        import ray

        if ray.is_initialized():
            return str(ray.get_runtime_context().get_node_id())
    except Exception:  # noqa: BLE001 - not in a Ray worker: the same job run locally
        pass
    return "local"


def _where() -> dict[str, Any]:
    return {"node": node_id(), "host": socket.gethostname(), "pid": os.getpid()}


def _failure(exc: EdgeoptError, began: float) -> dict[str, Any]:
    return {"ok": False, "error": {"code": exc.code, "message": exc.message, "hint": exc.hint},
            "seconds": time.perf_counter() - began, **_where()}


@contextlib.contextmanager
def _registry_off() -> Iterator[None]:
    """Deploys on a worker are not registered there: the client registers the verified result."""
    old = os.environ.get("EDGEOPT_REGISTRY")
    os.environ["EDGEOPT_REGISTRY"] = "off"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("EDGEOPT_REGISTRY", None)
        else:
            os.environ["EDGEOPT_REGISTRY"] = old


def _job(text: str, kind: type) -> Any:
    job = job_from_json(text)
    if not isinstance(job, kind):
        raise InputSpecError(f"this entry point runs {kind.__name__} jobs, not {type(job).__name__}")
    return job


def build(spec_json: str, model: bytes, calib: bytes | None = None, eval_: bytes | None = None) -> dict[str, Any]:
    """Run ``edgeopt.deploy`` for the job's target and profile; return the verified artifact as an archive."""
    from edgeopt.api import deploy

    began = time.perf_counter()
    try:
        job: BuildJob = _job(spec_json, BuildJob)
        with tempfile.TemporaryDirectory(prefix="edgeopt-farm-build-") as tmp:
            work = Path(tmp)
            (work / "in").mkdir()
            model_path = checked_blob(job.model, model, work / "in")
            calib_path = checked_blob(job.calib, calib, work / "in") if job.calib and calib is not None else None
            eval_path = checked_blob(job.eval, eval_, work / "in") if job.eval and eval_ is not None else None
            o = job.options
            device = None if job.profile_key.startswith("host-") else job.profile_key
            with _registry_off():
                deployment = deploy(
                    str(model_path), target=job.target, device=device, precision=o.precision, calib=calib_path,
                    eval=eval_path, max_drop=o.max_drop, metric=o.metric, timing_s=o.timing_s, runs=o.runs,
                    budget_s=o.budget_s, cache=o.cache, objective=o.objective, max_memory=o.max_memory,
                    input_shapes={k: tuple(v) for k, v in o.input_shapes.items()} or None,
                    out=work / ARTIFACT_DIR, name=job.name,
                )
            data = pack_dir(deployment.path)
        return {"ok": True, "key": job.key, "artifact": data, "sha256": sha256_bytes(data),
                "warnings": list(deployment.warnings), "seconds": time.perf_counter() - began, **_where()}
    except EdgeoptError as exc:
        return _failure(exc, began)


def measure(spec_json: str, built: dict[str, Any]) -> dict[str, Any]:
    """Profile a built artifact here, on the job's device; return it re-sealed with that profile and
    ``measured_on`` (node, host, device, ISA) in its manifest."""
    from edgeopt.api import profile
    from edgeopt.artifact.write import verify_artifact
    from edgeopt.farm.reseal import with_measurement
    from edgeopt.measure.host import cpu_isa

    began = time.perf_counter()
    try:
        job: MeasureJob = _job(spec_json, MeasureJob)
        if not isinstance(built, dict) or not built.get("ok") or built.get("key") != job.build:
            raise InputSpecError(f"measure job for build {job.build} received another build's result")
        data = built["artifact"]
        if sha256_bytes(data) != built["sha256"]:
            raise InputSpecError("the built artifact changed in transfer (sha256 differs)")
        with tempfile.TemporaryDirectory(prefix="edgeopt-farm-measure-") as tmp:
            src = Path(tmp) / "built"
            src.mkdir()
            unpack_into(data, src)
            verify_artifact(src)
            measured = profile(src, timing_s=job.timing_s, runs=job.runs)
            where = {**_where(), "device": job.device, "target": job.target, "isa": list(cpu_isa()),
                     "built_on": {k: built.get(k) for k in ("node", "host")}}
            out = with_measurement(src, Path(tmp) / ARTIFACT_DIR, measured, where)
            packed = pack_dir(out)
        return {"ok": True, "key": job.build, "artifact": packed, "sha256": sha256_bytes(packed),
                "measured_on": where, "seconds": time.perf_counter() - began, **_where()}
    except EdgeoptError as exc:
        return _failure(exc, began)


def describe() -> dict[str, Any]:
    """This node's facts for ``edgeopt farm status``: host, ISA, memory, edgeopt version, targets."""
    import psutil

    import edgeopt
    from edgeopt.measure.devices import host_profile

    host = host_profile()
    memory = psutil.virtual_memory()
    try:
        targets = [{"name": t.name, "available": t.available, "reason": t.reason} for t in edgeopt.targets()]
    except EdgeoptError as exc:
        targets = [{"name": "?", "available": False, "reason": exc.message}]
    return {**_where(), "isa": list(host.isa), "cores": host.cores, "memory_total": memory.total,
            "memory_available": memory.available,
            "edgeopt": getattr(edgeopt, "__version__", ""), "targets": targets}
