"""Transformer-encoder fusion with ONNX Runtime's transformer optimizer (``onnxruntime.transformers``).

ONNX Runtime runs an encoder far faster when each attention block is one ``Attention`` node, each residual
add + layer norm one ``SkipLayerNormalization`` and each dense + GELU one ``BiasGelu``/``FastGelu`` (contrib
ops of the ``com.microsoft`` domain, so the result runs on ONNX Runtime only). Its optimizer matches those
patterns on a graph as a PyTorch export writes it: ``MatMul`` + ``Add`` on 3-D activations. onnxslim's
``FusionGemm`` folds each such pair into ``Reshape`` → ``Gemm`` → ``Reshape``; edgeopt's normalization leaves
that fusion out for transformer-family graphs (``skip_fusion_patterns``, ``edgeopt.graph.normalize._simplify``), and
this pass still unfolds any such triple it finds (:func:`unfold_gemms`) because a user's model often arrives
already simplified by onnxslim. Then it runs the optimizer with the head count and width read from the graph
(``edgeopt.graph.model_family``), since its own detection fails on recent ``transformers`` exports.

The output keeps the attention mask path as the optimizer writes it (an integer mask into ``Attention``),
so no float-min mask tensor is left for a later static quantization to calibrate.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Self

from edgeopt.errors import CompileError

FUSED_OPS = ("Attention", "MultiHeadAttention", "SkipLayerNormalization", "BiasGelu", "FastGelu", "Gelu",
             "EmbedLayerNormalization", "LayerNormalization")
MODEL_TYPES = ("bert",)


@dataclass(frozen=True)
class TransformerFusionOptions:
    """How the ``transformer-fuse`` pass calls ONNX Runtime's transformer optimizer."""

    num_heads: int = 0
    """Attention heads per block; 0 reads them from the graph (``edgeopt.graph.model_family.detect_family``)."""
    hidden_size: int = 0
    """Model width; 0 reads it from the graph."""
    model_type: str = "bert"
    """The optimizer's model family (``bert`` covers BERT/RoBERTa/MiniLM-style encoders)."""

    def __post_init__(self) -> None:
        if self.model_type not in MODEL_TYPES:
            raise CompileError(f"invalid transformer-fuse model_type {self.model_type!r}",
                               hint=f"choose one of {', '.join(MODEL_TYPES)}")
        for name in ("num_heads", "hidden_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CompileError(f"transformer-fuse {name} must be a non-negative integer, got {value!r}")

    def to_params(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise CompileError(f"unknown transformer-fuse option(s): {', '.join(unknown)}",
                               hint=f"known: {', '.join(sorted(known))}")
        return cls(**params)


@dataclass(frozen=True)
class FusionReport:
    """What the fusion did."""

    fused: Mapping[str, int]
    """Fused op type -> count in the output."""
    unfolded_gemms: int
    num_heads: int
    hidden_size: int

    def as_params(self) -> dict[str, Any]:
        return {"num_heads": self.num_heads, "hidden_size": self.hidden_size, "fused": dict(self.fused),
                "unfolded_gemms": self.unfolded_gemms}

    @property
    def summary(self) -> str:
        parts = ", ".join(f"{op} {n}" for op, n in self.fused.items() if n) or "nothing fused"
        return f"transformer fusion ({self.num_heads} heads, width {self.hidden_size}): {parts}"


def _static_shapes(model: Any) -> dict[str, tuple]:
    out = {}
    for vi in [*model.graph.input, *model.graph.value_info, *model.graph.output]:
        out[vi.name] = tuple(d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim)
    return out


def _attr(node: Any, name: str, default: float) -> float:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def _leading(shape: tuple, rows: int | None) -> tuple[int, ...] | None:
    """The shortest prefix of ``shape`` whose product is ``rows`` (the Gemm's row count), or None."""
    if rows is None or not shape or any(not d for d in shape):
        return None
    product = 1
    for i, d in enumerate(shape):
        product *= d
        if product == rows:
            return tuple(shape[: i + 1])
        if product > rows:
            return None
    return None


def unfold_gemms(model: Any) -> int:
    """Rewrite ``Reshape(x: [.., K] -> [n, K])`` → ``Gemm(W, B)`` → ``Reshape`` consumers as ``MatMul(x, W)`` +
    ``Add(B)`` on ``x``'s own rank, in place; returns how many Gemms were unfolded. Only plain Gemms
    (alpha = beta = 1, no transA) whose every consumer is a Reshape are touched.

    Why this stays beside ``skip_fusion_patterns=["FusionGemm"]``: edgeopt's own normalization no longer folds an
    encoder's pairs (tested: on the tiny BERT of the tests the normalized outputs, the fused op counts and the
    fused outputs are bit-identical either way), but a model a user simplified with onnxslim before giving it to
    edgeopt arrives folded, and ORT's fusion finds no Attention in it without this rewrite."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    graph = model.graph
    shapes = _static_shapes(model)
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    outputs = {o.name for o in graph.output}
    done = 0
    for gemm in [n for n in graph.node if n.op_type == "Gemm"]:
        pre = producer.get(gemm.input[0])
        users = consumers.get(gemm.output[0], [])
        if (pre is None or pre.op_type != "Reshape" or gemm.input[1] not in inits or gemm.output[0] in outputs
                or not users or any(u.op_type != "Reshape" for u in users)
                or _attr(gemm, "alpha", 1.0) != 1.0 or _attr(gemm, "beta", 1.0) != 1.0
                or _attr(gemm, "transA", 0) != 0):
            continue
        x = pre.input[0]
        rows_k = shapes.get(gemm.input[0]) or ()
        lead = _leading(shapes.get(users[0].output[0]) or (), rows_k[0] if len(rows_k) == 2 else None)
        if lead is None or len(lead) < 2 or any(_leading(shapes.get(u.output[0]) or (), rows_k[0]) != lead
                                                for u in users):
            continue
        weight = gemm.input[1]
        if _attr(gemm, "transB", 0):
            w = numpy_helper.to_array(inits[weight]).T.copy()
            weight = f"{gemm.input[1]}_unfolded_T_{done}"
            graph.initializer.append(numpy_helper.from_array(w, weight))
        base = gemm.name or gemm.output[0]
        matmul_out = f"{base}_unfolded_matmul"
        index = list(graph.node).index(gemm)
        new_nodes = []
        if shapes.get(x) != (*lead, rows_k[1]):  # x is not [*lead, K] (e.g. 4-D heads): reshape it there
            target = f"{base}_unfolded_shape"
            graph.initializer.append(numpy_helper.from_array(np.array([*lead, rows_k[1]], np.int64), target))
            new_nodes.append(helper.make_node("Reshape", [x, target], [f"{base}_unfolded_in"], name=f"{base}_In"))
            x = f"{base}_unfolded_in"
        new_nodes.append(helper.make_node("MatMul", [x, weight], [matmul_out], name=f"{base}_MatMul"))
        result = matmul_out
        if len(gemm.input) > 2 and gemm.input[2]:
            result = f"{base}_unfolded_add"
            new_nodes.append(helper.make_node("Add", [matmul_out, gemm.input[2]], [result], name=f"{base}_Add"))
        for k, node in enumerate(new_nodes):
            graph.node.insert(index + k, node)
        graph.node.remove(gemm)
        for user in users:
            user.input[0] = result
        done += 1
    if done:  # drop Reshapes nobody reads any more, and the stale shape annotations
        while True:
            read = {i for n in graph.node for i in n.input} | outputs
            dead = [n for n in graph.node if n.op_type == "Reshape" and not set(n.output) & read]
            if not dead:
                break
            for n in dead:
                graph.node.remove(n)
        del graph.value_info[:]
        model.CopyFrom(onnx.shape_inference.infer_shapes(model))
        _drop_noop_reshapes(model)
    return done


def _drop_noop_reshapes(model: Any) -> None:
    """Bypass Reshapes whose static output shape equals their input's (left behind by the unfolding)."""
    graph = model.graph
    shapes = _static_shapes(model)
    outputs = {o.name for o in graph.output}
    for node in [n for n in graph.node if n.op_type == "Reshape"]:
        src, dst = shapes.get(node.input[0]), shapes.get(node.output[0])
        if not src or src != dst or None in src or 0 in src or node.output[0] in outputs:
            continue
        for other in graph.node:
            for i, name in enumerate(other.input):
                if name == node.output[0]:
                    other.input[i] = node.input[0]
        graph.node.remove(node)


def restore_mask_path(model: Any) -> int:
    """Give a simplified ``transformers`` 5 eager attention mask back the shape ORT's optimizer matches, in place.

    The export computes the additive mask as ``Where(Expand(And(.., Reshape(Reshape(Gather(Flatten(mask)))))),
    0, float-min)``; simplification drops the identity ``Expand`` and merges the two ``Reshape`` s. This puts an
    identity ``Expand`` (to the ``And`` output's own shape) and an identity ``Reshape`` back. Returns how many
    mask paths were restored."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    shapes = _static_shapes(model)
    producer = {o: n for n in graph.node for o in n.output}
    restored = 0
    for where in [n for n in graph.node if n.op_type == "Where"]:
        cond = producer.get(where.input[0])
        if cond is None or cond.op_type != "And":
            continue
        reshape = producer.get(cond.input[1])
        gather = producer.get(reshape.input[0]) if reshape is not None and reshape.op_type == "Reshape" else None
        flatten = producer.get(gather.input[0]) if gather is not None and gather.op_type == "Gather" else None
        if flatten is None or flatten.op_type != "Flatten":
            continue
        and_shape, gather_shape = shapes.get(cond.output[0]), shapes.get(gather.output[0])
        if not and_shape or not gather_shape or None in and_shape or None in gather_shape:
            continue
        tag = f"edgeopt_mask_{restored}"
        graph.initializer.extend([
            numpy_helper.from_array(np.array(and_shape, np.int64), f"{tag}_expand_shape"),
            numpy_helper.from_array(np.array(gather_shape, np.int64), f"{tag}_reshape_shape"),
        ])
        nodes = list(graph.node)
        expand = helper.make_node("Expand", [cond.output[0], f"{tag}_expand_shape"], [f"{tag}_expanded"],
                                  name=f"{tag}_Expand")
        ident = helper.make_node("Reshape", [gather.output[0], f"{tag}_reshape_shape"], [f"{tag}_reshaped"],
                                 name=f"{tag}_Reshape")
        graph.node.insert(nodes.index(where), expand)
        graph.node.insert(nodes.index(reshape), ident)
        reshape.input[0] = ident.output[0]
        for node in graph.node:  # every Where reading this And now reads the Expand
            if node.op_type == "Where" and node.input[0] == cond.output[0]:
                node.input[0] = expand.output[0]
        restored += 1
    return restored


def fuse_transformer(src: Path, dst: Path, options: TransformerFusionOptions | None = None) -> FusionReport:
    """Fuse the encoder at ``src`` into ``dst`` (see the module docstring). ``CompileError`` when the head count
    cannot be read from the graph and was not given, or when the optimizer fails."""
    import onnx

    from edgeopt.graph.model_family import detect_family

    options = options or TransformerFusionOptions()
    model = onnx.load(str(src))
    unfolded = unfold_gemms(model)
    restore_mask_path(model)
    heads, hidden = options.num_heads, options.hidden_size
    if not heads or not hidden:
        family = detect_family(model)
        heads, hidden = heads or family.num_heads or 0, hidden or family.hidden_size or 0
    if not heads or not hidden:
        raise CompileError("transformer-fuse cannot read the attention head count from the graph",
                           hint="give num_heads and hidden_size in the pass parameters")
    from onnxruntime.transformers.optimizer import optimize_model

    quiet = logging.getLogger("onnxruntime.transformers")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory(prefix=".edgeopt-fuse-") as tmp:
            unfolded_path = Path(tmp) / "unfolded.onnx"
            onnx.save(model, str(unfolded_path))
            with contextlib.redirect_stdout(io.StringIO()):  # the optimizer prints progress lines
                optimized = optimize_model(str(unfolded_path), model_type=options.model_type, num_heads=heads,
                                           hidden_size=hidden, opt_level=0, use_gpu=False)
            dst.parent.mkdir(parents=True, exist_ok=True)
            optimized.save_model_to_file(str(dst))
    except CompileError:
        raise
    except Exception as exc:  # the optimizer's own errors: a pattern it cannot handle
        raise CompileError(f"ONNX Runtime's transformer optimizer failed: {type(exc).__name__}: {exc}",
                           hint="deploy without the transformer-fuse pass (precision fp32 plain)") from exc
    finally:
        quiet.setLevel(level)
    ops = Counter(n.op_type for n in onnx.load(str(dst), load_external_data=False).graph.node)
    return FusionReport({op: ops[op] for op in FUSED_OPS if ops[op]}, unfolded, heads, hidden)
