"""The built-in scikit-learn importer: real estimators converted with skl2onnx, run with ORT."""

from __future__ import annotations

import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skl2onnx")

import joblib  # noqa: E402
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LinearRegression, LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from edgeopt.errors import InputSpecError, ModelError, UnsafeModelError  # noqa: E402
from edgeopt.hashing import sha256_file  # noqa: E402
from edgeopt.importers import sklearn as sklearn_importer  # noqa: E402
from edgeopt.importers.sklearn import edgeopt_import  # noqa: E402
from edgeopt.plugin.manager import get_plugin_manager  # noqa: E402
from edgeopt.types import ImportOptions  # noqa: E402

X, Y = load_iris(return_X_y=True)
X32 = X.astype(np.float32)
ALL_ROWS = ImportOptions(input_shapes={"": (len(X), 4)})


def _ort(graph, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"input": x}), strict=True))


@pytest.fixture(scope="module")
def svc():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sklearn 1.9 deprecates probability=True
        return SVC(probability=True, random_state=0).fit(X, Y)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_svc_with_probabilities_matches_sklearn(tmp_path, svc):
    graph = edgeopt_import(svc, ALL_ROWS, tmp_path)
    assert graph.source_format == "sklearn" and graph.opset >= 17 and graph.source_opset is not None
    assert [s.name for s in graph.inputs] == ["input"] and graph.inputs[0].shape == (150, 4)
    onnx.checker.check_model(str(graph.path), full_check=True)
    out = _ort(graph, X32)
    assert set(out) == {"label", "probabilities"}
    np.testing.assert_array_equal(out["label"], svc.predict(X32))
    np.testing.assert_allclose(out["probabilities"], svc.predict_proba(X32), atol=1e-5)
    assert out["probabilities"].shape == (150, 3)  # a plain tensor: no ZipMap


def test_logistic_regression_pipeline_matches_sklearn(tmp_path):
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, Y)
    graph = edgeopt_import(pipe, ALL_ROWS, tmp_path)
    out = _ort(graph, X32)
    np.testing.assert_array_equal(out["label"], pipe.predict(X32))
    np.testing.assert_allclose(out["probabilities"], pipe.predict_proba(X32), atol=1e-5)
    assert len(graph.source_fingerprint) == 64


def test_default_batch_is_fixed_to_one_with_a_note(tmp_path):
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, Y)
    graph = edgeopt_import(pipe, ImportOptions(), tmp_path)
    assert graph.inputs[0].shape == (1, 4)
    assert graph.notes and "input input dim 0" in graph.notes[0] and "fixed to 1" in graph.notes[0]
    row = X32[7:8]
    np.testing.assert_allclose(_ort(graph, row)["probabilities"], pipe.predict_proba(row), atol=1e-5)


def test_regressor(tmp_path):
    target = X[:, 0] * 2 - X[:, 3]
    reg = LinearRegression().fit(X[:, 1:], target)
    graph = edgeopt_import(reg, ImportOptions(input_shapes={"": (150, 3)}), tmp_path)
    (pred,) = _ort(graph, X32[:, 1:]).values()
    np.testing.assert_allclose(pred.reshape(-1), reg.predict(X32[:, 1:]), rtol=1e-4, atol=1e-4)


def test_wrong_feature_count_is_an_input_spec_error(tmp_path):
    reg = LinearRegression().fit(X, Y)
    with pytest.raises(InputSpecError, match=r"expects shape \?x4 \(rank 2\), given 1x5"):
        edgeopt_import(reg, ImportOptions(input_shapes={"": (1, 5)}), tmp_path)


def test_unfitted_estimator(tmp_path):
    with pytest.raises(ModelError, match="LogisticRegression is not fitted"):
        edgeopt_import(LogisticRegression(), ImportOptions(), tmp_path)


def test_joblib_needs_trust(tmp_path):
    model = LogisticRegression(max_iter=500).fit(X, Y)
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    with pytest.raises(UnsafeModelError) as info:
        edgeopt_import(str(path), ImportOptions(), tmp_path / "w")
    assert info.value.code == "E110" and "--trust-pickle" in info.value.hint
    assert not (tmp_path / "w").exists()
    graph = edgeopt_import(path, ImportOptions(trust_pickle=True, input_shapes={"": (150, 4)}), tmp_path / "w")
    assert graph.source_fingerprint == sha256_file(path)
    np.testing.assert_array_equal(_ort(graph, X32)["label"], model.predict(X32))
    with pytest.raises(ModelError, match="not found"):
        edgeopt_import(tmp_path / "missing.pkl", ImportOptions(trust_pickle=True), tmp_path / "w2")
    joblib.dump({"not": "a model"}, tmp_path / "dict.pkl")
    with pytest.raises(ModelError, match="not a scikit-learn estimator"):
        edgeopt_import(tmp_path / "dict.pkl", ImportOptions(trust_pickle=True), tmp_path / "w3")


@pytest.mark.parametrize("source", ["model.onnx", "pkg.mod:factory", 3, object(), np.zeros(3)])
def test_other_sources_are_not_claimed(tmp_path, source):
    assert edgeopt_import(source, ImportOptions(), tmp_path) is None


def test_registered_as_a_builtin_plugin(tmp_path):
    assert sklearn_importer.EDGEOPT_HOOK_API == 1
    pm = get_plugin_manager(entry_points=False)
    graph = pm.import_model(LogisticRegression(max_iter=500).fit(X, Y), ALL_ROWS, tmp_path)
    assert graph is not None and graph.source_format == "sklearn"


def test_skops_file_loads_trusted_types_without_opt_in(tmp_path):
    sio = pytest.importorskip("skops.io")
    pipe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(X, Y)
    path = tmp_path / "pipe.skops"
    sio.dump(pipe, path)
    graph = edgeopt_import(str(path), ALL_ROWS, tmp_path / "w")  # no --trust-pickle needed
    assert graph.source_fingerprint == sha256_file(path)
    probs = _ort(graph, X32)["probabilities"]
    np.testing.assert_allclose(probs, pipe.predict_proba(X), atol=1e-4)


class _Custom(StandardScaler):
    """A type outside skops' trusted set (a user's own class)."""


def test_skops_file_with_untrusted_types_is_refused(tmp_path):
    sio = pytest.importorskip("skops.io")
    path = tmp_path / "custom.skops"
    sio.dump(make_pipeline(_Custom(), LogisticRegression(max_iter=500)).fit(X, Y), path)
    with pytest.raises(UnsafeModelError, match="outside skops' trusted set.*_Custom"):
        edgeopt_import(str(path), ALL_ROWS, tmp_path / "w")
    (tmp_path / "broken.skops").write_bytes(b"not a zip")
    with pytest.raises(ModelError, match="cannot read .* as a skops file"):
        edgeopt_import(str(tmp_path / "broken.skops"), ALL_ROWS, tmp_path / "w2")
