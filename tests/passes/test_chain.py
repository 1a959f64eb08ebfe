"""The pass chain: each pass reads the previous file, the result lands in the work directory checked by ORT,
the source is never written, and nothing but the model is left behind (on failure: nothing)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper

from edgeopt.errors import CompileError
from edgeopt.passes.chain import run_pass_chain
from edgeopt.testing.models import mlp
from edgeopt.types import PassSpec


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _scale_weights(spec: PassSpec, src: Path, dst: Path) -> tuple[PassSpec, tuple[str, ...]]:
    """A real model change: every float initializer times ``factor``; records which file it read."""
    model = onnx.load(str(src))
    for tensor in model.graph.initializer:
        array = onnx.numpy_helper.to_array(tensor)
        if array.dtype == np.float32:
            tensor.CopyFrom(onnx.numpy_helper.from_array(array * spec.params["factor"], tensor.name))
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    return PassSpec(spec.name, {**spec.params, "read": src.name}), (f"scaled by {spec.params['factor']}",)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "src" / "model.onnx"
    path.parent.mkdir()
    onnx.save(mlp(), str(path))
    return path


def _weights(path: Path) -> list[np.ndarray]:
    return [onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]


def test_passes_run_in_order_on_the_previous_output(source: Path, tmp_path: Path) -> None:
    before = _digest(source)
    work = tmp_path / "work"
    passes = (PassSpec("scale", {"factor": 2.0}), PassSpec("scale", {"factor": 3.0}))
    result = run_pass_chain(source, passes, _scale_weights, work)
    assert result.model == work / "model.onnx"
    assert [p.params["factor"] for p in result.applied] == [2.0, 3.0]
    assert result.notes == ("scaled by 2.0", "scaled by 3.0")
    for original, chained in zip(_weights(source), _weights(result.model), strict=True):
        np.testing.assert_allclose(chained, original * 6.0, rtol=1e-6)
    assert _digest(source) == before
    assert sorted(p.name for p in work.iterdir()) == ["model.onnx"]  # the step directories are gone


def test_no_passes_copies_the_source(source: Path, tmp_path: Path) -> None:
    result = run_pass_chain(source, (), _scale_weights, tmp_path / "work", model_file="net.onnx")
    assert result.model.name == "net.onnx" and result.applied == () and result.notes == ()
    assert _digest(result.model) == _digest(source)


def test_a_failing_pass_leaves_no_files(source: Path, tmp_path: Path) -> None:
    def refuse(spec: PassSpec, src: Path, dst: Path) -> tuple[PassSpec, tuple[str, ...]]:
        if spec.name == "refuse":
            raise CompileError("this pass refuses")
        return _scale_weights(spec, src, dst)

    work = tmp_path / "work"
    with pytest.raises(CompileError, match="this pass refuses"):
        run_pass_chain(source, (PassSpec("scale", {"factor": 2.0}), PassSpec("refuse", {})), refuse, work)
    assert list(work.iterdir()) == []


def test_a_result_onnx_runtime_refuses_is_a_compile_error(source: Path, tmp_path: Path) -> None:
    def break_graph(spec: PassSpec, src: Path, dst: Path) -> tuple[PassSpec, tuple[str, ...]]:
        model = onnx.load(str(src))
        model.graph.node.append(helper.make_node("NoSuchOp", [model.graph.output[0].name], ["dangling"]))
        dst.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(model, str(dst))
        return spec, ()

    with pytest.raises(CompileError, match="does not load in ONNX Runtime"):
        run_pass_chain(source, (PassSpec("break", {}),), break_graph, tmp_path / "work")
