"""Read-only facts about an ONNX model: I/O specs, op histogram, parameters, FLOPs and bytes.

Nothing here changes the model it is given or loads external data: sizes come from declared
shapes, and shape inference runs on a light copy whose large weights are replaced by typed inputs.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, shape_inference

from edgeopt.types import Dim, TensorSpec

_PACKED_BITS = {
    getattr(TensorProto, name): bits
    for name, bits in (("UINT4", 4), ("INT4", 4), ("FLOAT4E2M1", 4), ("UINT2", 2), ("INT2", 2))
    if hasattr(TensorProto, name)
}
_LIGHT_COPY_THRESHOLD = 1 << 20
"""Initializers above this many declared bytes become typed inputs in the copy used for inference."""

_MOVEMENT_OPS = frozenset(
    {
        *("Reshape", "Flatten", "Transpose", "Squeeze", "Unsqueeze", "Shape", "Size", "Identity", "Concat"),
        *("Split", "Slice", "Gather", "GatherND", "GatherElements", "Expand", "Tile", "Pad", "Constant"),
        *("ConstantOfShape", "Cast", "CastLike", "DepthToSpace", "SpaceToDepth", "Dropout", "OptionalGetElement"),
    }
)
_WINDOW_OPS = frozenset({"MaxPool", "AveragePool", "LpPool"})
_REDUCE_INPUT_OPS = frozenset({"GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool"})
_CONV_WEIGHT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3}
_MATMUL_A = {"MatMul": 0, "MatMulInteger": 0, "QLinearMatMul": 0, "FusedMatMul": 0}
_CONTROL_FLOW = frozenset({"If", "Loop", "Scan"})

TypeMap = dict[str, tuple[int, tuple[Dim, ...] | None]]
"""Tensor name -> (ONNX element type, dims or None when the rank is unknown)."""


def dtype_name(elem_type: int) -> str:
    """numpy dtype name for an ONNX element type (``float32``), or the lower-cased ONNX name."""
    if elem_type == TensorProto.UNDEFINED:
        return "undefined"
    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return TensorProto.DataType.Name(elem_type).lower()


def nbytes(elem_type: int, elements: int) -> int:
    """Bytes that ``elements`` values of ``elem_type`` occupy (packed 4/2-bit types rounded up)."""
    if elem_type in _PACKED_BITS:
        return math.ceil(elements * _PACKED_BITS[elem_type] / 8)
    try:
        return elements * np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type)).itemsize
    except (KeyError, TypeError, ValueError):
        return elements * 4


def tensor_nbytes(tensor: TensorProto) -> int:
    """Bytes a tensor declares through its dims and type, without reading its data."""
    if tensor.data_type == TensorProto.STRING:
        return sum(len(s) for s in tensor.string_data)
    return nbytes(tensor.data_type, math.prod(tensor.dims))


def dims_of(type_proto: onnx.TypeProto) -> tuple[Dim, ...] | None:
    """Dims of a tensor type: ints, symbolic names, ``"?"`` for unnamed unknowns; None without a shape."""
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims: list[Dim] = []
    for d in type_proto.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value >= 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return tuple(dims)


def tensor_spec(value_info: onnx.ValueInfoProto) -> TensorSpec:
    """A graph input or output as a TensorSpec (shape ``()`` when the model declares none)."""
    elem = value_info.type.tensor_type.elem_type if value_info.type.HasField("tensor_type") else 0
    return TensorSpec(name=value_info.name, dtype=dtype_name(elem), shape=dims_of(value_info.type) or ())


def real_inputs(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    """Graph inputs that are not initializers (IR v3 models list weights as inputs too)."""
    weights = {t.name for t in graph.initializer}
    return [vi for vi in graph.input if vi.name not in weights]


def light_copy(model: onnx.ModelProto, *, threshold: int = _LIGHT_COPY_THRESHOLD) -> onnx.ModelProto:
    """A copy for shape inference: initializers over ``threshold`` bytes become typed graph inputs."""
    graph = model.graph
    light = onnx.GraphProto(name=graph.name)
    light.node.extend(graph.node)
    light.input.extend(graph.input)
    light.output.extend(graph.output)
    light.value_info.extend(graph.value_info)
    light.sparse_initializer.extend(graph.sparse_initializer)
    declared = {vi.name for vi in graph.input}
    for tensor in graph.initializer:
        if tensor.data_location == TensorProto.EXTERNAL or tensor_nbytes(tensor) > threshold:
            if tensor.name not in declared:
                light.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims))
        else:
            light.initializer.append(tensor)
    copy = onnx.ModelProto(ir_version=model.ir_version, producer_name=model.producer_name)
    copy.opset_import.extend(model.opset_import)
    copy.functions.extend(model.functions)
    copy.graph.CopyFrom(light)
    return copy


def infer_types(model: onnx.ModelProto) -> TypeMap:
    """Element type and dims of every tensor the main graph names, after (non-strict) shape inference."""
    try:
        inferred = shape_inference.infer_shapes(light_copy(model), strict_mode=False, data_prop=True)
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError):
        inferred = model
    types: TypeMap = {}
    graph = inferred.graph
    for vi in [*graph.value_info, *graph.input, *graph.output]:
        if vi.type.HasField("tensor_type"):
            types[vi.name] = (vi.type.tensor_type.elem_type, dims_of(vi.type))
    for tensor in model.graph.initializer:
        types[tensor.name] = (tensor.data_type, tuple(int(d) for d in tensor.dims))
    return types


def iter_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node of ``graph`` and of the subgraphs in its nodes' attributes, depth first."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from iter_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for sub in attr.graphs:
                    yield from iter_nodes(sub)


def _volume(dims: tuple[Dim, ...] | None) -> int | None:
    """Element count, symbolic dims counted as 1; None when the rank is unknown."""
    if dims is None:
        return None
    return math.prod(d if isinstance(d, int) else 1 for d in dims)


def _node_flops(node: onnx.NodeProto, types: TypeMap) -> int | None:
    """FLOPs estimate of one node (2 per MAC; ~1 per output element otherwise); None when unknown."""
    if node.op_type in _CONTROL_FLOW:
        return None
    if node.op_type in _MOVEMENT_OPS:
        return 0
    out = _volume(types.get(node.output[0], (0, None))[1]) if node.output else None
    if out is None:
        return None

    def dims(index: int) -> tuple[Dim, ...] | None:
        return types.get(node.input[index], (0, None))[1] if len(node.input) > index else None

    if node.op_type in _CONV_WEIGHT:
        w = dims(_CONV_WEIGHT[node.op_type])
        return None if w is None else 2 * out * (_volume(w[1:]) or 1)
    if node.op_type == "ConvTranspose":
        x, w = dims(0), dims(1)
        return None if x is None or w is None else 2 * (_volume(x) or 0) * (_volume(w[1:]) or 1)
    if node.op_type in _MATMUL_A:
        a = dims(_MATMUL_A[node.op_type])
        k = a[-1] if a else None
        return None if k is None else 2 * out * (k if isinstance(k, int) else 1)
    if node.op_type == "Gemm":
        a = dims(0)
        if a is None or len(a) != 2:
            return None
        trans_a = any(at.name == "transA" and at.i for at in node.attribute)
        k = a[0] if trans_a else a[1]
        return 2 * out * (k if isinstance(k, int) else 1)
    if node.op_type in _WINDOW_OPS:
        kernel = next((list(at.ints) for at in node.attribute if at.name == "kernel_shape"), [1])
        return out * math.prod(kernel)
    if node.op_type in _REDUCE_INPUT_OPS or node.op_type.startswith("Reduce"):
        return _volume(dims(0))
    return out


@dataclass(frozen=True)
class GraphSummary:
    """What ``edgeopt inspect`` shows, and the FLOPs/bytes the roofline estimate uses.

    Sizes and FLOPs come from inferred shapes with every symbolic dimension counted as 1, so for a
    model with dynamic dims they are per unit of each dynamic dim (listed in ``dynamic_dims``).
    """

    opset: int | None
    """Version of the default ONNX domain (None when the model imports only other domains)."""
    opsets: Mapping[str, int]
    ir_version: int
    producer: str
    op_histogram: Mapping[str, int]
    """Op type -> count over the main graph and its subgraphs, most frequent first."""
    nodes: int
    params: int
    """Elements in all initializers and Constant nodes."""
    weight_bytes: int
    flops: int
    """Estimated floating point (or integer) operations for one run: 2 per MAC, ~1 per output element."""
    activation_bytes: int
    """Bytes of every tensor a node produces (intermediates and graph outputs), an estimate."""
    input_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    dynamic_dims: tuple[tuple[str, int, str], ...]
    """(tensor, axis, symbol) for every non-fixed dimension of a graph input or output."""
    unestimated_ops: tuple[str, ...] = ()
    """Op types whose FLOPs could not be estimated (unknown shapes, control flow); not in ``flops``."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serializable dict."""

        def spec(s: TensorSpec) -> dict[str, Any]:
            return {"name": s.name, "dtype": s.dtype, "shape": list(s.shape)}

        return {
            "opset": self.opset,
            "opsets": dict(self.opsets),
            "ir_version": self.ir_version,
            "producer": self.producer,
            "op_histogram": dict(self.op_histogram),
            "nodes": self.nodes,
            "params": self.params,
            "weight_bytes": self.weight_bytes,
            "flops": self.flops,
            "activation_bytes": self.activation_bytes,
            "input_bytes": self.input_bytes,
            "inputs": [spec(s) for s in self.inputs],
            "outputs": [spec(s) for s in self.outputs],
            "dynamic_dims": [{"tensor": t, "axis": a, "name": n} for t, a, n in self.dynamic_dims],
            "unestimated_ops": list(self.unestimated_ops),
        }


