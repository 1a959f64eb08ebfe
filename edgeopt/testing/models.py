"""Golden models for the conformance suite: tiny, seeded, built with ``onnx.helper`` (opset 17).

Each covers one thing a target must get right: convolutions (``conv``), matrix products
(``mlp``), several inputs and outputs in graph order (``two_io``) and a batch dimension left
dynamic by the exporter (``dynamic_batch``). Weights are He-initialized so activations keep their
scale through the layers, as in a trained network, and so quantization error is representative.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeopt.hashing import sha256_file
from edgeopt.types import Graph, TensorSpec

OPSET = 17
FLOAT = TensorProto.FLOAT


def he_weights(rng: np.random.Generator, name: str, shape: tuple[int, ...], fan_in: int) -> onnx.TensorProto:
    """He-initialized float32 weights: activations keep their scale layer to layer, as in a trained net."""
    return numpy_helper.from_array((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32), name)


def save_graph(model: onnx.ModelProto, path: Path, *, source_format: str = "onnx") -> Graph:
    """Shape-infer (strict), fully check and save ``model`` at ``path``; return the ``Graph`` a normalizing
    import would hand a plugin (fingerprints are the file's sha256, opset the default domain's)."""
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)

    def spec(vi: onnx.ValueInfoProto) -> TensorSpec:
        dims = tuple(d.dim_value if d.HasField("dim_value") else d.dim_param for d in vi.type.tensor_type.shape.dim)
        return TensorSpec(vi.name, np.dtype(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)).name, dims)

    digest = sha256_file(path)
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return Graph(path=path, fingerprint=digest, source_fingerprint=digest, source_format=source_format, opset=opset,
                 inputs=tuple(spec(i) for i in model.graph.input), outputs=tuple(spec(o) for o in model.graph.output))


def _bias(rng: np.random.Generator, name: str, size: int) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(size) * 0.05).astype(np.float32), name)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="edgeopt.testing")
    model.ir_version = 8
    return model


def conv_net(seed: int = 0) -> onnx.ModelProto:
    """Conv(3→8)+Relu, Conv(8→16, stride 2)+Relu, MaxPool, GlobalAveragePool, Flatten, Gemm(16→10)."""
    rng = np.random.default_rng(seed)
    inits = [
        he_weights(rng, "w1", (8, 3, 3, 3), 27),
        _bias(rng, "b1", 8),
        he_weights(rng, "w2", (16, 8, 3, 3), 72),
        _bias(rng, "b2", 16),
        he_weights(rng, "fc_w", (10, 16), 16),
        _bias(rng, "fc_b", 10),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "conv_net",
        [helper.make_tensor_value_info("x", FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("logits", FLOAT, [1, 10])],
        inits,
    )
    return _model(graph)


def mlp(seed: int = 1) -> onnx.ModelProto:
    """MatMul(32→64)+Add+Relu, MatMul(64→64)+Add+Relu, MatMul(64→10)+Add: a MatMul-heavy graph."""
    rng = np.random.default_rng(seed)
    sizes = [(32, 64), (64, 64), (64, 10)]
    inits: list[onnx.TensorProto] = []
    nodes: list[onnx.NodeProto] = []
    last = "x"
    for i, (n_in, n_out) in enumerate(sizes):
        inits += [he_weights(rng, f"w{i}", (n_in, n_out), n_in), _bias(rng, f"b{i}", n_out)]
        out = "y" if i == len(sizes) - 1 else f"a{i}"
        nodes += [
            helper.make_node("MatMul", [last, f"w{i}"], [f"m{i}"], name=f"matmul{i}"),
            helper.make_node("Add", [f"m{i}", f"b{i}"], [out], name=f"add{i}"),
        ]
        last = out
        if i < len(sizes) - 1:
            nodes.append(helper.make_node("Relu", [out], [f"r{i}"], name=f"relu{i}"))
            last = f"r{i}"
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", FLOAT, [1, 32])],
        [helper.make_tensor_value_info("y", FLOAT, [1, 10])],
        inits,
    )
    return _model(graph)


def two_io(seed: int = 2) -> onnx.ModelProto:
    """Inputs ``a`` [1,16] and ``b`` [1,8]; outputs ``score`` [1,4] then ``embed`` [1,64], in that order.

    ``h = Relu(a·W1+b1)``, ``g = Relu(b·W2+b2)``; ``score = Gemm(h+g)``, ``embed = Concat(h, g)``.
    The two inputs and the two outputs have different sizes, so a runtime that swaps them fails.
    """
    rng = np.random.default_rng(seed)
    inits = [
        he_weights(rng, "wa", (16, 32), 16),
        _bias(rng, "ba", 32),
        he_weights(rng, "wb", (8, 32), 8),
        _bias(rng, "bb", 32),
        he_weights(rng, "ws", (4, 32), 32),
        _bias(rng, "bs", 4),
    ]
    nodes = [
        helper.make_node("Gemm", ["a", "wa", "ba"], ["ha"], name="fc_a"),
        helper.make_node("Relu", ["ha"], ["h"], name="relu_a"),
        helper.make_node("Gemm", ["b", "wb", "bb"], ["gb"], name="fc_b"),
        helper.make_node("Relu", ["gb"], ["g"], name="relu_b"),
        helper.make_node("Add", ["h", "g"], ["hg"], name="add"),
        helper.make_node("Gemm", ["hg", "ws", "bs"], ["score"], name="fc_score", transB=1),
        helper.make_node("Concat", ["h", "g"], ["embed"], name="concat", axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "two_io",
        [helper.make_tensor_value_info("a", FLOAT, [1, 16]), helper.make_tensor_value_info("b", FLOAT, [1, 8])],
        [
            helper.make_tensor_value_info("score", FLOAT, [1, 4]),
            helper.make_tensor_value_info("embed", FLOAT, [1, 64]),
        ],
        inits,
    )
    return _model(graph)


def dynamic_batch(seed: int = 3) -> onnx.ModelProto:
    """Input ``x`` [N,1,8,8] with a symbolic batch: Conv(1→4)+Relu, Flatten, Gemm(144→5)."""
    rng = np.random.default_rng(seed)
    inits = [
        he_weights(rng, "w", (4, 1, 3, 3), 9),
        _bias(rng, "b", 4),
        he_weights(rng, "fc_w", (5, 144), 144),
        _bias(rng, "fc_b", 5),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "dynamic_batch",
        [helper.make_tensor_value_info("x", FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("y", FLOAT, ["N", 5])],
        inits,
    )
    return _model(graph)


GOLDEN_MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "conv": conv_net,
    "mlp": mlp,
    "two_io": two_io,
    "dynamic_batch": dynamic_batch,
}
"""Every golden model by name, in the order the suite runs them."""


def write_golden(name: str, directory: Path) -> Path:
    """Write golden model ``name`` as ``directory/<name>.onnx`` (checked) and return the path."""
    if name not in GOLDEN_MODELS:
        raise KeyError(f"no golden model {name!r}; known: {', '.join(GOLDEN_MODELS)}")
    model = GOLDEN_MODELS[name]()
    onnx.checker.check_model(model, full_check=True)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.onnx"
    onnx.save(model, path)
    return path


def golden_feeds(inputs: Sequence[TensorSpec], *, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded standard-normal feeds for ``inputs`` with a leading dimension of ``batch``.

    Symbolic dimensions past the first take 1; dtypes follow the specs.
    """
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        rest = tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape[1:])
        feeds[spec.name] = rng.standard_normal((batch, *rest)).astype(spec.dtype)
    return feeds
