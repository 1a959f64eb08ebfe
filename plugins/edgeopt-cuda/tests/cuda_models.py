"""Tiny real models (onnx.helper, opset 17, shape-inferred), a GPU device profile, data and comparisons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from edgeopt.plugin import Dataset, DeviceProfile, Graph
from edgeopt.testing import he_weights, save_graph
from onnx import TensorProto, helper, numpy_helper


def conv_net(path: Path, *, batch: int | str = 1, height: int | str = 16, seed: int = 0) -> Graph:
    """Conv(3->8)+Relu, Conv(8->16, stride 2)+Relu, GlobalAveragePool, Flatten, Gemm(16->10), Softmax."""
    rng = np.random.default_rng(seed)
    inits = [
        he_weights(rng, "w1", (8, 3, 3, 3), 27),
        numpy_helper.from_array(np.full(8, 0.05, np.float32), "b1"),
        he_weights(rng, "w2", (16, 8, 3, 3), 72),
        numpy_helper.from_array(np.zeros(16, np.float32), "b2"),
        he_weights(rng, "fc_w", (10, 16), 16),
        numpy_helper.from_array(np.zeros(10, np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, height, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
        inits,
    )
    return save_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def overflow_net(path: Path, *, width: int = 4096) -> Graph:
    """x[1, width] -> (ReduceSum over the row, Exp(x)) -> two outputs that overflow fp16 for inputs near 30 / 12.

    ``s = ReduceSum(x * w)`` with w = 1 is about 30 * 4096 = 122880 > 65504; ``e = Exp(x / 2.5)`` is e^12 =
    162755 > 65504. Both are fine in fp32.
    """
    inits = [
        numpy_helper.from_array(np.ones(width, np.float32), "w"),
        numpy_helper.from_array(np.array([1], np.int64), "axes"),
        numpy_helper.from_array(np.array(2.5, np.float32), "div"),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "w"], ["xw"], name="scale"),
        helper.make_node("ReduceSum", ["xw", "axes"], ["s"], name="sum", keepdims=1),
        helper.make_node("Div", ["x", "div"], ["xd"], name="shrink"),
        helper.make_node("Exp", ["xd"], ["e"], name="exp"),
    ]
    graph = helper.make_graph(
        nodes,
        "overflow_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, width])],
        [
            helper.make_tensor_value_info("s", TensorProto.FLOAT, [1, 1]),
            helper.make_tensor_value_info("e", TensorProto.FLOAT, [1, width]),
        ],
        inits,
    )
    return save_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def gpu_profile(name: str = "test-gpu") -> DeviceProfile:
    return DeviceProfile(
        name=name,
        kind="gpu",
        description=f"test {name}",
        peak_ops={"fp32": 6.7e13, "tf32": 4.9e14, "fp16": 9.9e14, "int8": 1.98e15},
        memory_bandwidth=3.35e12,
        idle_power_w=70.0,
        active_power_w=700.0,
    )


def calibration_for(graph: Graph, n: int = 16, seed: int = 2) -> Dataset:
    """Samples stacked on axis 0, each shaped like one batch-1 input; image-like values in [0, 1)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in graph.inputs:
        sample_shape = tuple(d if isinstance(d, int) else 16 for d in spec.shape[1:])
        arrays[spec.name] = rng.random((n, *sample_shape), dtype=np.float32)
    return Dataset(arrays=arrays, source="test")


def cpu_session(path: Path, *, optimize: bool = True):  # noqa: ANN201 - an onnxruntime.InferenceSession
    """A plain ONNX Runtime CPU session over ``path`` (fp16 nodes run through CPU casts).

    ``optimize=False`` turns graph optimizations off, so a QDQ model runs its QuantizeLinear/DequantizeLinear
    pairs literally around float ops ("fake quantization"): the arithmetic TensorRT's explicit int8 performs,
    without ORT's CPU integer kernels (whose S8S8 path saturates on AVX2 without VNNI).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def cpu_outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Outputs of ``path`` in a plain ONNX Runtime CPU session."""
    return cpu_session(path).run(None, feeds)


def relative_error(reference: np.ndarray, candidate: np.ndarray) -> float:
    """``max|candidate - reference| / max|reference|`` (the core conformance suite's measure)."""
    ref, cand = np.asarray(reference, np.float64), np.asarray(candidate, np.float64)
    return float(np.max(np.abs(cand - ref)) / max(float(np.max(np.abs(ref))), 1e-30))
