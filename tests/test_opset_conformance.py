"""Normalization keeps every model's meaning: the onnx wheel's converted PyTorch models (opsets 6 to 9, upgraded
to 17 by the version converter, then simplified) still give the outputs their test data sets record."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.graph.legacy_ops import per_channel_prelu_slopes
from edgeopt.graph.normalize import normalize
from edgeopt.process.isolation import IsolatedWorker
from edgeopt.types import ImportOptions

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
CASES = sorted(
    p.parent for s in ("pytorch-converted", "pytorch-operator") for p in (DATA / s).glob("*/model.onnx")
    if (p.parent / "test_data_set_0").is_dir()
)


def _tensors(folder: Path, prefix: str) -> list[np.ndarray]:
    files = sorted(folder.glob(f"{prefix}_*.pb"), key=lambda p: int(p.stem.split("_")[1]))
    return [numpy_helper.to_array(onnx.load_tensor(str(f))) for f in files]


@pytest.fixture(scope="module")
def worker():  # noqa: ANN201
    with IsolatedWorker(preload=("onnx", "onnxruntime")) as shared:
        yield shared


def test_the_wheel_ships_the_cases() -> None:
    assert len(CASES) > 100


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_normalized_model_reproduces_the_recorded_outputs(case: Path, tmp_path: Path, worker) -> None:
    model = onnx.load(str(case / "model.onnx"))
    graph = normalize(model, source_fingerprint="x", source_format="onnx", options=ImportOptions(),
                      workdir=tmp_path, worker=worker)  # fmt: skip
    assert graph.opset >= 17
    session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    feeds = dict(zip([i.name for i in session.get_inputs()], _tensors(case / "test_data_set_0", "input"), strict=True))
    got = session.run(None, feeds)
    for actual, expected in zip(got, _tensors(case / "test_data_set_0", "output"), strict=True):
        np.testing.assert_allclose(actual.reshape(expected.shape), expected, rtol=1e-3, atol=1e-4, equal_nan=True)


def _opset6_prelu(
    channels: int, shape: list[int], *, constant_node: bool = False
) -> tuple[onnx.ModelProto, np.ndarray]:
    """PRelu(x, slope) at opset 6; the slope an initializer, or with ``constant_node`` a Constant node's value."""
    slope = np.linspace(0.1, 0.9, channels, dtype=np.float32)
    nodes = [helper.make_node("PRelu", ["x", "slope"], ["y"], name="prelu")]
    if constant_node:
        nodes.insert(0, helper.make_node("Constant", [], ["slope"], value=numpy_helper.from_array(slope)))
    graph = helper.make_graph(
        nodes,
        "prelu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [] if constant_node else [numpy_helper.from_array(slope, "slope")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 6)], ir_version=3), slope


@pytest.mark.parametrize("constant_node", [False, True], ids=["initializer", "constant-node"])
def test_per_channel_prelu_keeps_its_meaning_where_the_last_dim_equals_the_channels(
    tmp_path: Path, constant_node: bool
) -> None:
    """[N, C, H, W] with W == C: a plain upgrade runs, and applies the slopes along W (silently wrong)."""
    model, slope = _opset6_prelu(3, [2, 3, 4, 3], constant_node=constant_node)
    graph = normalize(model, source_fingerprint="x", source_format="onnx", options=ImportOptions(), workdir=tmp_path)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 3)).astype(np.float32)
    expected = np.where(x >= 0, x, x * slope.reshape(1, 3, 1, 1))
    session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"x": x})[0], expected, rtol=1e-6)
    assert any("per-channel PRelu" in note for note in graph.notes)


def test_prelu_slopes_that_need_no_change_are_left_alone() -> None:
    for shape, channels in (([4, 3], 3), ([2, 1, 5], 1)):
        model, _ = _opset6_prelu(channels, shape)
        assert per_channel_prelu_slopes(model, 6) == 0
    model, _ = _opset6_prelu(3, [2, 3, 5])
    assert per_channel_prelu_slopes(model, 9) == 0  # numpy-style already: not this function's business
    assert per_channel_prelu_slopes(model, 6) == 1
    assert list(model.graph.initializer[0].dims) == [3, 1]
