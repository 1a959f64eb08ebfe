"""fp16 models for the CUDA EP, converted by onnxconverter-common with the model's I/O kept in fp32.

``onnxconverter_common.float16.convert_float_to_float16`` rewrites every float tensor to float16 and
wraps the ops it is told to block in Casts, so they compute in fp32. Blocked here, on top of the
converter's own list (ML ops, ops with float index or shape semantics such as Resize, Range, TopK):

- reductions that add many values: a sum, sum of squares or product overflows fp16's maximum (65504)
  or loses the small terms (``ReduceSum``, ``ReduceSumSquare``, ``ReduceL1``, ``ReduceL2``,
  ``ReduceLogSum``, ``ReduceLogSumExp``, ``ReduceProd``, ``LpNormalization``);
- exponentials and powers: ``exp(x)`` overflows above x = 11.1, ``Pow``/``Softplus`` likewise, and
  ``Log`` of values below fp16's smallest normal (6.1e-5) loses its precision.

Matmuls, convolutions, Softmax and the normalizations stay in fp16: the CUDA kernels accumulate them in
fp32. Weights keep their value up to fp16's own range (``max_finite_val`` 65504 rather than the
converter's default 1e4, which would clip larger but representable weights).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from edgeopt.plugin import BIG_MODEL_BYTES, CompileError, model_bytes

NUMERICALLY_UNSAFE_OPS = (
    "Exp",
    "Log",
    "LpNormalization",
    "Pow",
    "ReduceL1",
    "ReduceL2",
    "ReduceLogSum",
    "ReduceLogSumExp",
    "ReduceProd",
    "ReduceSum",
    "ReduceSumSquare",
    "Softplus",
)
FP16_MAX = 65504.0


def default_op_block_list() -> tuple[str, ...]:
    """The converter's own block list plus :data:`NUMERICALLY_UNSAFE_OPS`, sorted."""
    from onnxconverter_common import float16

    return tuple(sorted(set(float16.DEFAULT_OP_BLOCK_LIST) | set(NUMERICALLY_UNSAFE_OPS)))


@dataclass(frozen=True)
class Fp16Options:
    """Settings for the ``fp16-convert`` pass."""

    keep_io_types: bool = True
    """Graph inputs and outputs stay float32 (Casts inside the graph), so callers feed what they fed before."""
    op_block_list: tuple[str, ...] | None = None
    """Op types computed in fp32; None uses :func:`default_op_block_list`. A given list replaces it entirely."""
    node_block_list: tuple[str, ...] = ()
    """Node names computed in fp32 (e.g. a sensitive last layer)."""
    min_positive_val: float = 1e-7
    """Weights with a magnitude below this become +-this value instead of flushing to zero (converter default)."""
    max_finite_val: float = FP16_MAX
    """Weights with a larger magnitude are clipped to +-this value."""

    def __post_init__(self) -> None:
        if not 0.0 < self.min_positive_val < self.max_finite_val <= FP16_MAX:
            raise CompileError(
                f"invalid fp16 value range {self.min_positive_val}..{self.max_finite_val}",
                hint=f"need 0 < min_positive_val < max_finite_val <= {FP16_MAX:g}",
            )

    def blocked_ops(self) -> tuple[str, ...]:
        return default_op_block_list() if self.op_block_list is None else tuple(self.op_block_list)

    def to_params(self) -> dict[str, Any]:
        """JSON-ready form, with the block list spelled out (so the manifest shows what was blocked)."""
        params = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
        params["op_block_list"] = list(self.blocked_ops())
        return params

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Fp16Options:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise CompileError(
                f"unknown fp16-convert option(s): {', '.join(unknown)}", hint=f"known: {', '.join(sorted(known))}"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in params.items()})


@dataclass(frozen=True)
class Fp16Report:
    """What the conversion did, counted from the converted model."""

    fp16_nodes: int
    """Compute nodes (Casts excluded) whose first output is float16."""
    fp32_nodes: int
    """Compute nodes whose first output stayed float32 (blocked ops, or float ops next to them)."""
    casts_added: int
    outputs_restored: int
    """Graph outputs the converter left in fp16 despite ``keep_io_types`` and that were set back to fp32."""
    blocked: Mapping[str, int]
    """Nodes kept in fp32 because their op type or name is blocked, by op type."""
    weight_bytes_before: int
    weight_bytes_after: int
    clamp_warnings: int
    """Converter warnings that a weight tensor held values outside [min_positive_val, max_finite_val] and was
    clamped (one per tensor and side: largest, smallest positive, and the same for negatives)."""
    converter_version: str

    def as_params(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        blocked = ", ".join(f"{op} {n}" for op, n in self.blocked.items()) or "none"
        clamped = f"; {self.clamp_warnings} weight clamping warnings (values outside fp16's range)"
        return (
            f"fp16: {self.fp16_nodes} nodes in fp16, {self.fp32_nodes} kept in fp32 (blocked: {blocked}), "
            f"{self.casts_added} Casts added; weights {self.weight_bytes_before / 1e6:.2f} MB -> "
            f"{self.weight_bytes_after / 1e6:.2f} MB" + (clamped if self.clamp_warnings else "")
        )


def _weight_bytes(model: onnx.ModelProto) -> int:
    total = 0
    for init in model.graph.initializer:
        if init.data_type != onnx.TensorProto.STRING:
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(init.data_type)).itemsize
            total += itemsize * math.prod(init.dims)
    return total


