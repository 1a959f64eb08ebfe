"""Classic scikit-learn pipelines end to end: skl2onnx conversion, the CLI with ``--eval`` data with labels,
the SDK with an estimator object, and every task metric against scikit-learn's own implementation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skl2onnx")

import joblib  # noqa: E402
from sklearn import metrics as skm  # noqa: E402
from sklearn.datasets import load_diabetes, load_iris  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

import edgeopt  # noqa: E402
from edgeopt.errors import DataError, UnsafeModelError  # noqa: E402
from edgeopt.evaluate.task_metrics import metric_suite  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, ...]:
    return train_test_split(x.astype(np.float32), y, test_size=0.3, random_state=0)


def _svc() -> SVC:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sklearn 1.9 deprecates probability=True
        return SVC(probability=True, random_state=0)


PIPELINES = {
    "logistic": (lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)), load_iris),
    "linear": (lambda: make_pipeline(StandardScaler(), LinearRegression()), load_diabetes),
    "svc": (lambda: make_pipeline(StandardScaler(), _svc()), load_iris),
}


def _fitted(kind: str):
    make, load = PIPELINES[kind]
    x, y = load(return_X_y=True)
    x_train, x_test, y_train, y_test = _split(x, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        model = make().fit(x_train, y_train)
    return model, x_train, x_test, y_test


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "edgeopt", *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=env
    )


@pytest.mark.parametrize(
    ("kind", "metric"),
    [("logistic", "accuracy"), ("linear", "mse"), ("svc", "accuracy"), ("logistic", "f1_macro"), ("linear", "r2")],
)
def test_pipeline_through_the_cli_with_labelled_eval_data(tmp_path, kind, metric):
    model, x_train, x_test, y_test = _fitted(kind)
    joblib.dump(model, tmp_path / "model.joblib")
    np.savez(tmp_path / "calib.npz", X=x_train)
    np.savez(tmp_path / "eval.npz", X=x_test, labels=y_test)
    args = ["deploy", "model.joblib", "--trust-pickle", "--calib", "calib.npz", "--eval", "eval.npz"]
    if metric not in ("accuracy", "mse"):  # these two are what edgeopt infers from the labels
        args += ["--metric", metric]
    result = cli(*args, "--timing-s", "0.1", "--out", "m.edgeopt", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    m = json.loads(result.stdout)["metrics"]
    pred = model.predict(x_test)
    expected = {
        "accuracy": lambda: skm.accuracy_score(y_test, pred) * 100,
        "f1_macro": lambda: skm.f1_score(y_test, pred, average="macro") * 100,
        "mse": lambda: skm.mean_squared_error(y_test, pred),
        "r2": lambda: skm.r2_score(y_test, pred),
    }[metric]()
    assert m["metric"] == metric and m["samples"] == len(x_test)
    assert m["reference"] == pytest.approx(expected, rel=1e-4)  # the ONNX model is scikit-learn's own
    assert m["candidate"] == pytest.approx(expected, rel=1e-3) and abs(m["drop"]) <= 1.0
    if kind != "linear":
        assert m["fidelity"]["top1_agreement"] == 100.0


def test_pickled_pipeline_needs_trust(tmp_path):
    model, *_ = _fitted("logistic")
    joblib.dump(model, tmp_path / "model.joblib")
    result = cli("deploy", "model.joblib", cwd=tmp_path)
    assert result.returncode == UnsafeModelError.exit_status and "Traceback" not in result.stderr
    assert "pickle" in result.stderr and "--trust-pickle" in result.stderr
    assert not list(tmp_path.glob("*.edgeopt"))


def test_sdk_takes_the_estimator_object_and_keeps_labels_and_probabilities(tmp_path):
    model, x_train, x_test, y_test = _fitted("svc")
    deployment = edgeopt.deploy(
        model,
        calib={"input": x_train},
        eval={"input": x_test, "labels": y_test},
        metric="recall_macro",
        out=tmp_path / "svc.edgeopt",
        timing_s=0.1,
    )
    outputs = deployment.manifest["graph"]["outputs"]
    assert [(o["name"], o["dtype"]) for o in outputs] == [("label", "int64"), ("probabilities", "float32")]
    with edgeopt.load(deployment.path) as predict:
        got = predict({"input": x_test[:1]})
    assert got["label"][0] == model.predict(x_test[:1])[0]
    np.testing.assert_allclose(got["probabilities"], model.predict_proba(x_test[:1]), atol=1e-4)
    expected = skm.recall_score(y_test, model.predict(x_test), average="macro") * 100
    assert deployment.metrics["reference"] == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_metric_suite_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.7, y, rng.integers(0, 4, 200))
    probs = np.eye(4, dtype=np.float32)[pred] * 0.9 + 0.025
    for outputs in ([pred], [pred.astype(np.int64), probs], [probs]):  # labels, label + probabilities, scores
        suite = metric_suite(outputs, y)
        assert list(suite) == ["accuracy", "precision_macro", "recall_macro", "f1_macro"]
        assert suite["accuracy"] == pytest.approx(skm.accuracy_score(y, pred) * 100)
        assert suite["precision_macro"] == pytest.approx(skm.precision_score(y, pred, average="macro") * 100)
        assert suite["recall_macro"] == pytest.approx(skm.recall_score(y, pred, average="macro") * 100)
        assert suite["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro") * 100)
    target = rng.standard_normal(200) * 10
    guess = target + rng.standard_normal(200)
    for outputs in ([guess], [guess[:, None].astype(np.float32)]):  # 1-D values, or skl2onnx's (N, 1)
        suite = metric_suite(outputs, target)
        assert list(suite) == ["mse", "mae", "r2"]
        assert suite["mse"] == pytest.approx(skm.mean_squared_error(target, guess), rel=1e-5)
        assert suite["mae"] == pytest.approx(skm.mean_absolute_error(target, guess), rel=1e-5)
        assert suite["r2"] == pytest.approx(skm.r2_score(target, guess), rel=1e-5)


def test_metric_suite_string_labels_and_bad_kind():
    y = np.array(["cat", "dog", "dog", "eel"])
    pred = np.array(["cat", "dog", "eel", "eel"])
    assert metric_suite([pred], y)["accuracy"] == pytest.approx(75.0)
    with pytest.raises(DataError, match="unknown task kind"):
        metric_suite([pred], y, kind="ranking")


def test_regression_example_prints_mse_before_and_after(tmp_path, capsys):
    from examples.sklearn_classic import linear

    result = linear.main(tmp_path / "linreg.edgeopt")
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.strip().startswith("mse:"))
    assert "scikit-learn" in line and "deployed" in line
    assert result["after"]["mse"] == pytest.approx(result["before"]["mse"], rel=1e-4)
    assert set(result["after"]) == {"mse", "mae", "r2"}


def test_logistic_example_prints_classification_metrics(tmp_path, capsys):
    from examples.sklearn_classic import logistic

    result = logistic.main(tmp_path / "logreg.edgeopt")
    out = capsys.readouterr().out
    for name in ("accuracy", "precision_macro", "recall_macro", "f1_macro"):
        assert f"{name}: scikit-learn" in out
        assert result["after"][name] == pytest.approx(result["before"][name])
