"""Which model family a graph belongs to, read from its structure (never from node or tensor names).

The family decides the graph work a runtime needs to be fast: a transformer encoder wants ONNX Runtime's
attention / SkipLayerNorm / BiasGelu fusion and int8 that leaves the attention mask (float-min values) in
float; a conv net wants static int8; a recurrent net often runs fastest in plain fp32.

- ``transformer``: at least one attention block, i.e. a ``Softmax`` whose input comes (through elementwise
  scale/mask ops) from a MatMul of two computed tensors (Q·Kᵀ) and whose output feeds a MatMul of two
  computed tensors (scores·V); plus layer norms (``LayerNormalization`` or its fused forms).
- ``rnn``: ``LSTM``/``GRU``/``RNN``/``Scan``/``Loop`` nodes.
- ``cnn``: more convolutions than MatMul/Gemm; ``mlp``: only MatMul/Gemm; ``other``: none of those.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeopt.types import Graph

FAMILIES = ("transformer", "rnn", "cnn", "mlp", "other")
_PASS_THROUGH = ("Add", "Mul", "Div", "Sub", "Where", "Cast", "Identity", "Dropout", "Reshape", "Expand")
"""Elementwise or shape ops allowed between the score MatMul, the Softmax and the value MatMul."""
_LAYER_NORMS = ("LayerNormalization", "SkipLayerNormalization", "SimplifiedLayerNormalization",
                "SkipSimplifiedLayerNormalization", "EmbedLayerNormalization")
_RECURRENT = ("LSTM", "GRU", "RNN", "Scan", "Loop")
CONV_OPS = ("Conv", "ConvTranspose")
MATMUL_OPS = ("MatMul", "Gemm")
WEIGHTED_OPS = (*CONV_OPS, *MATMUL_OPS)
"""The ops int8 quantization speeds up on every runtime edgeopt targets; a graph without any has nothing to quantize."""
_FUSED_ATTENTION = ("Attention", "MultiHeadAttention", "QAttention")


@dataclass(frozen=True)
class Family:
    """What the graph is, with the evidence and, for transformers, the attention geometry."""

    kind: str
    """One of ``FAMILIES``."""
    attention_blocks: int = 0
    layer_norms: int = 0
    num_heads: int | None = None
    """Heads per attention block, from the 4-D shape Q is reshaped to; None when it cannot be read."""
    hidden_size: int | None = None
    """Model width (heads x head size); None when it cannot be read."""
    evidence: str = ""

    @property
    def is_transformer(self) -> bool:
        return self.kind == "transformer"


def _shapes(model: Any) -> dict[str, tuple]:
    """Static shapes by tensor name from the graph's inputs, outputs and inferred value_info."""
    out: dict[str, tuple] = {}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    return out


class _Graph:
    def __init__(self, model: Any) -> None:
        from edgeopt.graph.inspect import constant_values

        self.nodes = list(model.graph.node)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.constants = {t.name for t in model.graph.initializer}
        self.constants |= {o for n in self.nodes if n.op_type == "Constant" for o in n.output}
        self.shapes = _shapes(model)
        self.values: dict[str, Any] = constant_values(model.graph)

    def constant_shape(self, name: str) -> tuple | None:
        from onnx import numpy_helper

        tensor = self.values.get(name)
        return tuple(int(v) for v in numpy_helper.to_array(tensor).reshape(-1)) if tensor is not None else None

    def computed(self, name: str) -> bool:
        return bool(name) and name not in self.constants

    def activation_matmul(self, node: Any) -> bool:
        return node.op_type == "MatMul" and len(node.input) == 2 and all(self.computed(i) for i in node.input)

    def score_matmul(self, softmax: Any) -> Any | None:
        """The Q·Kᵀ MatMul feeding ``softmax`` through pass-through ops, or None."""
        frontier, seen = [softmax.input[0]], set()
        while frontier:
            name = frontier.pop()
            node = self.producer.get(name)
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if self.activation_matmul(node):
                return node
            if node.op_type in _PASS_THROUGH:
                frontier.extend(i for i in node.input if self.computed(i))
        return None

    def feeds_value_matmul(self, softmax: Any) -> bool:
        frontier, seen = [softmax.output[0]], set()
        while frontier:
            for node in self.consumers.get(frontier.pop(), []):
                if id(node) in seen:
                    continue
                seen.add(id(node))
                if self.activation_matmul(node):
                    return True
                if node.op_type in _PASS_THROUGH:
                    frontier.extend(node.output)
        return False

    def heads(self, score: Any) -> tuple[int | None, int | None]:
        """``(num_heads, hidden)`` from the 4-D ``[batch, seq, heads, head_size]`` tensor Q was reshaped to."""
        name = score.input[0]
        for _ in range(4):
            node = self.producer.get(name)
            if node is None:
                return None, None
            if node.op_type == "Reshape":
                shape = self.shapes.get(node.output[0]) or self.constant_shape(node.input[1])
                if shape and len(shape) == 4 and shape[2] and shape[3] and shape[2] > 0 and shape[3] > 0:
                    return int(shape[2]), int(shape[2] * shape[3])
                return None, None
            name = node.input[0]
        return None, None


