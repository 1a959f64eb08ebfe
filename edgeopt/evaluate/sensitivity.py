"""Per-layer sensitivity: how much each quantizable node adds to a candidate's error, ranked.

Two methods, chosen by what the candidate's model file is:

- ``activation-sqnr`` (ONNX candidates, e.g. QDQ int8): copies of the fp32 normalized graph and of the
  candidate expose each weighted node's output (and data input) as extra graph outputs — ONNX Runtime
  keeps the original tensor names — and both run on a few evaluation samples (basic graph optimizations
  only: no QDQ fusion; at most ``TIME_LIMIT_S`` of runs). For node *n*, the relative noise power
  ``r = Σ(cand−ref)² / Σref²`` of its output minus that of the input it reads gives the noise *n*
  itself adds (its own input, weight and arithmetic quantization); ``contribution_db = −10·log10(that)``
  (lower is more sensitive) ranks the nodes.
- ``leave-one-fp32`` (other model formats): a cheap prior (int8 rounding error of each node's weights)
  picks the ``top_k`` nodes, each is re-compiled alone in fp32 and the metric drop re-measured; the
  ones whose drop improves most rank first.

The result is plain data (``SensitivityReport``) that goes into the manifest's ``sensitivity`` list.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from edgeopt.types import Dataset

WEIGHTED_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
"""Op types whose precision a target can choose per node (what ``keep_fp32`` can name)."""
PASS_THROUGH = ("Relu", "Clip", "LeakyRelu", "Sigmoid", "Tanh", "Identity", "BatchNormalization", "Add", "Mul")
"""Ops followed (first input only) when a node's own output name no longer exists in the candidate."""
SAMPLES = 8
"""Evaluation samples the activation method runs on."""
TIME_LIMIT_S = 5.0
"""The activation method stops adding samples after this long (two batches at least)."""
MAX_BYTES = 2 * 1024**3 - 1
"""Models at least this large cannot be copied in memory with extra outputs; the method is skipped."""
_FLOOR = 1e-12


@dataclass(frozen=True)
class NodeSensitivity:
    """One quantizable node's share of the error, as recorded in the manifest."""

    node: str
    op_type: str
    rank: int
    """1 is the most sensitive node."""
    contribution_db: float | None
    """SQNR of the noise this node adds alone (activation method), dB; lower is more sensitive."""
    sqnr_db: float | None = None
    """SQNR of the node's output in the candidate against fp32 (accumulated from every node before it)."""
    drop_gain: float | None = None
    """Metric drop recovered by keeping only this node in fp32 (leave-one-fp32 method), metric units."""
    kept_fp32: bool = False
    tensor: str = ""
    """The tensor compared (the node's output or the first surviving one after pass-through ops)."""


