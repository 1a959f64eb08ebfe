"""Re-batching static-batch models, trusted only after comparison with per-sample runs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.errors import CompileError
from edgeopt.passes.batch import (
    batch_agnostic_reshapes,
    batch_matches,
    batch_reshapes,
    checked_batches,
    with_batch,
)


def reshape_model(*, mix_batch: bool) -> onnx.ModelProto:
    """x(1,4,4) → Reshape([1,16]) → MatMul(16x3); with ``mix_batch`` a ReduceSum over axis 0 first mixes samples."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, 16], np.int64), "shape")
    axes = numpy_helper.from_array(np.array([0], np.int64), "axes")
    if mix_batch:
        nodes = [
            helper.make_node("ReduceSum", ["x", "axes"], ["mixed"], keepdims=1),
            helper.make_node("Reshape", ["mixed", "shape"], ["r"]),
        ]
    else:
        nodes = [helper.make_node("Reshape", ["x", "shape"], ["r"])]
    nodes.append(helper.make_node("MatMul", ["r", "w"], ["y"]))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[w, shape, axes],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


class Session:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])

    def run(self, feeds):
        return self.session.run(None, dict(feeds))

    def close(self) -> None:
        self.session = None


def test_reshape_constant_follows_the_new_batch() -> None:
    model = reshape_model(mix_batch=False)
    x = np.random.default_rng(1).standard_normal((4, 4, 4)).astype(np.float32)
    rebatched = with_batch(model, 4)
    assert rebatched.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 4
    assert batch_matches(Session(rebatched).run, Session(model).run, {"x": x}) is None
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1  # the original is untouched


def test_a_graph_that_hides_its_batch_is_caught() -> None:
    model = reshape_model(mix_batch=True)
    make = checked_batches(
        lambda b: Session(with_batch(model, b) if b != 1 else model),
        lambda b: [{"x": np.ones((b, 4, 4), np.float32)}],
        base_batch=1,
    )
    with pytest.raises(CompileError, match="batch 4 is not supported"):
        make(4)


def shared_shape_model() -> onnx.ModelProto:
    """Two Reshapes read one [1,16] constant."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 3)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([1, 16], np.int64), "shape")
    nodes = [
        helper.make_node("Reshape", ["x", "shape"], ["r1"]),
        helper.make_node("Relu", ["x"], ["x2"]),
        helper.make_node("Reshape", ["x2", "shape"], ["r2"]),
        helper.make_node("Add", ["r1", "r2"], ["s"]),
        helper.make_node("MatMul", ["s", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        initializer=[w, shape],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_batch_reshapes_finds_only_constants_that_spell_the_batch() -> None:
    assert [n.output[0] for n in batch_reshapes(reshape_model(mix_batch=False), 1)] == ["r"]
    assert batch_reshapes(reshape_model(mix_batch=False), 2) == []  # the constant says 1, not 2
    assert [n.output[0] for n in batch_reshapes(shared_shape_model(), 1)] == ["r1", "r2"]


def test_batch_agnostic_reshapes_keep_the_model_and_free_its_batch() -> None:
    model = shared_shape_model()
    x = np.random.default_rng(2).standard_normal((3, 4, 4)).astype(np.float32)
    reference = Session(model).run({"x": x[:1]})[0]
    assert batch_agnostic_reshapes(model, 1) == 2
    shapes = {i.name: numpy_helper.to_array(i).tolist() for i in model.graph.initializer if i.name != "w"}
    assert shapes == {"shape": [0, 16]}  # read only by the two Reshapes: edited once, in place
    np.testing.assert_allclose(Session(model).run({"x": x[:1]})[0], reference, rtol=1e-6)
    for value in (model.graph.input[0], model.graph.output[0]):
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    batched = Session(model).run({"x": x})[0]
    singles = np.concatenate([Session(model).run({"x": x[i : i + 1]})[0] for i in range(3)])
    np.testing.assert_allclose(batched, singles, rtol=1e-5)


def test_batch_agnostic_reshapes_leave_allowzero_alone() -> None:
    model = reshape_model(mix_batch=False)
    model.graph.node[0].attribute.append(helper.make_attribute("allowzero", 1))
    assert batch_agnostic_reshapes(model, 1) == 0
    assert numpy_helper.to_array(model.graph.initializer[1]).tolist() == [1, 16]


def test_a_constant_other_nodes_read_is_copied_not_edited() -> None:
    model = reshape_model(mix_batch=False)
    model.graph.node.append(helper.make_node("Identity", ["shape"], ["shape_out"]))
    model.graph.output.append(helper.make_tensor_value_info("shape_out", TensorProto.INT64, [2]))
    x = np.random.default_rng(3).standard_normal((4, 4, 4)).astype(np.float32)
    y, shape_out = Session(with_batch(model, 4)).run({"x": x})
    singles = np.concatenate([Session(model).run({"x": x[i : i + 1]})[0] for i in range(4)])
    np.testing.assert_allclose(y, singles, rtol=1e-5)
    assert shape_out.tolist() == [1, 16]  # the other reader still sees the original constant
