"""Re-batching static-batch models, trusted only after comparison with per-sample runs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.errors import CompileError
from edgeopt.passes.batch import batch_matches, checked_batches, with_batch


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
