"""edgeopt-mlflow against a live local MLflow server: a deploy becomes a run and a registered model version."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import edgeopt
import pytest
from edgeopt import open_registry
from edgeopt.testing import get_plugin_manager

import edgeopt_mlflow
from edgeopt_mlflow.tracking import ARTIFACT_DIR, check_reachable, run_metrics

ROOT = Path(__file__).resolve().parents[3]
DIGITS = ROOT / "examples" / "digits"


def _manager():
    pm = get_plugin_manager()
    if "mlflow" not in {p.name for p in pm.plugins() if p.status == "ok"}:
        pm.register(edgeopt_mlflow, "mlflow")  # running from a checkout without the distribution installed
    return pm


# starting the server takes ~15-60 s (database migrations), once per session
def test_deploy_is_logged_as_run_and_model_version(mlflow_server, tmp_path, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("EDGEOPT_MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("EDGEOPT_MLFLOW_EXPERIMENT", "edgeopt-test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dep = edgeopt.deploy(str(DIGITS / "digits_cnn.onnx"), precision="fp32", calib=DIGITS / "calib.npz",
                             eval=DIGITS / "eval.npz", out=tmp_path / "d.edgeopt", name="digits", timing_s=0.05,
                             runs=20, plugin_manager=_manager())
    assert not [w for w in caught if "mlflow" in str(w.message).lower()], [str(w.message) for w in caught]
    record = open_registry().get("digits", 1)
    assert record.links["mlflow_model_version"] == "models:/digits/1"
    run_id = record.links["mlflow_run"].removeprefix("runs:/")

    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "digits:1"
    assert run.data.metrics["accuracy"] == dep.metrics["candidate"]
    assert run.data.metrics["latency_p90_s_batch1"] == pytest.approx(dep.profile["latency"]["1"]["p90"])
    assert run.data.metrics["size_bytes"] == dep.profile["size_bytes"]
    assert run.data.params["precision"] == "fp32" and run.data.params["manifest_sha256"] == record.manifest_sha256
    assert run.data.params["energy_method"].startswith("estimated")
    assert run.data.tags["edgeopt.version"] == "1"
    files = {a.path for a in client.list_artifacts(run_id, ARTIFACT_DIR)}
    assert {f"{ARTIFACT_DIR}/manifest.json", f"{ARTIFACT_DIR}/model.onnx"} <= files
    local = Path(client.download_artifacts(run_id, f"{ARTIFACT_DIR}/manifest.json", str(tmp_path)))
    assert local.read_bytes() == (dep.path / "manifest.json").read_bytes()

    versions = client.search_model_versions("name='digits'")
    assert [(v.version, v.run_id) for v in versions] == [("1", run_id)]
    assert versions[0].tags["edgeopt.precision"] == "fp32"

    # MLflow users load a registered version the way they load any model: pyfunc, through models:/
    import mlflow.pyfunc
    import numpy as np

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    model = mlflow.pyfunc.load_model("models:/digits/1")
    x = np.load(DIGITS / "eval.npz")
    first = np.asarray(x[[k for k in x.files if k != "labels"][0]][:4], np.float32)
    name = dep.manifest["graph"]["inputs"][0]["name"]
    local = edgeopt.load(dep.path)  # built for batch 1: the pyfunc model runs 4 samples one at a time
    want = np.concatenate([next(iter(local({name: first[i:i + 1]}).values())) for i in range(4)])
    np.testing.assert_array_equal(model.predict(first), want)
    np.testing.assert_array_equal(model.predict({name: first}), want)

    # the manifest is verified on load: a model file changed in the store is refused
    root = Path(client.download_artifacts(run_id, "edgeopt_model", str(tmp_path / "dl")))
    (root / "artifact" / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(Exception, match="sha256|modified|hash"):
        mlflow.pyfunc.load_model(str(root))

    # a second registration of the same name adds a model version rather than a model
    links = edgeopt_mlflow.edgeopt_deployment_registered(record)
    assert links["mlflow_model_version"] == "models:/digits/2"
    assert len(client.search_model_versions("name='digits'")) == 2
    assert set(run_metrics(record)) >= {"accuracy", "metric_drop", "latency_p50_s_batch1", "energy_j_per_inference"}


def test_off_without_a_tracking_uri(monkeypatch):
    monkeypatch.delenv("EDGEOPT_MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert edgeopt_mlflow.tracking_uri() is None
    assert edgeopt_mlflow.edgeopt_deployment_registered(object()) is None


def test_an_unreachable_server_fails_fast():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    began = time.monotonic()
    with pytest.raises(ConnectionError, match="not reachable"):
        check_reachable(f"http://127.0.0.1:{port}", timeout_s=2)
    assert time.monotonic() - began < 10
