"""Real Keras 3 models (torch backend) through the importer, the CLI and the SDK.

One small CNN is trained once per module (two epochs on scikit-learn's digits) and saved as ``.keras``;
the deploy runs the real CLI in a subprocess, so the Keras export happens in edgeopt's isolated child.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

os.environ["KERAS_BACKEND"] = "torch"  # this test process trains with Keras on torch
keras = pytest.importorskip("keras")
pytest.importorskip("sklearn")

import edgeopt  # noqa: E402
from edgeopt.errors import UnsafeModelError  # noqa: E402
from edgeopt.evaluate.fidelity import fidelity  # noqa: E402
from edgeopt.graph.layouts import read_layouts  # noqa: E402
from edgeopt.importers.keras import edgeopt_import  # noqa: E402
from edgeopt.types import ImportOptions  # noqa: E402
from examples.keras_cnn.model import load_split, save, train  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    if keras.backend.backend() != "torch":
        pytest.skip("Keras was imported with another backend before this module")
    x_train, x_test, y_train, y_test = load_split()
    model = train(x_train, y_train, epochs=2)
    folder = tmp_path_factory.mktemp("keras")
    path = save(model, folder / "digits_cnn.keras")
    x_eval, y_eval = x_test[:120], y_test[:120]
    np.savez(folder / "calib.npz", image=x_train[:100])
    np.savez(folder / "eval.npz", image=x_eval, labels=y_eval)
    return {"path": path, "folder": folder, "x": x_eval, "probs": np.asarray(model.predict(x_eval, verbose=0))}


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("KERAS_BACKEND", None)  # the importer sets the backend itself, whatever the user's shell says
    return subprocess.run(
        [sys.executable, "-m", "edgeopt", *args], cwd=cwd, capture_output=True, text=True, timeout=600, env=env
    )


def artifact_outputs(path: Path, x: np.ndarray) -> np.ndarray:
    with edgeopt.load(path) as predictor:
        name = predictor.inputs[0].name
        return np.concatenate([next(iter(predictor({name: x[i : i + 1]}).values())) for i in range(len(x))])


def test_keras_cnn_deploys_int8_and_agrees_with_keras(cnn):
    folder = cnn["folder"]
    result = cli(
        "deploy", str(cnn["path"]), "--precision", "int8", "--force-precision", "--calib", "calib.npz",
        "--eval", "eval.npz", "--max-drop", "5", "--timing-s", "0.2", "--out", "cnn.edgeopt", "--json",
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["precision"] == "int8" and summary["source"]["format"] == "keras"
    manifest = json.loads((folder / "cnn.edgeopt" / "manifest.json").read_text())
    (inp,) = manifest["graph"]["inputs"]
    assert inp["layout"] == "NHWC" and inp["shape"] == [1, 8, 8, 1], inp  # channels-last kept and recorded
    assert summary["metrics"]["metric"] == "accuracy" and summary["metrics"]["drop"] <= 5
    deployed = artifact_outputs(folder / "cnn.edgeopt", cnn["x"])
    fid = fidelity([cnn["probs"]], [deployed])
    assert fid["top1_agreement"] >= 95.0 and fid["cosine"] > 0.99, fid
    assert 0 < fid["max_abs_error"] < 0.5, "int8 must differ from Keras a little, not a lot"


def test_lambda_file_is_refused_by_the_cli_with_one_line(tmp_path):
    inputs = keras.Input((4,), name="x")
    outputs = keras.layers.Dense(2)(keras.layers.Lambda(lambda t: t * 2.0, name="twice")(inputs))
    model = keras.Model(inputs, outputs)
    save(model, tmp_path / "lam.keras")
    result = cli("deploy", "lam.keras", cwd=tmp_path)
    assert result.returncode == UnsafeModelError.exit_status and "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error[")]
    assert len(errors) == 1 and "Lambda layer 'twice'" in errors[0], result.stderr
    assert "--trust-code" in result.stderr
    assert not list(tmp_path.glob("*.edgeopt"))


def test_lambda_file_imports_when_trusted_and_matches_keras(tmp_path):
    inputs = keras.Input((4,), name="x")
    outputs = keras.layers.Dense(3)(keras.layers.Lambda(lambda t: t * 2.0 + 1.0, name="affine")(inputs))
    model = keras.Model(inputs, outputs)
    path = save(model, tmp_path / "lam.keras")
    with pytest.raises(UnsafeModelError):
        edgeopt_import(path, ImportOptions(), tmp_path / "refused")
    graph = edgeopt_import(path, ImportOptions(trust_code=True, input_shapes={"": (5, 4)}), tmp_path / "work")
    assert any("--trust-code" in note for note in graph.notes)
    assert read_layouts(graph.path) == {}  # a feature vector has no spatial layout
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {graph.inputs[0].name: x})
    np.testing.assert_allclose(got, model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)


def test_in_memory_keras_model(tmp_path, cnn):
    model = keras.saving.load_model(cnn["path"])
    graph = edgeopt_import(model, ImportOptions(), tmp_path)
    assert graph.source_format == "keras" and read_layouts(graph.path) == {"image": "NHWC"}
    session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": cnn["x"][:1]})
    np.testing.assert_allclose(got, cnn["probs"][:1], rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_keras_example_runs(tmp_path, capsys):
    from examples.keras_cnn import deploy as example

    results = example.main(tmp_path, epochs=2)
    out = capsys.readouterr().out
    assert "[cpu] fidelity to Keras' predictions" in out and "(input layout NHWC)" in out
    assert results["cpu"]["deployment"].manifest["plan"]["precision"] == "int8"
    assert results["cpu"]["fidelity"]["top1_agreement"] >= 95.0
    edge = [name for name in ("edgetpu", "tflite") if name in results] or ["edgetpu"]
    assert "[edgetpu] skipped:" in out or f"[{edge[0]}] " in out