def constant_values(graph: onnx.GraphProto) -> dict[str, TensorProto]:
    """Tensors known before any run, by name: ``graph``'s initializers and the ``value`` of its Constant nodes
    (this graph's level only)."""
    found = {t.name: t for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.output:
            tensor = next((a.t for a in node.attribute if a.name == "value"), None)
            if tensor is not None:
                found[node.output[0]] = tensor
    return found


def weight_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    """Initializers of the main graph and the value tensors of Constant nodes (subgraphs included)."""
    yield from model.graph.initializer
    for node in iter_nodes(model.graph):
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.TENSOR:
                    yield attr.t


def inspect_model(model: onnx.ModelProto) -> GraphSummary:
    """Summarize ``model`` without modifying it or reading external data."""
    opsets: dict[str, int] = {}
    for entry in model.opset_import:
        domain = "" if entry.domain == "ai.onnx" else entry.domain
        opsets[domain] = max(opsets.get(domain, 0), entry.version)
    histogram = Counter(node.op_type for node in iter_nodes(model.graph))
    weights = list(weight_tensors(model))
    types = infer_types(model)
    flops = activation = 0
    unestimated: set[str] = set()
    for node in model.graph.node:
        cost = _node_flops(node, types)
        if cost is None:
            unestimated.add(node.op_type)
        else:
            flops += cost
        for name in node.output:
            elem, dims = types.get(name, (0, None))
            size = _volume(dims)
            if name and size is not None and elem:
                activation += nbytes(elem, size)
    inputs = tuple(tensor_spec(vi) for vi in real_inputs(model.graph))
    outputs = tuple(tensor_spec(vi) for vi in model.graph.output)
    dynamic = tuple(
        (s.name, axis, d) for s in (*inputs, *outputs) for axis, d in enumerate(s.shape) if isinstance(d, str)
    )
    input_bytes = 0
    for vi in real_inputs(model.graph):
        size = _volume(dims_of(vi.type))
        if size is not None and vi.type.HasField("tensor_type"):
            input_bytes += nbytes(vi.type.tensor_type.elem_type, size)
    producer = " ".join(p for p in (model.producer_name, model.producer_version) if p)
    return GraphSummary(
        opset=opsets.get(""),
        opsets=opsets,
        ir_version=model.ir_version,
        producer=producer,
        op_histogram=dict(histogram.most_common()),
        nodes=sum(histogram.values()),
        params=sum(math.prod(t.dims) for t in weights),
        weight_bytes=sum(tensor_nbytes(t) for t in weights),
        flops=flops,
        activation_bytes=activation,
        input_bytes=input_bytes,
        inputs=inputs,
        outputs=outputs,
        dynamic_dims=dynamic,
        unestimated_ops=tuple(sorted(unestimated)),
    )