@dataclass(frozen=True)
class SensitivityReport:
    candidate: str
    """Label of the candidate analysed."""
    method: str
    """``activation-sqnr``, ``leave-one-fp32`` or ``skipped``."""
    samples: int
    nodes: tuple[NodeSensitivity, ...] = ()
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    def ranked(self) -> list[str]:
        """Node names, most sensitive first."""
        return [n.node for n in sorted(self.nodes, key=lambda n: n.rank)]

    def to_dict(self) -> dict:
        return {**asdict(self), "nodes": [asdict(n) for n in self.nodes], "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: dict) -> SensitivityReport:
        nodes = tuple(NodeSensitivity(**n) for n in data.get("nodes", ()))
        return cls(data["candidate"], data["method"], data["samples"], nodes, tuple(data.get("notes", ())),
                   data.get("seconds", 0.0))


@dataclass
class _Graph:
    """What the activation method needs to know about the fp32 graph."""

    nodes: list = field(default_factory=list)
    producer: dict = field(default_factory=dict)
    consumers: dict = field(default_factory=dict)
    inputs: set = field(default_factory=set)


def quantizable_nodes(model_path: Path) -> list[tuple[str, str]]:
    """``(name, op_type)`` of the named weighted nodes of an ONNX model, in graph order."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    return [(n.name, n.op_type) for n in model.graph.node if n.op_type in WEIGHTED_OPS and n.name]


def _index(model) -> _Graph:  # noqa: ANN001 - onnx.ModelProto
    g = _Graph(nodes=list(model.graph.node), inputs={i.name for i in model.graph.input})
    for n in g.nodes:
        for out in n.output:
            g.producer[out] = n
        for i in n.input:
            g.consumers.setdefault(i, []).append(n)
    return g


def _forward(g: _Graph, tensor: str, present: set[str]) -> str | None:
    """``tensor`` or the first tensor after single-consumer pass-through ops that ``present`` holds."""
    for _ in range(4):
        if tensor in present:
            return tensor
        users = g.consumers.get(tensor, [])
        if len(users) != 1 or users[0].op_type not in PASS_THROUGH or users[0].input[0] != tensor:
            return None
        tensor = users[0].output[0]
    return tensor if tensor in present else None


def _backward(g: _Graph, tensor: str, present: set[str]) -> str | None:
    """``tensor`` or the nearest tensor before pass-through ops that ``present`` holds ("" for a graph input)."""
    for _ in range(4):
        if tensor in g.inputs:
            return ""
        if tensor in present:
            return tensor
        made = g.producer.get(tensor)
        if made is None or made.op_type not in PASS_THROUGH:
            return None
        tensor = made.input[0]
    return None


def _with_outputs(model, names: Sequence[str]) -> bytes:  # noqa: ANN001 - onnx.ModelProto
    import onnx

    known = {v.name: v for v in [*model.graph.value_info, *model.graph.output]}
    existing = {o.name for o in model.graph.output}
    for name in names:
        if name in existing:
            continue
        elem = known[name].type.tensor_type.elem_type if name in known else onnx.TensorProto.FLOAT
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))
    return model.SerializeToString()


def _session(model_bytes: bytes):  # noqa: ANN202 - onnxruntime.InferenceSession
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # no QDQ fusion (extended)
    options.log_severity_level = 4
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def _noise_powers(
    ref_model: bytes, cand_model: bytes, feeds: list[dict[str, np.ndarray]], pairs: Sequence[tuple[str, str]],
    *, time_limit_s: float,
) -> tuple[dict[str, float], int]:
    """Relative noise power ``Σ(cand−ref)² / Σref²`` of each ``(fp32 tensor, candidate tensor)`` pair, summed
    feed by feed (nothing but the sums is kept). Stops early past ``time_limit_s`` once two feeds ran."""
    ref, cand = _session(ref_model), _session(cand_model)
    ref_names, cand_names = [a for a, _ in pairs], [b for _, b in pairs]
    signal, noise = np.zeros(len(pairs)), np.zeros(len(pairs))
    began, used = time.monotonic(), 0
    for n, feed in enumerate(feeds):
        if n >= 2 and time.monotonic() - began > time_limit_s:
            break
        for i, (r, c) in enumerate(zip(ref.run(ref_names, feed), cand.run(cand_names, feed), strict=True)):
            r64 = np.asarray(r, dtype=np.float64)
            signal[i] += float(np.vdot(r64, r64))
            d = r64 - np.asarray(c, dtype=np.float64)
            noise[i] += float(np.vdot(d, d))
        used += len(next(iter(feed.values())))
    return {a: noise[i] / max(signal[i], _FLOOR) for i, (a, _) in enumerate(pairs)}, used


def _comparable(g: _Graph, model) -> dict[str, str]:  # noqa: ANN001 - onnx.ModelProto
    """For tensors whose candidate value differs in meaning from fp32's, the candidate tensor to compare instead.

    ORT drops a Relu/Clip in front of a QuantizeLinear (the quantized range clips instead), so the value the
    next node reads is ``DequantizeLinear(QuantizeLinear(t))``; where a target put a float copy of that
    activation back (a node kept in fp32), its output is the comparable value."""
    producer = {out: n for n in model.graph.node for out in n.output}
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    alias: dict[str, str] = {}
    for n in model.graph.node:
        q = producer.get(n.input[0]) if n.op_type == "DequantizeLinear" else None
        if q is not None and q.op_type == "QuantizeLinear":
            alias.setdefault(q.input[0], n.output[0])
    for tensor, made in g.producer.items():
        if tensor in alias or made.op_type not in ("Relu", "Clip"):
            continue
        now = producer.get(tensor)
        if now is not None and now.op_type != made.op_type:
            copy = next((c for c in consumers.get(tensor, []) if c.op_type == made.op_type), None)
            if copy is not None:
                alias[tensor] = copy.output[0]
    return alias


def _noise(ref: np.ndarray, cand: np.ndarray) -> float:
    signal = float(np.sum(ref**2))
    return float(np.sum((ref - cand) ** 2)) / max(signal, _FLOOR)


def _db(relative_noise: float) -> float:
    return round(-10.0 * math.log10(max(relative_noise, _FLOOR)), 2) + 0.0


def activation_sensitivity(
    graph_path: Path, candidate_path: Path, dataset: Dataset, *, batch: int, label: str, samples: int = SAMPLES,
    keep_fp32: Sequence[str] = (), time_limit_s: float = TIME_LIMIT_S,
) -> SensitivityReport:
    """Rank the weighted nodes of ``graph_path`` by the noise each adds in the ONNX model ``candidate_path``,
    on up to ``samples`` evaluation samples (fewer, but at least two batches, past ``time_limit_s``)."""
    import onnx

    for p in (graph_path, candidate_path):
        if Path(p).stat().st_size >= MAX_BYTES:
            return SensitivityReport(label, "skipped", 0, notes=(f"{Path(p).name} is over 2 GB: not analysed",))
    ref_model, cand_model = onnx.load(str(graph_path)), onnx.load(str(candidate_path))
    g = _index(ref_model)
    present = {o for n in cand_model.graph.node for o in n.output} | {i.name for i in cand_model.graph.input}
    pairs: list[tuple[str, str, str, str]] = []  # node, op, output tensor, input tensor ("" = graph input)
    notes: list[str] = []
    for n in g.nodes:
        if n.op_type not in WEIGHTED_OPS or not n.name:
            continue
        out, inp = _forward(g, n.output[0], present), _backward(g, n.input[0], present)
        if out is None or inp is None:
            notes.append(f"{n.name}: its tensors are not in the candidate model (fused away); not ranked")
            continue
        pairs.append((n.name, n.op_type, out, inp))
    if not pairs:
        return SensitivityReport(label, "skipped", 0, notes=(*notes, "no weighted node could be compared"))
    names = sorted({t for _, _, out, inp in pairs for t in (out, inp) if t})
    alias = _comparable(g, cand_model)
    cand_names = [alias.get(t, t) for t in names]
    feeds = dataset.head(max(samples, batch)).batches(batch)
    noise, used = _noise_powers(_with_outputs(ref_model, names), _with_outputs(cand_model, cand_names), feeds,
                                list(zip(names, cand_names, strict=True)), time_limit_s=time_limit_s)
    rows = []
    for name, op, out, inp in pairs:
        r_out = noise[out]
        r_in = noise[inp] if inp else 0.0
        rows.append((name, op, out, max(r_out - r_in, 0.0), r_out))
    rows.sort(key=lambda r: -r[3])
    nodes = tuple(
        NodeSensitivity(name, op, rank, _db(own), _db(acc), kept_fp32=name in keep_fp32, tensor=out)
        for rank, (name, op, out, own, acc) in enumerate(rows, 1)
    )
    return SensitivityReport(label, "activation-sqnr", used, nodes, tuple(notes))


def weight_prior(graph_path: Path) -> dict[str, float]:
    """Relative int8 (per-tensor, symmetric) rounding noise of each weighted node's weight: a cheap prior."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(graph_path))
    inits = {t.name: t for t in model.graph.initializer}
    prior: dict[str, float] = {}
    for n in model.graph.node:
        if n.op_type not in WEIGHTED_OPS or not n.name:
            continue
        weight = next((inits[i] for i in n.input[1:2] if i in inits), None)
        if weight is None:
            prior[n.name] = 0.0
            continue
        w = numpy_helper.to_array(weight).astype(np.float64)
        scale = float(np.max(np.abs(w))) / 127.0 if w.size else 0.0
        prior[n.name] = _noise(w, np.round(w / scale) * scale) if scale > 0 else 0.0
    return prior


def recompile_sensitivity(
    prior: dict[str, float],
    op_types: dict[str, str],
    measure: Callable[[tuple[str, ...]], float | None],
    *,
    base_drop: float,
    label: str,
    top_k: int = 4,
) -> SensitivityReport:
    """Re-measure the drop with each of the ``top_k`` nodes by ``prior`` alone in fp32 (``measure`` returns the
    drop, or None when that build fails); rank by the drop recovered. Nodes past ``top_k`` are ranked by the
    prior after them."""
    order = sorted(prior, key=lambda n: -prior[n])
    gains: dict[str, float | None] = {}
    for name in order[:top_k]:
        drop = measure((name,))
        gains[name] = None if drop is None else base_drop - drop
    tried = sorted(gains, key=lambda n: -(gains[n] if gains[n] is not None else -math.inf))
    ranked = tried + order[top_k:]
    nodes = tuple(
        NodeSensitivity(name, op_types.get(name, ""), rank, _db(prior[name]) if prior[name] else None,
                        drop_gain=gains.get(name))
        for rank, name in enumerate(ranked, 1)
    )
    notes = (f"re-compiled the {min(top_k, len(order))} nodes with the largest weight rounding error, one at a "
             "time in fp32; the others are ranked by that prior",)
    return SensitivityReport(label, "leave-one-fp32", 0, nodes, notes)
