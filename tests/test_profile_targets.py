"""``edgeopt profile ARTIFACT`` on an artifact of every first-party target, through the CLI.

The profile reads the graph's input signature (names, dtypes, shapes, integer bounds) from the manifest,
never from the model file, which is OpenVINO IR or TFLite for most targets (it used to be parsed as ONNX:
``DecodeError``). cuda skips without a GPU; tflite and edgetpu convert through LiteRT (tens of seconds,
``slow``); edgetpu runs without a board (int8 on the host CPU).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeopt
import edgeopt.data.datasets
import edgeopt.graph.index_bounds
from edgeopt.artifact.write import _sealed_manifest_bytes
from tests.security.helpers import DIGITS, run_cli

CALIB = DIGITS.parent / "calib.npz"
QUICK = ("--runs", "3", "--timing-s", "0.05")
TARGETS = [
    pytest.param("cpu", "fp32", id="cpu"),
    pytest.param("openvino", "fp32", id="openvino"),
    pytest.param("tflite", "fp32", id="tflite", marks=pytest.mark.slow),
    pytest.param("edgetpu", "int8", id="edgetpu", marks=pytest.mark.slow),
    pytest.param("cuda", "fp32", id="cuda", marks=pytest.mark.gpu),
]
ENV = {"EDGEOPT_REGISTRY": "off"}


def _available(target: str) -> None:
    info = {t.name: t for t in edgeopt.targets()}.get(target)
    if info is None:
        pytest.skip(f"target {target!r} is not installed")
    if not info.available:
        pytest.skip(f"target {target!r} is unavailable here: {info.reason}")


@pytest.mark.parametrize(("target", "precision"), TARGETS)
def test_profile_reads_the_signature_from_the_manifest_for_every_target(target, precision, tmp_path) -> None:
    _available(target)
    calib = ("--calib", str(CALIB)) if precision == "int8" else ()
    deployed = run_cli("deploy", str(DIGITS), "--target", target, "--precision", precision, *calib, *QUICK,
                       "--out", "a.edgeopt", cwd=tmp_path, env=ENV, timeout=600)
    assert deployed.returncode == 0, deployed.stderr[-2000:]
    manifest = json.loads((tmp_path / "a.edgeopt" / "manifest.json").read_text())
    assert manifest["graph"]["index_limits"] == {}  # recorded at deploy, even when empty
    profiled = run_cli("profile", "a.edgeopt", "--json", *QUICK, cwd=tmp_path, env=ENV)
    assert profiled.returncode == 0, profiled.stderr[-2000:]
    assert "Traceback" not in profiled.stderr
    result = json.loads(profiled.stdout)
    assert result["latency"]["1"]["p50"] > 0 and result["latency"]["1"]["runs"] >= 3
    assert result["precision"] == manifest["plan"]["precision"]


def _embedding_model(path: Path, rows: int = 6) -> Path:
    """Token ids into a table of ``rows`` rows: synthetic ids must stay below ``rows`` or ORT refuses the run."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
        helper.make_node("ReduceMean", ["emb"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("MatMul", ["pooled", "proj"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "emb", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(rng.standard_normal((rows, 4)).astype(np.float32), "table"),
         numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "proj")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


@pytest.fixture(scope="module")
def embedding_artifact(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("emb")
    model = _embedding_model(root / "emb.onnx")
    result = run_cli("deploy", str(model), "--target", "cpu", "--precision", "fp32", *QUICK, "--out", "e.edgeopt",
                     cwd=root, env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    return root / "e.edgeopt"


def _profiled_ids(path: Path, monkeypatch: pytest.MonkeyPatch) -> np.ndarray:
    """Profile ``path`` in process; the integer ids the synthetic data fed."""
    made = []
    real = edgeopt.data.datasets.synthetic_dataset

    def spy(*args, **kwargs):
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(edgeopt.data.datasets, "synthetic_dataset", spy)
    monkeypatch.setenv("EDGEOPT_REGISTRY", "off")
    result = edgeopt.profile(path, runs=2, timing_s=0.01)
    assert result["latency"]["1"]["p50"] > 0
    return made[0].arrays["ids"]


def test_integer_bounds_come_from_the_manifest_not_the_model_file(embedding_artifact, monkeypatch) -> None:
    manifest = json.loads((embedding_artifact / "manifest.json").read_text())
    assert manifest["graph"]["index_limits"] == {"ids": 6}

    def no_model_reading(_path):
        raise AssertionError("profile read the model file for the input signature")

    monkeypatch.setattr(edgeopt.graph.index_bounds, "index_limits", no_model_reading)
    ids = _profiled_ids(embedding_artifact, monkeypatch)
    assert ids.max() < 6 and ids.dtype == np.int64


def test_an_artifact_from_before_the_bounds_were_recorded_still_profiles(embedding_artifact, tmp_path,
                                                                          monkeypatch) -> None:
    old = tmp_path / "old.edgeopt"
    old.mkdir()
    for f in embedding_artifact.iterdir():
        (old / f.name).write_bytes(f.read_bytes())
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["graph"]["index_limits"]
    (old / "manifest.json").write_bytes(_sealed_manifest_bytes(manifest))
    ids = _profiled_ids(old, monkeypatch)  # its model file is ONNX: the bounds are read from it, as before
    assert ids.max() < 6
