"""The ncnn plugin beyond the conformance suite: the CLI deploy of the digits CNN through a real entry
point, and every way conversion can fail turning into a clear CompileError or an unavailable target."""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from edgeopt.plugin import CompileError, Dataset, ImportOptions, UnsupportedModelError, get_profile
from edgeopt.testing import verify_artifact
from ncnn_manager import ncnn_plugin_manager
from onnx import TensorProto, helper

import edgeopt_ncnn

DIST = Path(__file__).resolve().parents[1]
REPO = DIST.parents[1]
DIGITS = REPO / "examples" / "digits"
AVAILABLE, REASON = edgeopt_ncnn.ncnn_status()
needs_ncnn = pytest.mark.skipif(not AVAILABLE, reason=f"ncnn target unavailable: {REASON}")


def _entry_point_dir(root: Path) -> Path:
    """A dist-info declaring the ``ncnn`` entry point, for a checkout where edgeopt-ncnn is not installed."""
    info = root / "edgeopt_ncnn-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: edgeopt-ncnn\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[edgeopt]\nncnn = edgeopt_ncnn\n")
    return root


def _graph(tmp_path: Path, model: onnx.ModelProto):
    source = tmp_path / "source.onnx"
    onnx.save(model, source)
    (tmp_path / "graph").mkdir()
    return ncnn_plugin_manager().import_model(source, ImportOptions(), tmp_path / "graph")


def _tiny() -> onnx.ModelProto:
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@needs_ncnn
def test_cli_deploys_the_digits_cnn_through_the_entry_point(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEOPT_")}
    paths = [str(DIST), str(REPO)]
    if not list(md.entry_points(group="edgeopt", name="ncnn")):
        paths.insert(0, str(_entry_point_dir(tmp_path / "ep")))
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    out = tmp_path / "digits-ncnn.edgeopt"
    command = [sys.executable, "-m", "edgeopt", "deploy", str(DIGITS / "digits_cnn.onnx"), "--target", "ncnn"]
    command += ["--eval", str(DIGITS / "eval.npz"), "--out", str(out), "--timing-s", "0.3", "--json"]
    done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    json.loads(done.stdout)
    manifest = verify_artifact(out)
    target = manifest["target"]
    assert (target["name"], target["plugin"], target["plugin_version"]) == ("ncnn", "ncnn", "0.1.0")
    assert {"model.ncnn.param", "model.ncnn.bin", "io.json"} <= set(manifest["files"])
    assert manifest["runtime"].startswith("ncnn ")
    metrics = manifest["metrics"]
    assert metrics["metric"] == "accuracy" and metrics["candidate"] >= metrics["reference"] - 0.01


@needs_ncnn
def test_a_converter_that_hangs_is_stopped_by_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pm = ncnn_plugin_manager()
    target = pm.target("ncnn")
    graph = _graph(tmp_path, _tiny())
    plan = pm.plan(graph, target, get_profile("host"), "fp32")[0]
    monkeypatch.setenv("EDGEOPT_NCNN_CONVERT_TIMEOUT_S", "0.001")
    data = Dataset({"x": np.zeros((1, 8), np.float32)})
    with pytest.raises(CompileError, match="did not finish"):
        pm.compile(graph, plan, target, get_profile("host"), data, tmp_path / "work")
    assert not (tmp_path / "work" / ".pnnx").exists()


@needs_ncnn
def test_a_failing_converter_is_a_compile_error_with_its_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = tmp_path / "pnnx"
    failing.write_text("#!/bin/sh\necho 'unsupported op FancyOp' >&2\nexit 3\n")
    failing.chmod(0o755)
    pm = ncnn_plugin_manager()
    target = pm.target("ncnn")
    graph = _graph(tmp_path, _tiny())
    plan = pm.plan(graph, target, get_profile("host"), "fp32")[0]
    monkeypatch.setenv("EDGEOPT_PNNX", str(failing))
    data = Dataset({"x": np.zeros((1, 8), np.float32)})
    with pytest.raises(CompileError, match=r"exit 3.*unsupported op FancyOp"):
        pm.compile(graph, plan, target, get_profile("host"), data, tmp_path / "work")


def test_without_pnnx_the_target_is_unavailable_and_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEOPT_PNNX", "/nonexistent/pnnx")
    info = ncnn_plugin_manager().target("ncnn", require_available=False)
    assert not info.available
    assert "pnnx" in info.reason and "install" in info.reason


def test_integer_inputs_are_refused_at_plan_time(tmp_path: Path) -> None:
    node = helper.make_node("Cast", ["ids"], ["y"], to=TensorProto.FLOAT)
    graph = helper.make_graph(
        [node],
        "ids",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    g = _graph(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    pm = ncnn_plugin_manager()
    with pytest.raises(UnsupportedModelError, match="int64"):
        pm.plan(g, pm.target("ncnn", require_available=False), get_profile("host"), "auto")
