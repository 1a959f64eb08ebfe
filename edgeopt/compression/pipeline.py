"""Run the requested compression steps on a torch module, fine-tune after each, measure every stage.

Order: prune → (cluster | binarize) → QAT. Each step is followed by ``train_loop.fit`` (distilling from the
original model when asked); each stage is exported to ONNX and measured (``edgeopt.compression.measure``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeopt.compression.binarize import apply_binarization, finalize_binarization
from edgeopt.compression.cluster import Encoding, apply_clustering, finalize_clustering
from edgeopt.compression.data import Split
from edgeopt.compression.measure import Stage, deltas, export_single_file, measure_stage, onnx_metric, time_stages
from edgeopt.compression.onnx_encode import encode_weights
from edgeopt.compression.prune import apply_pruning, count_params, finalize
from edgeopt.compression.qat import fold_weight_quantize, prepare_qat, set_exporting
from edgeopt.compression.spec import CompressionSpec
from edgeopt.compression.train_loop import fit
from edgeopt.types import Dataset

if TYPE_CHECKING:
    import torch

Report = Callable[[str], None]


@dataclass(frozen=True)
class CompressionResult:
    """The compressed module, its ONNX file (compact storage, QDQ after QAT) and every stage's figures."""

    module: Any
    """The compressed ``torch.nn.Module`` (after QAT: still wrapped in fake-quant layers)."""
    onnx_path: Path
    """The final stage's ONNX file: what a deploy imports."""
    stages: tuple[Stage, ...]
    spec: CompressionSpec
    training: tuple[dict, ...] = ()
    notes: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (``manifest["compression"]``)."""
        return {
            "spec": self.spec.describe(),
            "stages": [s.to_dict() for s in self.stages],
            "summary": deltas(self.stages),
            "training": list(self.training),
            "notes": list(self.notes),
            **self.extra,
        }


@dataclass
class _Run:
    """Mutable state of one compression run (internal)."""

    spec: CompressionSpec
    train: Split
    evaluation: Split
    example: tuple
    workdir: Path
    report: Report
    progress: bool
    batch: int
    stages: list[Stage] = field(default_factory=list)
    training: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def eval_data(self) -> Dataset:
        return self.evaluation.dataset()

    def stage(self, name: str, module: torch.nn.Module, *, encodings: list[Encoding] | None = None,
              notes: list[str] | None = None, qdq: bool = False) -> Stage:
        index = len(self.stages)
        raw = self.workdir / f"{index}-{name}.raw.onnx"
        path = self.workdir / f"{index}-{name}.onnx"
        extra = export_single_file(module, self.example, raw)
        if encodings:
            extra += encode_weights(raw, path, encodings)
        elif qdq:
            folded = fold_weight_quantize(str(raw), str(path))
            extra.append(f"qat: {folded} weight QuantizeLinear node(s) folded into int8 initializers")
        else:
            raw.replace(path)
        raw.unlink(missing_ok=True)
        stage = measure_stage(name, path, count_params(module), self.eval_data(), batch=self.batch,
                              notes=[*(notes or []), *extra])
        self.report(f"{name}: {stage.metric_name} {stage.metric:.2f}, {stage.params} params, {stage.size_bytes} bytes")
        self.stages.append(stage)
        return stage

    def tune(self, model: torch.nn.Module, teacher: torch.nn.Module | None, title: str) -> None:
        result = fit(model, self.train, self.evaluation, config=self.spec.training, teacher=teacher,
                     report=self.report, progress=self.progress, title=title)
        self.training.append({"step": title, "distilled": teacher is not None, **result.to_dict()})


def _ptq_metric(run: _Run, fp32: Path) -> float:
    """Metric of post-training static int8 (ORT QDQ, per-channel, 7-bit weights) of ``fp32``."""
    from edgeopt.passes.ort_quantize import quantize_static_int8
    from edgeopt.passes.ort_quantize_options import StaticInt8Options

    dst = run.workdir / "ptq-check" / "model.onnx"
    calib = Dataset({n: t[:256].numpy() for n, t in zip(run.train.names, run.train.inputs, strict=True)})
    quantize_static_int8(fp32, dst, calib, StaticInt8Options(per_channel=True, reduce_range=True))
    return onnx_metric(dst, run.eval_data(), batch=run.batch)[0]


def _qat(run: _Run, student: torch.nn.Module, max_drop: float) -> torch.nn.Module:
    spec = run.spec
    fp32_stage = run.stages[-1]
    ptq = _ptq_metric(run, fp32_stage.path)
    drop = fp32_stage.metric - ptq
    line = (f"post-training int8 (ORT static, per-channel): {fp32_stage.metric_name} {ptq:.2f} vs "
            f"{fp32_stage.metric:.2f} fp32, drop {drop:.2f} (budget {max_drop:g})")
    run.report(line)
    run.notes.append(line)
    if drop <= max_drop and not spec.qat_always:
        run.notes.append("qat: skipped, post-training int8 meets the budget (the target quantizes it itself)")
        return student
    teacher = copy.deepcopy(student).eval()
    notes = prepare_qat(student, tuple(t[:512] for t in run.train.inputs))
    run.tune(student, teacher, "qat")
    set_exporting(student, True)
    run.stage("qat-int8", student, notes=[*notes, f"post-training int8 {ptq:.2f}: {line}"], qdq=True)
    set_exporting(student, False)
    return student


def compress_module(
    module: torch.nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    spec: CompressionSpec,
    train: Split,
    evaluation: Split,
    workdir: Path,
    *,
    max_drop: float = 1.0,
    report: Report | None = None,
    progress: bool = False,
    latency_budget_s: float = 3.0,
    threads: int | None = None,
) -> CompressionResult:
    """Compress a copy of ``module`` per ``spec`` (``module`` itself is not changed); files go under ``workdir``.

    Latency is measured at the batch of ``example_inputs``, every stage interleaved, with ``threads``
    intra-op threads (None: ONNX Runtime's default)."""
    workdir.mkdir(parents=True, exist_ok=True)
    batch = int(example_inputs[0].shape[0]) if example_inputs[0].dim() else 1
    run = _Run(spec, train, evaluation, example_inputs, workdir, report or (lambda _: None), progress, batch)
    original = copy.deepcopy(module).eval()
    student = copy.deepcopy(module).eval()
    teacher = original if spec.distill else None
    run.stage("original", original)
    if spec.prune is not None:
        student, pruned = apply_pruning(student, spec.prune, example_inputs)
        run.notes.extend(pruned.notes)
        run.tune(student, teacher, f"prune {spec.prune.label}")
        finalize(student)
        run.stage(f"pruned {spec.prune.label}", student, notes=list(pruned.notes))
    elif spec.distill and not (spec.cluster or spec.binarize or spec.qat):
        run.notes.append("distill: no compression step requested, nothing to distill into")
    if spec.cluster:
        notes = apply_clustering(student, spec.cluster)
        run.tune(student, teacher, f"cluster {spec.cluster}")
        run.stage(f"clustered {spec.cluster}", student, encodings=finalize_clustering(student), notes=notes)
    elif spec.binarize:
        notes = apply_binarization(student)
        run.tune(student, teacher, "binarize")
        run.stage("binarized", student, encodings=finalize_binarization(student), notes=notes)
    if spec.qat:
        student = _qat(run, student, max_drop)
    stages = time_stages(run.stages, run.eval_data(), batch=batch, budget_s=latency_budget_s, threads=threads)
    return CompressionResult(student, stages[-1].path, tuple(stages), spec, tuple(run.training), tuple(run.notes))
