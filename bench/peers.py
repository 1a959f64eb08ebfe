"""Runners for the runtimes the CPU benchmark compares edgeopt with, each built with its defaults.

Every builder returns a :class:`Built`: a ``Runner`` (``run(feeds) -> list[np.ndarray]``, ``close()``)
plus what was measured while building it (size on disk, notes, the peer's warnings). No timing
happens here: the benchmark times every runner with ``edgeopt.measure.harness``. Peer libraries are
imported inside the builders. Calls that may write temporary files run inside a scratch working
directory, and whatever they leave there is reported as ``litter``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

Feeds = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Built:
    """A runner ready to time, and the facts gathered while building it."""

    runner: Any
    size_bytes: int
    notes: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    """JSON-friendly facts specific to the peer (quantized node counts, chosen plan, config...)."""


@contextlib.contextmanager
def scratch_cwd(litter: list[str]) -> Iterator[Path]:
    """Run the body with a fresh temporary directory as the working directory; names left there go to ``litter``."""
    before = Path.cwd()
    with tempfile.TemporaryDirectory(prefix="edgeopt-bench-cwd-") as tmp:
        os.chdir(tmp)
        try:
            yield Path(tmp)
        finally:
            os.chdir(before)
            litter.extend(sorted(os.listdir(tmp)))


@contextlib.contextmanager
def captured_warnings(sink: list[str]) -> Iterator[None]:
    """Collect ``warnings.warn`` and ``logging`` WARNING+ messages emitted by the body into ``sink``."""

    class _Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            sink.append(record.getMessage())

    handler = _Handler(level=logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        sink.extend(str(w.message) for w in caught)
    finally:
        root.removeHandler(handler)


def _dedupe(messages: Sequence[str], *, limit: int = 12) -> tuple[str, ...]:
    """Distinct messages (quoted names masked, so one message per pattern), in order, at most ``limit``."""
    seen: dict[str, int] = {}
    for m in messages:
        key = re.sub(r"'[^']*'", "'…'", m.strip().splitlines()[0])[:300] if m.strip() else ""
        if key:
            seen[key] = seen.get(key, 0) + 1
    items = [f"{k} (x{n})" if n > 1 else k for k, n in seen.items()]
    more = (f"... and {len(items) - limit} more distinct messages",) if len(items) > limit else ()
    return tuple(items[:limit]) + more


# --- ONNX Runtime ---------------------------------------------------------------------------------


class OrtRunner:
    """An ``onnxruntime.InferenceSession`` with default options except ``intra_op_num_threads``."""

    def __init__(self, model_path: Path, *, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()  # defaults: ORT_ENABLE_ALL, sequential execution
        options.intra_op_num_threads = threads
        options.log_severity_level = 3  # quiet load-time warnings; no effect on execution
        self._session: Any = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        return self._session.run(None, dict(feeds))

    def close(self) -> None:
        self._session = None


def ort_fp32(model_path: Path, *, threads: int) -> Built:
    """ONNX Runtime fp32 on the original file."""
    import onnxruntime as ort

    return Built(
        OrtRunner(model_path, threads=threads),
        Path(model_path).stat().st_size,
        details={"onnxruntime": ort.__version__, "intra_op_num_threads": threads,
                 "graph_optimization": "ORT_ENABLE_ALL"},
    )


class _Reader:
    """``CalibrationDataReader`` over a list of feeds (ORT only needs ``get_next``)."""

    def __init__(self, feeds: Sequence[Feeds]) -> None:
        self._it = iter([dict(f) for f in feeds])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def quantized_node_counts(model_path: Path) -> dict[str, Any]:
    """What a QDQ model holds: Q/DQ counts, and the compute nodes fed by a DequantizeLinear, by op type.

    ``weights_constant`` counts weighted nodes (Conv/MatMul/Gemm) whose weight input is a
    DequantizeLinear of an initializer, i.e. weights stored as int8; a weight quantized at run
    time (Q→DQ on a computed tensor) does not count.
    """
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    ops = Counter(n.op_type for n in model.graph.node)
    fed: Counter[str] = Counter()
    weights_constant = 0
    weighted = ("Conv", "MatMul", "Gemm", "ConvTranspose")
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if any(producer.get(i) is not None and producer[i].op_type == "DequantizeLinear" for i in node.input):
            fed[node.op_type] += 1
        if node.op_type in weighted and len(node.input) > 1:
            dq = producer.get(node.input[1])
            if dq is not None and dq.op_type == "DequantizeLinear" and dq.input[0] in inits:
                weights_constant += 1
    return {
        "opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None),
        "quantize_linear": ops.get("QuantizeLinear", 0),
        "dequantize_linear": ops.get("DequantizeLinear", 0),
        "nodes_fed_by_dq": dict(sorted(fed.items())),
        "weighted_nodes": sum(ops.get(o, 0) for o in weighted),
        "weighted_nodes_int8_weights": weights_constant,
    }


def _dangling_inputs(model_path: Path) -> list[str]:
    """Graph inputs with no initializer besides the first (the data inputs a caller must feed)."""
    import onnx

    model = onnx.load(str(model_path), load_external_data=False)
    inits = {i.name for i in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in inits]


def ort_quantize_static(model_path: Path, calib: Sequence[Feeds], workdir: Path, *, threads: int) -> Built:
    """ORT ``quantize_static`` with every default (QDQ, QUInt8 activations, QInt8 weights, MinMax, per-tensor).

    ``quant_pre_process`` runs first. If it raises, or ``quantize_static`` fails on its output, the
    error is recorded and the raw model is quantized instead, as a user would do next.
    """
    from onnxruntime.quantization import quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    workdir.mkdir(parents=True, exist_ok=True)
    messages: list[str] = []
    litter: list[str] = []
    pre_path, quant_path = workdir / "pre.onnx", workdir / "quantized.onnx"
    details: dict[str, Any] = {"defaults": "QDQ, QUInt8 activations, QInt8 weights, MinMax, per-tensor"}
    notes: list[str] = []
    source = None
    with captured_warnings(messages), scratch_cwd(litter):
        try:
            quant_pre_process(str(model_path), str(pre_path))
            details["pre_process"] = "ok"
            extra = _dangling_inputs(pre_path)[len(_dangling_inputs(model_path)):]
            if extra:
                details["pre_process_new_required_inputs"] = len(extra)
                notes.append(f"quant_pre_process output needs {len(extra)} new graph inputs with no initializer "
                             f"(e.g. {extra[0]!r})")
        except Exception as exc:  # the peer's own failure is a result to report
            details["pre_process"] = f"failed: {type(exc).__name__}: {exc}"
        if details["pre_process"] == "ok":
            try:
                quantize_static(str(pre_path), str(quant_path), _Reader(calib))
                source = "pre-processed model"
            except Exception as exc:
                details["quantize_pre_processed"] = f"failed: {type(exc).__name__}: {exc}"
                notes.append(f"quantize_static on the pre-processed model {details['quantize_pre_processed'][:240]}…")
        if source is None:
            quantize_static(str(model_path), str(quant_path), _Reader(calib))
            source = "raw model"
    details["quantized_from"] = source
    details["quantized"] = quantized_node_counts(quant_path)
    details["litter_in_cwd"] = litter
    notes.insert(0, f"quant_pre_process {details['pre_process']}")
    if litter:
        notes.append(f"left in the working directory: {', '.join(litter)}")
    return Built(OrtRunner(quant_path, threads=threads), quant_path.stat().st_size,
                 notes=(*notes, *_dedupe(messages)), details=details)


def ort_on_artifact(artifact: Path, model_file: str, *, threads: int) -> Built:
    """An edgeopt artifact's model file in the same plain ORT session as ``ort_fp32`` (no Predictor in between)."""
    path = Path(artifact) / model_file
    return Built(OrtRunner(path, threads=threads), path.stat().st_size,
                 notes=("diagnostic: separates the artifact's model from the SDK Predictor's per-call overhead",))


