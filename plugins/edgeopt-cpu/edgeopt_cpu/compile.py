"""Build a plan's model for the ONNX Runtime CPU provider: run its passes in order into ``workdir``.

Passes: ``ort-optimize`` (offline graph optimization), ``quantize-static`` (QDQ int8, calibrated),
``quantize-dynamic`` (int8 weights). Quantization works on the normalized graph and its QDQ output
is kept as is, so ``model.onnx`` loads in any ONNX Runtime; the runner's session applies the
host-specific fusions at load time.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgeopt.errors import CompileError
from edgeopt.passes.ort_optimize import LEVELS, model_files, optimize_offline
from edgeopt.passes.ort_quantize import (
    DynamicInt8Options,
    QuantizeReport,
    StaticInt8Options,
    quantize_dynamic_int8,
    quantize_static_int8,
)
from edgeopt.types import Compiled, Dataset, Graph, PassSpec, Plan

MODEL_FILE = "model.onnx"
PASSES = ("ort-optimize", "quantize-static", "quantize-dynamic")


def _summary(report: QuantizeReport) -> str:
    by_op = ", ".join(f"{op} {n}" for op, n in report.quantized_by_op.items())
    return (
        f"{report.mode} int8: {report.quantized_nodes}/{report.quantizable_nodes} weighted nodes quantized "
        f"({by_op}); weights {report.weight_bytes_before / 1e6:.2f} MB -> {report.weight_bytes_after / 1e6:.2f} MB"
    )


def _apply(spec: PassSpec, src: Path, dst: Path, calibration: Dataset) -> tuple[PassSpec, tuple[str, ...]]:
    """Run one pass from ``src`` to ``dst``; return it with its final parameters, and notes."""
    params: dict[str, Any] = dict(spec.params)
    if spec.name == "ort-optimize":
        level = params.pop("level", "extended")
        if params or level not in LEVELS:
            raise CompileError(
                f"invalid ort-optimize parameters {dict(spec.params)}",
                hint=f"ort-optimize takes only level (one of {', '.join(LEVELS)})",
            )
        optimize_offline(src, dst, level=level)
        return PassSpec(spec.name, {"level": level}), ()
    if spec.name == "quantize-static":
        static = StaticInt8Options.from_params(params)
        report = quantize_static_int8(src, dst, calibration, static)
        final = static.to_params()
    elif spec.name == "quantize-dynamic":
        dynamic = DynamicInt8Options.from_params(params)
        report = quantize_dynamic_int8(src, dst, dynamic)
        final = dynamic.to_params()
    else:
        raise CompileError(f"target 'cpu' has no pass {spec.name!r}", hint=f"passes: {', '.join(PASSES)}")
    return PassSpec(spec.name, {**final, **report.as_params()}), (_summary(report), *report.notes)


def _copy_model(src: Path, directory: Path) -> None:
    """Copy ``src`` as ``MODEL_FILE`` into ``directory``, with its external-data files (same names)."""
    names = model_files(src)
    shutil.copyfile(src, directory / MODEL_FILE)
    for name in names[1:]:
        shutil.copyfile(src.parent / name, directory / name)


def _check_loads(path: Path) -> None:
    """Open the result in a plain ONNX Runtime CPU session, as any consumer of the artifact would."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's own pybind exception types
        raise CompileError(f"the compiled model does not load in ONNX Runtime: {exc}") from exc


def compile_plan(graph: Graph, plan: Plan, calibration: Dataset, workdir: Path) -> Compiled:
    """Write ``workdir/model.onnx`` (plus external data for >2 GB models) for ``plan``; never touch ``graph``."""
    import onnxruntime as ort

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    applied: list[PassSpec] = []
    notes: list[str] = list(plan.notes)
    with tempfile.TemporaryDirectory(prefix=".edgeopt-cpu-", dir=workdir) as tmp:
        current = Path(graph.path)
        for index, spec in enumerate(plan.passes):
            out = Path(tmp) / f"step{index}" / MODEL_FILE
            done, pass_notes = _apply(spec, current, out, calibration)
            applied.append(done)
            notes.extend(pass_notes)
            current = out
        if current == Path(graph.path):
            _copy_model(current, workdir)
        else:
            for name in model_files(current):
                shutil.move(str(current.parent / name), str(workdir / name))
    final = workdir / MODEL_FILE
    _check_loads(final)
    return Compiled(
        directory=workdir,
        model_file=MODEL_FILE,
        files=model_files(final),
        plan=plan,
        runtime=f"onnxruntime {ort.__version__}",
        passes=tuple(applied),
        notes=tuple(notes),
    )
