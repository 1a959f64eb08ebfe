"""The weightless tail of a graph stays float when quantizing, even when the normalizer had to name its nodes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from edgeopt.graph.normalize import normalize
from edgeopt.passes.ort_quantize import quantize_static_int8
from edgeopt.passes.ort_quantize_options import StaticInt8Options
from edgeopt.types import Dataset, ImportOptions


def test_softmax_then_reshape_tail_keeps_probabilities(tmp_path) -> None:
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((1000, 3, 3, 3)).astype(np.float32) * 1e-3, "w")
    shape = numpy_helper.from_array(np.array([1, 1000, 1, 1], np.int64), "shape")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("GlobalAveragePool", ["c"], ["g"]),  # unnamed, as exporters often leave them
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Softmax", ["f"], ["p"]),
        helper.make_node("Reshape", ["p", "shape"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tail",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1000, 1, 1])],
        initializer=[w, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = ImportOptions(simplify=False)
    normalized = normalize(model, source_fingerprint="t", source_format="onnx", options=options, workdir=tmp_path / "g")
    assert all(n.name for n in onnx.load(normalized.path).graph.node)
    x = rng.standard_normal((16, 3, 8, 8)).astype(np.float32)
    report = quantize_static_int8(normalized.path, tmp_path / "q.onnx", Dataset({"x": x}), StaticInt8Options())
    assert report.quantized_nodes == 1
    reference = ort.InferenceSession(str(normalized.path)).run(None, {"x": x[:1]})[0]
    quantized = ort.InferenceSession(str(tmp_path / "q.onnx")).run(None, {"x": x[:1]})[0]
    assert quantized.min() > 0  # ~1/1000 each: 8-bit rounding of the probabilities would give zeros
    assert np.allclose(quantized.sum(), 1.0, atol=1e-3)
    assert np.abs(quantized - reference).max() < 1e-4
