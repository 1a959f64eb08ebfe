"""One registered deployment → one MLflow run (params, metrics, artifact files) and one model version.

The run's artifacts hold one MLflow model folder, ``edgeopt_model/`` (``MLmodel`` with the ``python_function``
flavor of ``edgeopt_mlflow.pyfunc``, ``requirements.txt``, and the edgeopt artifact under ``artifact/``); the
registered version points at it, so ``mlflow.pyfunc.load_model("models:/NAME/N")`` loads it."""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeopt.plugin import DeploymentRecord

MODEL_DIR = "edgeopt_model"
"""The MLflow model folder among the run's artifacts (what a registered version points at)."""
ARTIFACT_DIR = f"{MODEL_DIR}/artifact"
"""Where the edgeopt artifact's files go among the run's artifacts."""


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if x == x and abs(x) != float("inf") else None


def run_metrics(record: DeploymentRecord) -> dict[str, float]:
    """The record's figures as MLflow metrics (only those with a finite value)."""
    m, p = record.metrics, record.profile
    found: dict[str, Any] = {
        str(m.get("metric") or "metric").replace(":", "_"): m.get("candidate"),
        "metric_reference": m.get("reference"),
        "metric_drop": m.get("drop"),
        "size_bytes": p.get("size_bytes"),
        "energy_j_per_inference": (p.get("energy") or {}).get("joules_per_inference"),
        "peak_memory_bytes": (p.get("memory") or {}).get("peak_bytes"),
    }
    for batch, stats in (p.get("latency") or {}).items():
        if isinstance(stats, Mapping):
            for key in ("p50", "p90", "p99", "mean"):
                found[f"latency_{key}_s_batch{batch}"] = stats.get(key)
            found[f"throughput_batch{batch}"] = stats.get("throughput")
    for key, value in (m.get("fidelity") or {}).items():
        found[f"fidelity_{key}"] = value
    return {k: v for k, v in ((k, _num(v)) for k, v in found.items()) if v is not None}


def run_params(record: DeploymentRecord) -> dict[str, str]:
    """The plan and provenance as MLflow params (MLflow caps a value at 6000 characters)."""
    p = record.profile
    lat = next(iter((p.get("latency") or {}).values()), {}) or {}
    params = {
        "edgeopt_ref": record.ref,
        "target": record.target,
        "device": record.device,
        "precision": record.precision,
        "plan": record.plan.get("label", ""),
        "passes": ",".join(x.get("name", "") for x in record.plan.get("passes") or []),
        "source": record.source_path,
        "source_fingerprint": record.source_fingerprint,
        "manifest_sha256": record.manifest_sha256,
        "edgeopt_version": record.edgeopt_version,
        "latency_method": lat.get("method", ""),
        "energy_method": (p.get("energy") or {}).get("method", ""),
        "memory_method": (p.get("memory") or {}).get("method", ""),
    }
    return {k: str(v)[:6000] for k, v in params.items()}


def check_reachable(tracking_uri: str, *, timeout_s: float = 5.0) -> None:
    """Fail fast when an HTTP tracking server does not answer ``/health`` (MLflow's own client would retry
    for minutes, holding up the deploy)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - the user's own server
            if response.status == 200:
                return
            problem = f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as exc:
        problem = str(getattr(exc, "reason", exc))
    raise ConnectionError(f"MLflow tracking server {tracking_uri} is not reachable ({problem}); deployment not logged")


def log_deployment(record: DeploymentRecord, *, tracking_uri: str, experiment: str) -> dict[str, str]:
    """Log ``record`` to the server at ``tracking_uri``; return links for the edgeopt registry.

    MLflow's own console output goes to stderr, so ``edgeopt deploy --json`` keeps one object on stdout.
    """
    check_reachable(tracking_uri)
    with contextlib.redirect_stdout(sys.stderr):
        return _log(record, tracking_uri=tracking_uri, experiment=experiment)


def _log(record: DeploymentRecord, *, tracking_uri: str, experiment: str) -> dict[str, str]:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        try:
            experiment_id = client.create_experiment(experiment)
        except MlflowException:  # created meanwhile by a concurrent deploy
            experiment_id = client.get_experiment_by_name(experiment).experiment_id
    tags = {"edgeopt.name": record.name, "edgeopt.version": str(record.version),
            "edgeopt.artifact.write": record.artifact_path}
    run = client.create_run(experiment_id, run_name=record.ref, tags=tags)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    try:
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in run_metrics(record).items()],
            params=[Param(k, v) for k, v in run_params(record).items()],
            tags=[RunTag("mlflow.source.name", record.source_path)],
        )
        from edgeopt_mlflow.pyfunc import write_model_dir

        with tempfile.TemporaryDirectory(prefix="edgeopt-mlflow-") as tmp:
            folder = write_model_dir(Path(record.artifact_path), Path(tmp) / MODEL_DIR)
            client.log_artifacts(run_id, str(folder), artifact_path=MODEL_DIR)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, status="FINISHED")
    with contextlib.suppress(MlflowException):  # already registered: add a version to it
        client.create_registered_model(record.name, description="edgeopt deployments")
    version = client.create_model_version(
        record.name,
        source=f"{run.info.artifact_uri}/{MODEL_DIR}",
        run_id=run_id,
        tags={"edgeopt.version": str(record.version), "edgeopt.precision": record.precision},
        description=f"{record.ref}: {record.precision} on {record.target}/{record.device}",
    )
    return {
        "mlflow_tracking_uri": tracking_uri,
        "mlflow_run": f"runs:/{run_id}",
        "mlflow_model_version": f"models:/{record.name}/{version.version}",
    }
