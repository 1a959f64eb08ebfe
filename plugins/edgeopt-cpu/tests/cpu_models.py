"""Tiny real models (built with onnx.helper, opset 17, shape-inferred), CPU device profiles, comparisons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from edgeopt.plugin import Dataset, DeviceProfile, Graph
from edgeopt.testing import he_weights, save_graph
from onnx import TensorProto, helper, numpy_helper


def conv_net(path: Path, *, batch: int | str = 1, seed: int = 0) -> Graph:
    """Conv(3->8)+Relu, Conv(8->16, stride 2)+Relu, GlobalAveragePool, Flatten, Gemm(16->10)."""
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
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_net",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
        inits,
    )
    return save_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def mlp(path: Path, *, seed: int = 1) -> Graph:
    """MatMul(32->64)+Add+Relu, MatMul(64->64)+Add+Relu, MatMul(64->10): a MatMul-heavy graph."""
    rng = np.random.default_rng(seed)
    sizes = [(32, 64), (64, 64), (64, 10)]
    inits, nodes, last = [], [], "x"
    for i, (n_in, n_out) in enumerate(sizes):
        inits += [
            he_weights(rng, f"w{i}", (n_in, n_out), n_in),
            numpy_helper.from_array(np.zeros(n_out, np.float32), f"b{i}"),
        ]
        nodes += [
            helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"], name=f"matmul{i}"),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [f"a{i}"], name=f"add{i}"),
        ]
        last = f"a{i}"
        if i < len(sizes) - 1:
            nodes.append(helper.make_node("Relu", [last], [f"r{i}"], name=f"relu{i}"))
            last = f"r{i}"
    nodes.append(helper.make_node("Identity", [last], ["y"], name="out"))
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        inits,
    )
    return save_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def no_weights_net(path: Path) -> Graph:
    """Relu then Sigmoid: nothing int8 could speed up."""
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Sigmoid", ["r"], ["y"], name="sigmoid"),
    ]
    graph = helper.make_graph(
        nodes,
        "no_weights",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
    )
    return save_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def cpu_profile(name: str, isa: tuple[str, ...], cores: int = 2) -> DeviceProfile:
    return DeviceProfile(
        name=name,
        kind="cpu",
        description=f"test {name}",
        peak_ops={"fp32": 1e11, "int8": 4e11},
        memory_bandwidth=2e10,
        idle_power_w=5.0,
        active_power_w=30.0,
        isa=isa,
        cores=cores,
    )


def calibration_for(graph: Graph, n: int = 16, seed: int = 2) -> Dataset:
    """Samples stacked on axis 0, each shaped like one batch-1 input; image-like values in [0, 1)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for spec in graph.inputs:
        sample_shape = tuple(d if isinstance(d, int) else 1 for d in spec.shape[1:])
        arrays[spec.name] = rng.random((n, *sample_shape), dtype=np.float32)
    return Dataset(arrays=arrays, source="test")


def reference_outputs(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