def tensor_types(model: onnx.ModelProto) -> dict[str, int]:
    """Element type of every tensor (inputs, outputs, inferred intermediates, initializers) by name."""
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        if vi.type.HasField("tensor_type"):
            types[vi.name] = vi.type.tensor_type.elem_type
    for init in inferred.graph.initializer:
        types[init.name] = init.data_type
    return types


def _io_types(model: onnx.ModelProto) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return (
        tuple(i.type.tensor_type.elem_type for i in model.graph.input),
        tuple(o.type.tensor_type.elem_type for o in model.graph.output),
    )


def count_precisions(model: onnx.ModelProto) -> tuple[int, int]:
    """(fp16, fp32) counts of non-Cast nodes by the element type of their first output."""
    types = tensor_types(model)
    counts: Counter[int] = Counter(
        types.get(node.output[0], 0) for node in model.graph.node if node.op_type != "Cast" and node.output
    )
    return counts[onnx.TensorProto.FLOAT16], counts[onnx.TensorProto.FLOAT]


def restoretensor_types(original: onnx.ModelProto, converted: onnx.ModelProto) -> int:
    """Make every graph output that was float32 in ``original`` float32 again in ``converted`` (in place).

    With ``keep_io_types=True`` onnxconverter-common (1.16) still declares an output float16 when the node
    producing it is blocked: it casts the blocked node's fp32 result to fp16 under the output's name,
    which also turns a value above 65504 into inf. Such a Cast is turned into a Cast to float32; any other
    fp16 output gets a Cast to float32 appended. Returns how many outputs were fixed.
    """
    wanted = {o.name for o in original.graph.output if o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    producers = {out: node for node in converted.graph.node for out in node.output}
    fixed = 0
    for output in converted.graph.output:
        if output.name not in wanted or output.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16:
            continue
        node = producers.get(output.name)
        cast = node is not None and node.op_type == "Cast" and node.output[0] == output.name
        if cast and node is not None:
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = onnx.TensorProto.FLOAT
        elif node is not None:
            inner = f"{output.name}__fp16"
            node.output[list(node.output).index(output.name)] = inner
            converted.graph.node.append(
                onnx.helper.make_node(
                    "Cast", [inner], [output.name], name=f"{output.name}__to_fp32", to=onnx.TensorProto.FLOAT
                )
            )
        else:  # an output that is a graph input or an initializer: nothing produces it here
            continue
        output.type.tensor_type.elem_type = onnx.TensorProto.FLOAT
        stale = [vi for vi in converted.graph.value_info if vi.name == output.name]
        for vi in stale:
            converted.graph.value_info.remove(vi)
        fixed += 1
    return fixed


def convert_fp16(src: Path, dst: Path, options: Fp16Options | None = None) -> Fp16Report:
    """Write ``src`` converted to float16 at ``dst``; raise ``CompileError`` when nothing computes in fp16.

    ``src`` is a normalized graph; it is never modified. Models over 2 GB are written with external data.
    """
    import onnxconverter_common
    from onnxconverter_common import float16

    options = options or Fp16Options()
    src, dst = Path(src), Path(dst)
    model = onnx.load(str(src))
    if any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer):
        raise CompileError(f"{src.name} already holds float16 weights", hint="deploy it as fp32, it is fp16 already")
    blocked_ops = options.blocked_ops()
    big = model_bytes(src) > BIG_MODEL_BYTES
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            converted = float16.convert_float_to_float16(
                model,
                min_positive_val=options.min_positive_val,
                max_finite_val=options.max_finite_val,
                keep_io_types=options.keep_io_types,
                op_block_list=list(blocked_ops),
                node_block_list=list(options.node_block_list),
            )
        except Exception as exc:  # the converter's own errors (unsupported graph structure...)
            raise CompileError(
                f"fp16 conversion of {src.name} failed: {type(exc).__name__}: {exc}",
                hint="add the failing op to op_block_list, or deploy as fp32",
            ) from exc
    clamped = sum(1 for w in caught if "will be truncated to" in str(w.message))
    outputs_fixed = restoretensor_types(model, converted) if options.keep_io_types else 0
    if options.keep_io_types and _io_types(converted) != _io_types(model):
        raise CompileError(
            f"fp16 conversion of {src.name} changed the model's input/output types despite keep_io_types",
            hint="report this model to edgeopt; deploy it as fp32 meanwhile",
        )
    try:
        onnx.checker.check_model(converted, full_check=not big)
    except onnx.checker.ValidationError as exc:
        raise CompileError(f"fp16 conversion of {src.name} produced an invalid model: {exc}") from exc
    fp16_nodes, fp32_nodes = count_precisions(converted)
    if fp16_nodes == 0:
        raise CompileError(
            f"fp16 conversion of {src.name} changed nothing: every compute node stayed in fp32",
            hint="check op_block_list/node_block_list, or deploy as fp32",
        )
    blocked = Counter(
        n.op_type for n in model.graph.node if n.op_type in blocked_ops or n.name in options.node_block_list
    )
    casts = sum(n.op_type == "Cast" for n in converted.graph.node) - sum(n.op_type == "Cast" for n in model.graph.node)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(converted, str(dst), save_as_external_data=big, location=f"{dst.name}.data" if big else None)
    return Fp16Report(
        fp16_nodes=fp16_nodes,
        fp32_nodes=fp32_nodes,
        casts_added=casts,
        outputs_restored=outputs_fixed,
        blocked=dict(sorted(blocked.items())),
        weight_bytes_before=_weight_bytes(model),
        weight_bytes_after=_weight_bytes(converted),
        clamp_warnings=clamped,
        converter_version=getattr(onnxconverter_common, "__version__", "?"),
    )