# --- OpenVINO / NNCF -------------------------------------------------------------------------------


class OpenVinoRunner:
    """A compiled OpenVINO model run through one infer request (outputs copied, as ``infer`` does by default)."""

    def __init__(self, compiled: Any) -> None:
        self._compiled = compiled
        self._request = compiled.create_infer_request()

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        return [np.asarray(v) for v in self._request.infer(dict(feeds)).to_tuple()]

    def close(self) -> None:
        self._request = None
        self._compiled = None


def _ov_size(model: Any, workdir: Path, *, name: str) -> tuple[int, int]:
    """Bytes of .xml+.bin saved as compiled (no fp16 compression), and with ``save_model``'s default (fp16)."""
    import openvino as ov

    sizes = []
    for fp16 in (False, True):
        xml = workdir / f"{name}{'-fp16' if fp16 else ''}.xml"
        ov.save_model(model, str(xml), compress_to_fp16=fp16)
        sizes.append(xml.stat().st_size + xml.with_suffix(".bin").stat().st_size)
    return sizes[0], sizes[1]


def _ov_compile(model: Any, threads: int) -> tuple[Any, dict[str, str]]:
    import openvino as ov

    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads})
    config = {}
    for key in ("INFERENCE_NUM_THREADS", "PERFORMANCE_HINT", "INFERENCE_PRECISION_HINT", "NUM_STREAMS"):
        with contextlib.suppress(Exception):
            config[key] = str(compiled.get_property(key))
    return compiled, config