def detect_family(model: str | Path | Any) -> Family:
    """The family of an ONNX model (a path, loaded without external data, or a ``ModelProto``)."""
    import onnx

    if isinstance(model, (str, Path)):
        model = onnx.load(str(model), load_external_data=False)
    g = _Graph(model)
    ops = Counter(n.op_type for n in g.nodes)
    norms = sum(ops[o] for o in _LAYER_NORMS)
    blocks, heads, hidden = sum(ops[o] for o in _FUSED_ATTENTION), None, None
    for node in g.nodes:
        if node.op_type != "Softmax":
            continue
        score = g.score_matmul(node)
        if score is not None and g.feeds_value_matmul(node):
            blocks += 1
            if heads is None:
                heads, hidden = g.heads(score)
    if blocks and norms:
        return Family("transformer", blocks, norms, heads, hidden,
                      f"{blocks} attention block(s) (MatMul -> Softmax -> MatMul), {norms} layer norm(s)")
    recurrent = sum(ops[o] for o in _RECURRENT)
    if recurrent:
        return Family("rnn", blocks, norms, evidence=f"{recurrent} recurrent node(s)")
    convs, matmuls = sum(ops[o] for o in CONV_OPS), sum(ops[o] for o in MATMUL_OPS)
    if convs and convs >= matmuls:
        return Family("cnn", blocks, norms, evidence=f"{convs} convolution(s), {matmuls} MatMul/Gemm")
    if matmuls:
        return Family("mlp", blocks, norms, evidence=f"{matmuls} MatMul/Gemm, {convs} convolution(s)")
    return Family("other", blocks, norms, evidence="no convolution, MatMul, Gemm or recurrent node")


def op_histogram(graph: Graph) -> Counter[str]:
    """Op types of the graph's top level, counted (weights are not loaded)."""
    import onnx

    model = onnx.load(str(graph.path), load_external_data=False)
    return Counter(node.op_type for node in model.graph.node)


def refuse_int8_without_weighted_ops(ops: Counter[str], precision: str, *, kernels: str) -> None:
    """``TargetError`` when ``precision`` was asked for explicitly and the graph (op histogram ``ops``) has no
    ``WEIGHTED_OPS`` node: its result would be a float model labelled int8. ``kernels`` names the runtime's
    int8 kernels for the hint."""
    from edgeopt.errors import TargetError

    if any(ops[op] for op in WEIGHTED_OPS):
        return
    present = ", ".join(f"{op} x{n}" for op, n in ops.most_common(6)) or "no nodes"
    raise TargetError(
        f"{precision} has nothing to quantize in this model: it has no Conv, ConvTranspose, MatMul or Gemm node "
        f"({present})",
        hint=f"deploy it with --precision fp32 (or auto); {kernels} only cover those ops",
    )
