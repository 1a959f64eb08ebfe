"""Small valid ONNX models the fuzzer mutates: each normalizes cleanly before any mutation.

They are tiny on purpose (a few KiB), so a thousand mutated imports stay affordable, and together
they cover what the importer has to handle: dense and conv layers, shape arithmetic with a dynamic
dim, control flow, an old opset that needs upgrading (initializers listed as inputs), the ai.onnx.ml
domain, a model-local function, weights in an external data file, integer ids into an embedding table
beside a float input, and ops driven by string attributes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

EXTERNAL_FILE = "weights.bin"
"""Name of the external data file the ``external`` seed reads, written beside the model."""


@dataclass(frozen=True)
class Seed:
    name: str
    model: onnx.ModelProto
    files: dict[str, bytes] = field(default_factory=dict)
    """Extra files written beside the model (external data)."""


def _w(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 0.3).astype(np.float32)


def _model(nodes, inputs, outputs, inits=(), *, opset: int = 17, domains=(), functions=(), ir: int | None = None):
    graph = helper.make_graph(nodes, "seed", inputs, outputs, initializer=list(inits))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, v) for d, v in domains)]
    model = helper.make_model(graph, opset_imports=opsets, functions=list(functions))
    if ir is not None:
        model.ir_version = ir
    return model


def mlp(rng: np.random.Generator) -> onnx.ModelProto:
    inits = [
        numpy_helper.from_array(_w(rng, 8, 16), "w1"),
        numpy_helper.from_array(_w(rng, 16), "b1"),
        numpy_helper.from_array(_w(rng, 4, 16), "w2"),
        numpy_helper.from_array(_w(rng, 4), "b2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h2"]),
        helper.make_node("Gemm", ["h2", "w2", "b2"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["y"], axis=-1),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        inits,
    )


def cnn(rng: np.random.Generator) -> onnx.ModelProto:
    inits = [
        numpy_helper.from_array(_w(rng, 4, 1, 3, 3), "cw"),
        numpy_helper.from_array(_w(rng, 4), "cb"),
        numpy_helper.from_array(np.ones(4, np.float32), "scale"),
        numpy_helper.from_array(np.zeros(4, np.float32), "shift"),
        numpy_helper.from_array(np.zeros(4, np.float32), "mean"),
        numpy_helper.from_array(np.ones(4, np.float32), "var"),
        numpy_helper.from_array(_w(rng, 3, 16), "fw"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "cw", "cb"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "scale", "shift", "mean", "var"], ["bn"], epsilon=1e-5),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"], axis=1),
        helper.make_node("Concat", ["f", "f", "f", "f"], ["f4"], axis=1),
        helper.make_node("Gemm", ["f4", "fw"], ["y"], transB=1),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        inits,
    )


def shapes(rng: np.random.Generator) -> onnx.ModelProto:
    """Shape arithmetic on a dynamic batch dim: Shape/Gather/Concat/Reshape/ConstantOfShape/Expand/Slice."""
    inits = [
        numpy_helper.from_array(np.array([0], np.int64), "i0"),
        numpy_helper.from_array(np.array([-1], np.int64), "m1"),
        numpy_helper.from_array(np.array([3, 2], np.int64), "shape32"),
        numpy_helper.from_array(np.array([0, 1], np.int64), "starts"),
        numpy_helper.from_array(np.array([6, 2], np.int64), "ends"),
        numpy_helper.from_array(_w(rng, 3, 2), "bias"),
    ]
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
        helper.make_node("Concat", ["n", "m1"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["x", "flat_shape"], ["flat"]),
        helper.make_node("Slice", ["flat", "starts", "ends"], ["sl"]),
        helper.make_node("ConstantOfShape", ["shape32"], ["zeros"], value=numpy_helper.from_array(np.ones(1, "f4"))),
        helper.make_node("Add", ["zeros", "bias"], ["zb"]),
        helper.make_node("Transpose", ["zb"], ["zt"], perm=[1, 0]),
        helper.make_node("ReduceSum", ["sl"], ["rs"], keepdims=1),
        helper.make_node("Expand", ["rs", "shape32"], ["ex"]),
        helper.make_node("Mul", ["ex", "zb"], ["y"]),
        helper.make_node("Identity", ["zt"], ["z"]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 3])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2]),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, [2, 3]),
        ],
        inits,
    )


def branch(rng: np.random.Generator) -> onnx.ModelProto:
    """An If whose branches are subgraphs reading an outer initializer."""
    then_graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "k"], ["t"])], "then", [], [helper.make_tensor_value_info("t", 1, [1, 4])]
    )
    else_graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["e"])], "else", [], [helper.make_tensor_value_info("e", 1, [1, 4])]
    )
    nodes = [
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then_graph, else_branch=else_graph),
    ]
    inits = [numpy_helper.from_array(_w(rng, 1, 4), "k"), numpy_helper.from_array(np.float32(0), "zero")]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        inits,
    )


def old_opset(rng: np.random.Generator) -> onnx.ModelProto:
    """Opset 9, IR 3 style: initializers also listed as graph inputs; normalize upgrades it to 17."""
    inits = [
        numpy_helper.from_array(_w(rng, 2, 1, 3, 3), "w"),
        numpy_helper.from_array(_w(rng, 5, 8), "fc"),
        numpy_helper.from_array(_w(rng, 5), "fb"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "fc", "fb"], ["g"], transB=1),
        helper.make_node("Dropout", ["g"], ["y"], ratio=0.1),
    ]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])]
    inputs += [helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)) for t in inits]
    return _model(nodes, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], inits, opset=9, ir=3)


def ml_domain(rng: np.random.Generator) -> onnx.ModelProto:
    """ai.onnx.ml ops next to standard ones (what skl2onnx produces)."""
    nodes = [
        helper.make_node("Scaler", ["x"], ["s"], domain="ai.onnx.ml", offset=[0.1] * 3, scale=[2.0] * 3),
        helper.make_node(
            "LinearClassifier",
            ["s"],
            ["label", "scores"],
            domain="ai.onnx.ml",
            classlabels_ints=[0, 1],
            coefficients=[float(v) for v in _w(rng, 6)],
            intercepts=[0.0, 0.1],
        ),
        helper.make_node("Identity", ["scores"], ["probs"]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, [1]),
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 2]),
        ],
        domains=[("ai.onnx.ml", 3)],
    )


def local_function(rng: np.random.Generator) -> onnx.ModelProto:
    """A model-local FunctionProto (what torch's dynamo exporter emits for modules)."""
    fn = helper.make_function(
        "local",
        "Swish",
        ["a"],
        ["b"],
        [helper.make_node("Sigmoid", ["a"], ["s"]), helper.make_node("Mul", ["a", "s"], ["b"])],
        [helper.make_opsetid("", 17)],
    )
    nodes = [
        helper.make_node("Add", ["x", "bias"], ["h"]),
        helper.make_node("Swish", ["h"], ["y"], domain="local"),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(_w(rng, 2, 3), "bias")],
        domains=[("local", 1)],
        functions=[fn],
    )


