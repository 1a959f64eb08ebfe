"""Edge TPU compatibility report of a ``.tflite``, computed before any compile.

For each op in execution order: whether the Edge TPU can map it and, if not, every reason (unsupported
op, needs a newer runtime, not int8, dynamic size, tensor rank beyond what the chip takes, an op-specific
limitation from Coral's table). The Edge TPU compiler partitions the graph once, so the first op it
cannot map and every op after it run on the CPU; the report names that op and gives the fraction of
ops and of FLOPs that stay on the Edge TPU. The rules are the data in ``edgetpu_ops.py``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeopt_edgetpu.edgetpu_ops import (
    AUXILIARY_TYPES,
    DOC_URL,
    INTEGER_TYPES,
    LATEST_RUNTIME,
    MAX_INNER_DIMS,
    SOFTMAX_MAX_ELEMENTS,
    SUPPORTED,
)
from edgeopt_edgetpu.tflite_model import TfliteGraph, TfliteOp, TfliteTensor, read_tflite

REPORT_FILE = "edgetpu_report.json"


@dataclass(frozen=True)
class OpVerdict:
    """One op: where the Edge TPU compiler would run it, and why not on the Edge TPU."""

    index: int
    op: str
    supported: bool
    """The op itself meets every published requirement."""
    on_edgetpu: bool
    """Supported and before the first fallback (what actually runs on the chip)."""
    reasons: tuple[str, ...] = ()
    flops: float = 0.0
    caveat: str = ""
    """A published limitation that cannot be checked from the file (the compiler decides)."""
    weight_bytes: int = 0
    """Bytes of the op's constant operands (weights, biases)."""


@dataclass(frozen=True)
class CompatReport:
    """What the Edge TPU would run of one model (``to_dict`` is what the artifact stores)."""

    model: str
    runtime_version: int
    ops: tuple[OpVerdict, ...]
    model_problems: tuple[str, ...] = ()
    """Model-wide requirements not met (float I/O, batch above 1); they block the compiler."""
    first_fallback: int | None = None
    """Index of the first op the Edge TPU cannot map (everything from it runs on the CPU); None: all mapped."""
    onnx_flops: float | None = None
    """FLOPs of the normalized ONNX graph (edgeopt.graph.inspect), for reference."""
    io_bytes: int = 0
    """Bytes of the model's inputs and outputs per inference."""
    source: str = DOC_URL
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def total_flops(self) -> float:
        return sum(v.flops for v in self.ops)

    @property
    def mapped_ops(self) -> int:
        return sum(v.on_edgetpu for v in self.ops)

    @property
    def op_fraction(self) -> float:
        return self.mapped_ops / len(self.ops) if self.ops else 0.0

    @property
    def flop_fraction(self) -> float:
        total = self.total_flops
        return sum(v.flops for v in self.ops if v.on_edgetpu) / total if total else 0.0

    @property
    def compilable(self) -> bool:
        """The compiler would accept the model and map at least one op."""
        return not self.model_problems and self.mapped_ops > 0

    def summary(self) -> str:
        """One line: mapped ops and FLOPs, and where the CPU takes over."""
        head = (f"Edge TPU: {self.mapped_ops}/{len(self.ops)} ops ({self.op_fraction:.0%}), "
                f"{self.flop_fraction:.1%} of FLOPs mapped")
        if self.model_problems:
            return f"{head}; not compilable: {'; '.join(self.model_problems)}"
        if self.first_fallback is None:
            return f"{head}; no CPU fallback"
        first = self.ops[self.first_fallback]
        return (f"{head}; falls back to the CPU from op {first.index} {first.op} "
                f"({'; '.join(first.reasons)}) onward")

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(mapped_ops=self.mapped_ops, total_ops=len(self.ops), op_fraction=self.op_fraction,
                    flop_fraction=self.flop_fraction, total_flops=self.total_flops, compilable=self.compilable,
                    summary=self.summary())
        return data


def _nbytes(tensor: TfliteTensor) -> int:
    size = {"int8": 1, "uint8": 1, "int16": 2, "float16": 2, "int32": 4, "float32": 4, "int64": 8}.get(tensor.dtype, 4)
    return size * math.prod(tensor.shape)


def io_bytes(graph: TfliteGraph) -> int:
    """Bytes of the model's inputs and outputs (what crosses to and from the accelerator per inference)."""
    return sum(_nbytes(graph.tensor(i)) for i in (*graph.inputs, *graph.outputs))


def _dims_above_one(shape: tuple[int, ...]) -> int:
    return sum(1 for d in shape if d > 1)


def _axis_values(tensor: TfliteTensor | None) -> list[int] | None:
    if tensor is None or tensor.value is None:
        return None
    return [int(v) for v in tensor.value.reshape(-1)]


