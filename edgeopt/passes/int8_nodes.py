"""Which nodes int8 quantization is for, and which a quantized model runs on integers, read from the graph.

The op sets say what each ORT mode can quantize; ``float_tail_nodes`` names the weightless nodes a static run
leaves in float; ``quantized_static`` / ``quantized_dynamic`` count, by op type of the input model, the weighted
nodes a quantized model actually runs on quantized inputs (the figures ``QuantizeReport`` carries).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import onnx

WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm", "Attention", "LSTM")
"""Ops whose weights and arithmetic quantization is for; the ones ``QuantizeReport`` counts."""
STATIC_OP_TYPES = ("Conv", "ConvTranspose", "MatMul", "Gemm")
"""Weighted ops with QDQ support in ORT's static quantizer."""
DYNAMIC_OP_TYPES = ("Conv", "MatMul", "Gemm", "Attention", "LSTM")
"""Ops ORT's dynamic quantizer has integer kernels for (Gemm is rewritten to MatMul first)."""
INTEGER_OPS = {
    "ConvInteger": "Conv",
    "MatMulInteger": "MatMul",
    "DynamicQuantizeMatMul": "MatMul",
    "QAttention": "Attention",
    "DynamicQuantizeLSTM": "LSTM",
}
"""Integer kernels ORT's dynamic quantizer emits, each to the weighted op it replaces."""


def weight_bytes(model: onnx.ModelProto) -> int:
    """Bytes of the top graph's initializers, from their declared dtype and shape."""
    total = 0
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.STRING:
            continue
        itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
        total += itemsize * math.prod(init.dims)
    return total


def quantizable(model: onnx.ModelProto, op_types: tuple[str, ...], exclude: tuple[str, ...]) -> int:
    """Nodes of ``model`` of ``op_types`` not named in ``exclude``."""
    return sum(1 for n in model.graph.node if n.op_type in op_types and n.name not in exclude)


def float_tail_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the weightless nodes in the graph's tail: every path from them reaches a graph output
    without passing a weighted op (a final Softmax followed by a Reshape, say)."""
    outputs = {o.name for o in model.graph.output}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    tail: set[int] = set()
    changed = True
    while changed:
        changed = False
        for node in model.graph.node:
            if id(node) in tail or not node.name or node.op_type in WEIGHTED_OPS:
                continue
            uses = [c for out in node.output for c in consumers.get(out, [])]
            reaches_output = bool(set(node.output) & outputs)
            if (reaches_output or uses) and all(id(c) in tail for c in uses):
                tail.add(id(node))
                changed = True
    return [n.name for n in model.graph.node if id(n) in tail]


def quantized_static(model: onnx.ModelProto) -> Counter[str]:
    """Weighted nodes whose data and weight inputs both come out of DequantizeLinear (the QDQ pattern
    ORT fuses into an integer kernel); a float node merely fed by a quantized activation does not count."""
    producer = {out: n.op_type for n in model.graph.node for out in n.output}
    return Counter(
        n.op_type
        for n in model.graph.node
        if n.op_type in WEIGHTED_OPS and all(producer.get(i) == "DequantizeLinear" for i in n.input[:2])
    )


def quantized_dynamic(model: onnx.ModelProto) -> Counter[str]:
    """Integer kernels of a dynamically quantized model, by the float op they replace."""
    return Counter(INTEGER_OPS[n.op_type] for n in model.graph.node if n.op_type in INTEGER_OPS)