def external(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict[str, bytes]]:
    """Weights in ``weights.bin`` beside the model (offset/length recorded in the tensors)."""
    model = mlp(rng)
    blob = bytearray()
    for tensor in model.graph.initializer:
        raw = tensor.raw_data or numpy_helper.to_array(tensor).tobytes()
        entries = {"location": EXTERNAL_FILE, "offset": str(len(blob)), "length": str(len(raw))}
        blob += raw
        tensor.ClearField("raw_data")
        tensor.ClearField("float_data")
        tensor.data_location = TensorProto.EXTERNAL
        for key, value in entries.items():
            tensor.external_data.add(key=key, value=value)
    return model, {EXTERNAL_FILE: bytes(blob)}


def embedding(rng: np.random.Generator) -> onnx.ModelProto:
    """Integer token ids into a Gather on an embedding table (synthetic ids must stay inside its rows), and a
    second, float input: what text encoders look like."""
    inits = [numpy_helper.from_array(_w(rng, 12, 4), "table"), numpy_helper.from_array(_w(rng, 4, 3), "proj")]
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["emb"], axis=0),
        helper.make_node("ReduceMean", ["emb"], ["pooled"], axes=[1], keepdims=0),
        helper.make_node("Mul", ["pooled", "gain"], ["scaled"]),
        helper.make_node("MatMul", ["scaled", "proj"], ["y"]),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 5]),
         helper.make_tensor_value_info("gain", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        inits,
        opset=13,
    )


def string_attributes(rng: np.random.Generator) -> onnx.ModelProto:
    """Ops whose behaviour is chosen by string attributes (Pad mode, Resize modes, auto_pad, DepthToSpace)."""
    inits = [
        numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads"),
        numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales"),
        numpy_helper.from_array(_w(rng, 4, 1, 3, 3), "w"),
    ]
    nodes = [
        helper.make_node("Pad", ["x", "pads"], ["padded"], mode="reflect"),
        helper.make_node("Resize", ["padded", "", "scales"], ["up"], mode="linear",
                         coordinate_transformation_mode="half_pixel", nearest_mode="floor"),
        helper.make_node("Conv", ["up", "w"], ["c"], auto_pad="SAME_UPPER", kernel_shape=[3, 3]),
        helper.make_node("DepthToSpace", ["c"], ["y"], blocksize=2, mode="CRD"),
    ]
    return _model(
        nodes,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 24, 24])],
        inits,
    )


def all_seeds(seed: int = 0) -> list[Seed]:
    """Every seed model, built with deterministic weights."""
    rng = np.random.default_rng(seed)
    seeds = [Seed(fn.__name__, fn(rng)) for fn in (mlp, cnn, shapes, branch, old_opset, ml_domain, local_function,
                                                         embedding, string_attributes)]
    model, files = external(rng)
    seeds.append(Seed("external", model, files))
    return seeds