def _specific(op: TfliteOp, check: str, graph: TfliteGraph, data: list[TfliteTensor]) -> str | None:
    """The reason ``op`` fails its op-specific ``check``, or None when it passes (or cannot be judged)."""
    ins = [graph.tensor(i) for i in op.inputs]
    out = graph.tensor(op.outputs[0]) if op.outputs else None
    if check == "no_fused_activation" and op.fused_activation:
        return f"fused activation {op.fused_activation} (the Edge TPU takes none on {op.name})"
    if check == "same_dilation" and op.options.get("dilationHFactor", 1) != op.options.get("dilationWFactor", 1):
        return "different dilation in x and y"
    if check == "one_dimensional_output" and out is not None and _dims_above_one(out.shape) > 1:
        return f"output {list(out.shape)} is not one-dimensional"
    if check == "softmax_1d" and ins:
        shape = ins[0].shape
        if _dims_above_one(shape) > 1:
            return f"input {list(shape)} is not 1-D"
        if ins[0].shape and max(shape) > SOFTMAX_MAX_ELEMENTS:
            return f"input has {max(shape)} elements (max {SOFTMAX_MAX_ELEMENTS})"
    rank = len(data[0].shape) if data else 0
    if check == "not_batch_axis" and rank >= 4:
        axes = _axis_values(ins[1]) if op.name not in ("PACK", "SPLIT") and len(ins) > 1 else None
        if op.name == "PACK":
            axes = [int(op.options.get("axis", 0))]
        if op.name == "SPLIT":
            axes = _axis_values(ins[0])
            rank = len(ins[1].shape) if len(ins) > 1 else rank
        if axes is not None and any(a % rank == 0 for a in axes):
            return "operates on the batch dimension"
    if check == "no_batch_padding" and len(ins) > 1:
        pads = ins[1].value
        if pads is not None and pads.ndim == 2 and len(pads) >= 4 and any(int(p) for p in pads[0]):
            return "pads the batch dimension"
    if check == "unit_strides":
        strides = _axis_values(ins[3]) if len(ins) > 3 else None
        if strides is not None and any(s != 1 for s in strides):
            return f"strides {strides} (only 1 is supported)"
        if op.options.get("ellipsisMask", 0) or op.options.get("newAxisMask", 0):
            return "ellipsis or new-axis mask set"
    return None


def judge_op(op: TfliteOp, graph: TfliteGraph, runtime: int) -> tuple[list[str], str]:
    """``(reasons the Edge TPU cannot map op, caveat)``; no reasons means supported."""
    reasons: list[str] = []
    spec = SUPPORTED.get(op.name)
    if spec is None:
        reasons.append(f"unsupported op {op.name}")
    elif spec.runtime > runtime:
        reasons.append(f"{op.name} needs Edge TPU runtime >= {spec.runtime} (targeting {runtime})")
    tensors = [graph.tensor(i) for i in (*op.inputs, *op.outputs)]
    floats = sorted({t.dtype for t in tensors if t.dtype not in INTEGER_TYPES + AUXILIARY_TYPES})
    if floats:
        reasons.append(f"not int8 ({', '.join(floats)} tensors)")
    if any(t.dynamic for t in tensors):
        reasons.append("dynamic size")
    activations = [t for t in tensors if not t.constant]
    deep = [t for t in activations if len(t.shape) > MAX_INNER_DIMS and any(d > 1 for d in t.shape[:-MAX_INNER_DIMS])]
    if deep:
        shape = list(deep[0].shape)
        reasons.append(f"tensor rank beyond what the chip takes ({shape}: only the {MAX_INNER_DIMS} innermost "
                       "dimensions may exceed 1)")
    if spec is not None and spec.check:
        problem = _specific(op, spec.check, graph, activations)
        if problem:
            reasons.append(f"{op.name}: {problem}")
    caveat = spec.limitation if spec is not None and not spec.check else ""
    return reasons, caveat


def model_problems(graph: TfliteGraph) -> list[str]:
    """Model-wide requirements: integer I/O, batch 1, static shapes."""
    problems = []
    for kind, indices in (("input", graph.inputs), ("output", graph.outputs)):
        for i in indices:
            t = graph.tensor(i)
            if t.dtype not in INTEGER_TYPES:
                problems.append(f"{kind} {t.name!r} is {t.dtype}, not int8/uint8 (not a full-integer model)")
            if t.shape and t.shape[0] != 1:
                problems.append(f"{kind} {t.name!r} has batch {t.shape[0]} (the Edge TPU takes batch 1)")
            if t.dynamic:
                problems.append(f"{kind} {t.name!r} has a dynamic size")
    return problems


def analyze(graph: TfliteGraph, *, model: str = "", runtime: int = LATEST_RUNTIME,
            onnx_flops: float | None = None) -> CompatReport:
    """The report for ``graph`` as Edge TPU runtime ``runtime`` would take it."""
    judged = [(op, *judge_op(op, graph, runtime)) for op in graph.ops]
    first = next((op.index for op, reasons, _ in judged if reasons), None)
    verdicts = []
    for op, reasons, caveat in judged:
        on_chip = not reasons and (first is None or op.index < first)
        shown = reasons or ([] if on_chip else ["after the first CPU fallback"])
        weights = sum(_nbytes(graph.tensor(i)) for i in op.inputs if graph.tensor(i).constant)
        verdicts.append(OpVerdict(op.index, op.name, not reasons, on_chip, tuple(shown), op.flops, caveat, weights))
    return CompatReport(model, runtime, tuple(verdicts), tuple(model_problems(graph)), first, onnx_flops,
                        io_bytes=io_bytes(graph))


def analyze_file(path: Path, *, runtime: int = LATEST_RUNTIME, onnx_flops: float | None = None) -> CompatReport:
    """``analyze`` of the ``.tflite`` at ``path``."""
    return analyze(read_tflite(Path(path)), model=Path(path).name, runtime=runtime, onnx_flops=onnx_flops)


def render_text(report: CompatReport, *, limit: int = 60) -> str:
    """The report as plain text lines (the CLI prints it through Rich as a table)."""
    lines = [report.summary(), f"rules: {report.source} (runtime {report.runtime_version})"]
    for v in report.ops[:limit]:
        where = "edgetpu" if v.on_edgetpu else "cpu"
        why = f"  {'; '.join(v.reasons)}" if v.reasons else ""
        lines.append(f"  {v.index:4d} {v.op:<24} {where:<8}{why}")
    if len(report.ops) > limit:
        lines.append(f"  ... {len(report.ops) - limit} more ops")
    return "\n".join(lines)
