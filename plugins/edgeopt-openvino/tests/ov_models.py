"""Tiny real models (built with onnx.helper, opset 17, shape-inferred), device profiles and data for the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from edgeopt.plugin import Dataset, DeviceProfile, Graph
from edgeopt.testing import he_weights, save_graph
from onnx import TensorProto, helper, numpy_helper

FLOAT = TensorProto.FLOAT


def _const(name: str, value: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value), name)


def _model(nodes: list, name: str, inputs: list, outputs: list, inits: list) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def conv_net(path: Path, *, seed: int = 0, activation: str = "Relu") -> Graph:
    """Conv(3→8)+act, Conv(8→16, stride 2)+act, GlobalAveragePool, Flatten, Gemm(16→10)."""
    rng = np.random.default_rng(seed)
    inits = [
        he_weights(rng, "w1", (8, 3, 3, 3), 27), _const("b1", np.full(8, 0.05, np.float32)),
        he_weights(rng, "w2", (16, 8, 3, 3), 72), _const("b2", np.zeros(16, np.float32)),
        he_weights(rng, "fc_w", (10, 16), 16), _const("fc_b", np.zeros(10, np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node(activation, ["c1"], ["r1"], name="act1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node(activation, ["c2"], ["r2"], name="act2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    return save_graph(_model(nodes, "conv_net", [helper.make_tensor_value_info("x", FLOAT, [1, 3, 16, 16])],
                             [helper.make_tensor_value_info("y", FLOAT, [1, 10])], inits), path)


def reshape_net(path: Path, *, seed: int = 4) -> Graph:
    """Conv(1→4)+Relu, then Reshape to the literal shape [1, 144] (a batch of 1 spelled out), Gemm(144→5)."""
    rng = np.random.default_rng(seed)
    inits = [
        he_weights(rng, "w", (4, 1, 3, 3), 9), _const("b", np.zeros(4, np.float32)),
        _const("shape", np.array([1, 144], np.int64)),
        he_weights(rng, "fc_w", (5, 144), 144), _const("fc_b", np.zeros(5, np.float32)),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Reshape", ["r", "shape"], ["flat"], name="reshape"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    return save_graph(_model(nodes, "reshape_net", [helper.make_tensor_value_info("x", FLOAT, [1, 1, 8, 8])],
                             [helper.make_tensor_value_info("y", FLOAT, [1, 5])], inits), path)


def attention(path: Path, *, seed: int = 5, tokens: int = 8, width: int = 16) -> Graph:
    """One self-attention block: Q/K/V projections, softmax(Q·Kᵀ/√d)·V, output projection."""
    rng = np.random.default_rng(seed)
    inits = [he_weights(rng, f"w{n}", (width, width), width) for n in "qkvo"]
    inits.append(_const("scale", np.array(1.0 / np.sqrt(width), np.float32)))
    nodes = [helper.make_node("MatMul", ["x", f"w{n}"], [n], name=f"proj_{n}") for n in "qkv"]
    nodes += [
        helper.make_node("Transpose", ["k"], ["kt"], name="kt", perm=[0, 2, 1]),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
        helper.make_node("Mul", ["s", "scale"], ["ss"], name="scaled"),
        helper.make_node("Softmax", ["ss"], ["p"], name="softmax", axis=-1),
        helper.make_node("MatMul", ["p", "v"], ["ctx"], name="context"),
        helper.make_node("MatMul", ["ctx", "wo"], ["y"], name="proj_o"),
    ]
    shape = [1, tokens, width]
    return save_graph(_model(nodes, "attention", [helper.make_tensor_value_info("x", FLOAT, shape)],
                             [helper.make_tensor_value_info("y", FLOAT, shape)], inits), path)


def no_weights_net(path: Path) -> Graph:
    """Relu then Sigmoid: nothing int8 could speed up."""
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu"), helper.make_node("Sigmoid", ["r"], ["y"], name="sig")]
    return save_graph(_model(nodes, "no_weights", [helper.make_tensor_value_info("x", FLOAT, [1, 8])],
                             [helper.make_tensor_value_info("y", FLOAT, [1, 8])], []), path)


def slow_conv_net(path: Path, *, seed: int = 6, layers: int = 4, channels: int = 32, size: int = 56) -> Graph:
    """Several 3x3 convolutions at ``channels`` wide on ``size``² maps: milliseconds per inference, so a
    timing comparison is not dominated by the fixed per-call overhead."""
    rng = np.random.default_rng(seed)
    inits, nodes, last = [], [], "x"
    for i in range(layers):
        inits += [he_weights(rng, f"w{i}", (channels, channels, 3, 3), 9 * channels),
                  _const(f"b{i}", np.zeros(channels, np.float32))]
        nodes += [helper.make_node("Conv", [last, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}", pads=[1, 1, 1, 1]),
                  helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"relu{i}")]
        last = f"r{i}"
    nodes.append(helper.make_node("GlobalAveragePool", [last], ["y"], name="gap"))
    return save_graph(_model(nodes, "slow_conv", [helper.make_tensor_value_info("x", FLOAT, [1, channels, size, size])],
                             [helper.make_tensor_value_info("y", FLOAT, [1, channels, 1, 1])], inits), path)


def cpu_profile(name: str, isa: tuple[str, ...], cores: int = 2) -> DeviceProfile:
    return DeviceProfile(name=name, kind="cpu", description=f"test {name}", peak_ops={"fp32": 1e11, "int8": 4e11},
                         memory_bandwidth=2e10, idle_power_w=5.0, active_power_w=30.0, isa=isa, cores=cores)


def samples_for(graph: Graph, n: int = 16, seed: int = 2) -> Dataset:
    """``n`` samples stacked on axis 0, each shaped like one batch-1 input; standard-normal values."""
    rng = np.random.default_rng(seed)
    arrays = {s.name: rng.standard_normal((n, *s.shape[1:])).astype(np.float32) for s in graph.inputs}
    return Dataset(arrays=arrays, source="test")


def reference_outputs(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The graph run by ONNX Runtime (batch taken from the feeds when the graph's Reshape allows it)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"]).run(None, feeds)


def relative_error(ref: np.ndarray, got: np.ndarray) -> float:
    ref, got = np.asarray(ref, np.float64), np.asarray(got, np.float64)
    return float(np.max(np.abs(ref - got)) / max(np.max(np.abs(ref)), 1e-30))


def crash(job: object) -> None:
    """Stand-in for the build function that dies the way a native crash does (SIGABRT)."""
    import os

    os.abort()
