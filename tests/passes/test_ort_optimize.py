"""Offline ORT graph optimization writes a portable, equivalent model and nothing else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.errors import CompileError
from edgeopt.passes.ort_optimize import model_files, optimize_offline


def _conv_bn_relu(path: Path) -> Path:
    """Conv -> BatchNormalization -> Relu: ORT folds the BN into the Conv and fuses the Relu."""
    rng = np.random.default_rng(0)
    c = 4
    inits = [
        numpy_helper.from_array(rng.standard_normal((c, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.random(c).astype(np.float32) + 0.5, "scale"),
        numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "bias"),
        numpy_helper.from_array(rng.standard_normal(c).astype(np.float32), "mean"),
        numpy_helper.from_array(rng.random(c).astype(np.float32) + 0.5, "var"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["b"], name="bn"),
        helper.make_node("Relu", ["b"], ["y"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "cbr",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c, 8, 8])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


@pytest.mark.parametrize("level", ["basic", "extended"])
def test_optimized_model_is_equivalent_and_smaller(tmp_path: Path, monkeypatch, level: str) -> None:
    src = _conv_bn_relu(tmp_path / "src.onnx")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    dst = optimize_offline(src, tmp_path / "out" / "model.onnx", level=level)
    assert dst == tmp_path / "out" / "model.onnx"
    assert sorted(p.name for p in dst.parent.iterdir()) == ["model.onnx"]
    assert list(cwd.iterdir()) == []
    ops = [n.op_type for n in onnx.load(str(dst)).graph.node]
    assert "BatchNormalization" not in ops
    if level == "extended":
        assert ops == ["FusedConv"]  # ORT contrib op: loads in any ORT CPU build
    x = np.random.default_rng(1).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(_run(dst, x), _run(src, x), rtol=1e-4, atol=1e-5)
    assert model_files(dst) == ("model.onnx",)


def test_unknown_level_and_broken_model_are_compile_errors(tmp_path: Path) -> None:
    src = _conv_bn_relu(tmp_path / "src.onnx")
    with pytest.raises(CompileError, match="unknown ORT optimization level") as info:
        optimize_offline(src, tmp_path / "o.onnx", level="max")
    assert "extended" in info.value.hint
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(CompileError, match="could not optimize"):
        optimize_offline(broken, tmp_path / "out" / "o.onnx")
    assert list((tmp_path / "out").iterdir()) == []


def test_model_files_lists_external_data(tmp_path: Path) -> None:
    model = onnx.load(str(_conv_bn_relu(tmp_path / "src.onnx")))
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True, location="ext.onnx.data", size_threshold=0)
    assert model_files(tmp_path / "ext.onnx") == ("ext.onnx", "ext.onnx.data")