def openvino_fp32(model_path: Path, workdir: Path, *, threads: int) -> Built:
    """OpenVINO CPU plugin on the ONNX file, default config except ``INFERENCE_NUM_THREADS``."""
    import openvino as ov

    workdir.mkdir(parents=True, exist_ok=True)
    model = ov.Core().read_model(str(model_path))
    size, size_fp16 = _ov_size(model, workdir, name="fp32")
    compiled, config = _ov_compile(model, threads)
    return Built(
        OpenVinoRunner(compiled), size,
        notes=(f"save_model's default compress_to_fp16=True would store {size_fp16} bytes",),
        details={"openvino": ov.__version__, "config": config, "size_fp16_default_bytes": size_fp16},
    )


def nncf_int8(model_path: Path, calib: Sequence[Feeds], workdir: Path, *, threads: int) -> Built:
    """``nncf.quantize(model, nncf.Dataset(calib))`` with its defaults (performance preset) on the OpenVINO model."""
    import nncf
    import openvino as ov

    workdir.mkdir(parents=True, exist_ok=True)
    nncf.set_log_level(logging.ERROR)
    messages: list[str] = []
    litter: list[str] = []
    model = ov.Core().read_model(str(model_path))
    with captured_warnings(messages), scratch_cwd(litter):
        quantized = nncf.quantize(model, nncf.Dataset([dict(f) for f in calib]))
    ops = Counter(op.get_type_name() for op in quantized.get_ops())
    size, size_fp16 = _ov_size(quantized, workdir, name="int8")
    compiled, config = _ov_compile(quantized, threads)
    details = {
        "nncf": nncf.__version__, "config": config, "fake_quantize_nodes": ops.get("FakeQuantize", 0),
        "calibration_samples": len(calib), "size_fp16_default_bytes": size_fp16, "litter_in_cwd": litter,
    }
    notes = [f"{ops.get('FakeQuantize', 0)} FakeQuantize nodes inserted"]
    if litter:
        notes.append(f"left in the working directory: {', '.join(litter)}")
    return Built(OpenVinoRunner(compiled), size, notes=(*notes, *_dedupe(messages)), details=details)


# --- edgeopt ---------------------------------------------------------------------------------------


class PredictorRunner:
    """An ``edgeopt.load`` Predictor behind the Runner protocol (outputs in the artifact's order)."""

    def __init__(self, predictor: Any) -> None:
        self._predictor = predictor
        self._names = list(predictor.output_names)

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        out = self._predictor(feeds)
        return [out[n] for n in self._names]

    def close(self) -> None:
        self._predictor.close()


def edgeopt_deploy(
    model_path: Path,
    out: Path,
    *,
    precision: str,
    calib: Mapping[str, np.ndarray],
    evaluation: Mapping[str, np.ndarray],
    threads: int,
    budget_s: float | None,
    timing_s: float,
) -> Built:
    """``edgeopt.deploy(target="cpu")`` into ``out``, then ``edgeopt.load`` the artifact.

    ``budget_s`` limits edgeopt's candidate search, ``timing_s`` is its per-candidate timing budget;
    the search cache is off so every deploy does (and is timed doing) the whole search.

    Calls the functions through ``edgeopt.api``: once ``edgeopt.api`` has imported the submodule
    ``edgeopt.deploy``, the package attribute ``edgeopt.deploy`` is that module, not the function.
    """
    from edgeopt import api as edgeopt

    messages: list[str] = []
    litter: list[str] = []
    with captured_warnings(messages), scratch_cwd(litter):
        dep = edgeopt.deploy(
            str(model_path), target="cpu", precision=precision, calib=dict(calib), eval=dict(evaluation),
            out=out, threads=threads, budget_s=budget_s, timing_s=timing_s, cache=False,
        )
    manifest = dep.manifest
    plan = manifest.get("plan", {})
    candidates = [
        {k: c.get(k) for k in ("label", "precision", "status", "reason", "latency_p50_s", "candidate", "drop")}
        for c in manifest.get("candidates", [])
    ]
    details = {
        "chosen": plan.get("label"), "precision": plan.get("precision"), "threads": plan.get("threads"),
        "plan_notes": plan.get("notes", []), "candidates": candidates, "metrics": manifest.get("metrics", {}),
        "litter_in_cwd": litter, "path": str(dep.path), "model_file": manifest.get("model_file"),
    }
    notes = [f"chose {plan.get('label')}", *_dedupe([*dep.warnings, *messages])]
    if litter:
        notes.append(f"left in the working directory: {', '.join(litter)}")
    size = int(manifest.get("profile", {}).get("size_bytes", 0))
    return Built(PredictorRunner(edgeopt.load(dep.path)), size, notes=tuple(notes), details=details)
