"""Before/after figures for every compression stage: params, FLOPs, size on disk, metric, latency.

Each stage is exported to ONNX and measured as it would ship: the metric on the evaluation data with
ONNX Runtime (not torch), latency of all stages with the core harness, interleaved in one run.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnx

from edgeopt.evaluate.judge import run_outputs
from edgeopt.evaluate.reference import ReferenceRunner
from edgeopt.evaluate.task_metrics import accuracy, mse
from edgeopt.graph.inspect import inspect_model
from edgeopt.measure.harness import measure_interleaved
from edgeopt.types import Dataset

if TYPE_CHECKING:
    import torch

LATENCY_METHOD = "onnxruntime-cpu, core harness, all stages interleaved"


@dataclass(frozen=True)
class Stage:
    """One model along the compression: its ONNX file and what was measured on it."""

    name: str
    path: Path
    params: int
    nonzero_params: int
    flops: int
    size_bytes: int
    metric: float
    metric_name: str
    latency: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "params": self.params, "nonzero_params": self.nonzero_params, "flops": self.flops,
            "size_bytes": self.size_bytes, "metric": self.metric, "metric_name": self.metric_name,
            "latency": dict(self.latency), "notes": list(self.notes),
        }


def export_single_file(module: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...], dst: Path) -> list[str]:
    """Export ``module`` as one self-contained ``dst`` file; return notes.

    Stages go through the TorchScript exporter first: it takes ~0.1 s where the dynamo exporter takes seconds
    per call, every stage of a run uses the same one (so the comparison is fair), and it writes identical bytes
    for identical weights. When it fails, edgeopt's importer export (dynamo, then TorchScript) is used."""
    from edgeopt.importers.torch import TorchSource, export_onnx

    scratch = dst.parent / f".{dst.stem}-export"
    scratch.mkdir(parents=True, exist_ok=True)
    try:
        notes = _torchscript_export(module, example_inputs, scratch / "model.onnx")
        if notes is None:
            notes = export_onnx(TorchSource(module=module, example_inputs=example_inputs), scratch / "model.onnx")
        model = onnx.load(str(scratch / "model.onnx"))
        for node in model.graph.node:  # the exporter's per-node stack traces: bytes that are no model
            del node.metadata_props[:]
            node.doc_string = ""
        onnx.save(model, str(dst))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return notes


def _torchscript_export(module: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...], path: Path,
                        ) -> list[str] | None:
    """``torch.onnx.export(dynamo=False)`` with the importer's input/output names; None when it fails."""
    import torch

    from edgeopt.importers.torch import EXPORT_OPSET, _forward_params, _output_names

    names = ["input"] if len(example_inputs) == 1 else _forward_params(module)[: len(example_inputs)]
    if len(names) != len(example_inputs):
        names = [f"input_{i}" for i in range(len(example_inputs))]
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outputs = _output_names(module, example_inputs)
            torch.onnx.export(module, example_inputs, str(path), dynamo=False, input_names=names,
                              output_names=outputs, opset_version=EXPORT_OPSET)
    except Exception:  # noqa: BLE001 - any failure means: use the importer's exporter chain instead
        return None
    finally:
        module.train(was_training)
    return [] if path.is_file() else None


def onnx_metric(path: Path, evaluation: Dataset, *, batch: int) -> tuple[float, str]:
    """Accuracy (percent) for integer labels, MSE for float labels, with ONNX Runtime CPU."""
    runner = ReferenceRunner(path)
    try:
        outputs = run_outputs(runner, evaluation, batch=batch)
    finally:
        runner.close()
    labels = np.asarray(evaluation.labels)[: len(outputs[0])]
    if np.issubdtype(labels.dtype, np.floating):
        return mse(outputs, labels), "mse"
    return accuracy(outputs, labels), "accuracy"


def measure_stage(
    name: str,
    path: Path,
    module_counts: tuple[int, int],
    evaluation: Dataset,
    *,
    batch: int,
    notes: Sequence[str] = (),
) -> Stage:
    """Everything but latency for the stage stored at ``path`` (latency comes from ``time_stages``)."""
    summary = inspect_model(onnx.load(str(path)))
    metric, metric_name = onnx_metric(path, evaluation, batch=batch)
    return Stage(
        name=name, path=path, params=module_counts[0], nonzero_params=module_counts[1], flops=summary.flops,
        size_bytes=path.stat().st_size, metric=metric, metric_name=metric_name, notes=tuple(notes),
    )


def time_stages(stages: Sequence[Stage], evaluation: Dataset, *, batch: int, budget_s: float = 3.0,
                threads: int | None = None) -> list[Stage]:
    """Latency of every stage, measured interleaved with ``edgeopt.measure.harness.measure_interleaved``."""
    feeds = evaluation.batches(batch)[:8]
    feeds = [{k: v for k, v in f.items()} for f in feeds]
    runners = {s.name: _session(s.path, threads) for s in stages}
    try:
        stats = measure_interleaved(runners, feeds, warmup=10, budget_s=budget_s, min_rounds=20, batch=batch)
    finally:
        for r in runners.values():
            r.close()
    timed = []
    for s in stages:
        st = stats[s.name]
        latency = {"batch": batch, "p50_s": st.p50, "min_s": st.min, "p90_s": st.p90, "runs": st.runs,
                   "method": LATENCY_METHOD + (f", {threads} thread(s)" if threads else "")}
        timed.append(replace(s, latency=latency))
    return timed


class _Session:
    """An ONNX Runtime CPU session as the CPU target loads it: weight decodes (DequantizeLinear without
    QuantizeLinear) folded at load, QDQ graphs fused."""

    def __init__(self, path: Path, threads: int | None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 4
        options.intra_op_num_threads = threads or 0
        ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
        if "DequantizeLinear" in ops and "QuantizeLinear" not in ops:
            options.add_session_config_entry("session.disable_quant_qdq", "1")
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        return self._session.run(None, dict(feeds))

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]


def _session(path: Path, threads: int | None) -> _Session:
    return _Session(path, threads)


def deltas(stages: Sequence[Stage]) -> dict[str, Any]:
    """Final stage against the original: ratios and the metric drop."""
    first, last = stages[0], stages[-1]

    def ratio(a: float, b: float) -> float | None:
        return float(a / b) if b else None

    speed = ratio(first.latency.get("p50_s", 0.0), last.latency.get("p50_s", 0.0)) if last.latency else None
    return {
        "params_ratio": ratio(last.params, first.params),
        "nonzero_params_ratio": ratio(last.nonzero_params, first.nonzero_params),
        "flops_ratio": ratio(last.flops, first.flops),
        "size_ratio": ratio(last.size_bytes, first.size_bytes),
        "speedup_p50": speed,
        "metric_drop": first.metric - last.metric if first.metric_name == "accuracy" else last.metric - first.metric,
    }
