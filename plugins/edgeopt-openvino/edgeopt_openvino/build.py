"""Build one OpenVINO IR (``model.xml`` + ``model.bin``): convert, optionally quantize with NNCF, save.

``build_ir`` is what the isolated worker runs (``compile.py`` sends it a ``BuildJob`` and gets a
``BuildResult`` back, both plain data). It reads only ``job.source`` and writes only ``job.out_dir``.

Before conversion, Reshape constants that spell out the graph's own batch size get ``0`` ("copy the
input's dimension") instead (``batch_agnostic_reshapes``): the same model at that batch, but one the
runner can ``reshape`` to other batch sizes (the core still checks every other batch against
per-sample runs). Graphs with external data are converted from their file unchanged.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from edgeopt.plugin import CompileError, batch_agnostic_reshapes

from edgeopt_openvino.options import NncfInt8Options
from edgeopt_openvino.telemetry import quiet_telemetry

MODEL_XML = "model.xml"
MODEL_BIN = "model.bin"
OV_WEIGHTED = ("Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData", "MatMul")
"""OpenVINO op types whose inputs NNCF quantizes (the ops int8 kernels speed up)."""
_NOT_NODES = ("Parameter", "Result", "Constant")
_MOVES_VALUES = ("Reshape", "Squeeze", "Unsqueeze", "Transpose", "MaxPool", "StridedSlice", "Split", "VariadicSplit",
                 "Concat", "Pad", "Gather", "DepthToSpace", "SpaceToDepth", "ShuffleChannels")


@dataclass(frozen=True)
class BuildJob:
    """Everything one build needs, as plain picklable data."""

    source: str
    """The normalized ONNX graph (read only)."""
    out_dir: str
    """Where ``model.xml``/``model.bin`` are written (nothing is written anywhere else)."""
    batch: int
    """The graph's own batch size (the leading dimension its Reshape constants may spell out)."""
    compress_to_fp16: bool = False
    int8: NncfInt8Options | None = None
    calibration: tuple[Mapping[str, np.ndarray], ...] = ()
    """Feeds of ``batch`` samples for NNCF's statistics (int8 only)."""


@dataclass(frozen=True)
class BuildResult:
    """What a build produced and did, for ``Compiled`` and the manifest."""

    files: tuple[str, ...]
    convert: Mapping[str, Any]
    """Final ``ov-convert`` parameters (``compress_to_fp16``, ``batch_agnostic_reshapes``)."""
    quantize: Mapping[str, Any] | None = None
    """Final ``nncf-quantize`` options plus what NNCF did (FakeQuantize count, quantized ops)."""
    notes: tuple[str, ...] = ()
    openvino: str = ""
    nncf: str = ""
    kept_fp32_ops: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """For each excluded ONNX node, the OpenVINO ops NNCF was told to leave in float."""


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:400] if text else type(exc).__name__


def conversion_reason(exc: BaseException) -> str:
    """What OpenVINO's ONNX frontend could not convert: its summary naming the ops when the exception has one
    (the first line is only where in OpenVINO's sources the check failed), else the first line."""
    lines = [line.strip() for line in str(exc).splitlines()]
    summary = next((line for line in lines if line.startswith("-- Conversion is failed for:")), None)
    if summary is None:
        return _first_line(exc)
    return "ops not converted: " + summary.removeprefix("-- Conversion is failed for:").strip()


# --- conversion -----------------------------------------------------------------------------------


def _batch_agnostic(source: Path, batch: int) -> tuple[bytes | None, int, str]:
    """The graph's bytes with batch-agnostic Reshape constants, how many changed, and a note.

    Returns ``(None, 0, note)`` when the file should be converted as it is.
    """
    import onnx

    header = onnx.load(str(source), load_external_data=False)
    if any(i.data_location == onnx.TensorProto.EXTERNAL for i in header.graph.initializer):
        return None, 0, "weights in external data: converted as is (Reshape constants keep their batch size)"
    try:
        changed = batch_agnostic_reshapes(header, batch)
    except Exception as exc:  # the rewrite is an optimisation for other batch sizes, never required
        return None, 0, f"Reshape constants kept as they are ({type(exc).__name__}: {_first_line(exc)})"
    return (header.SerializeToString(), changed, "") if changed else (None, 0, "")


def convert(source: Path, batch: int) -> tuple[Any, int, tuple[str, ...]]:
    """``openvino.convert_model`` of the graph; returns the model, rewritten Reshapes, notes."""
    import openvino as ov

    data, changed, note = _batch_agnostic(source, batch)
    try:
        model = ov.convert_model(io.BytesIO(data)) if data is not None else ov.convert_model(str(source))
    except Exception as exc:  # OpenVINO's frontends raise their own exception types
        raise CompileError(
            f"OpenVINO cannot convert {source.name}: {conversion_reason(exc)}",
            hint="the graph uses an op or pattern OpenVINO's ONNX frontend does not support; try target 'cpu'",
        ) from exc
    return model, changed, (note,) if note else ()


# --- names ----------------------------------------------------------------------------------------


def ov_ops_for(model: Any, onnx_path: Path, names: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The OpenVINO op names that implement each named ONNX node (for NNCF's ignored scope).

    OpenVINO names an op after the ONNX node it comes from (``conv1``), or ``<node>/<part>`` when a
    node becomes several ops (``conv1/WithoutBiases``), or after its output tensor when that tensor is
    a graph output. Raises ``CompileError`` for a name that is not a node of the graph, or whose node
    left no op in the OpenVINO model (folded into a constant).
    """
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    outputs = {n.name: set(n.output) for n in graph.node if n.name}
    ops = [op for op in model.get_ops() if op.get_type_name() not in _NOT_NODES]
    found: dict[str, tuple[str, ...]] = {}
    for name in names:
        if name not in outputs:
            raise CompileError(
                f"node {name!r} (to keep in float) is not a node of the graph",
                hint="name nodes of the normalized graph (`edgeopt inspect MODEL` lists them)",
            )
        matches = tuple(
            op.get_friendly_name()
            for op in ops
            if op.get_friendly_name() == name
            or op.get_friendly_name().startswith(f"{name}/")
            or any(set(o.get_names()) & outputs[name] for o in op.outputs())
        )
        if not matches:
            raise CompileError(
                f"node {name!r} (to keep in float) has no op in the OpenVINO model: OpenVINO folded it away",
                hint="keep a neighbouring weighted node in float instead",
            )
        found[name] = matches
    return found


# --- quantization ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _quiet_nncf(sink: list[str]) -> Iterator[None]:
    """NNCF's progress bars (Rich, to stdout) are dropped; its WARNING+ log lines and Python warnings
    other than deprecations go to ``sink``; NNCF's own handlers are restored afterwards."""

    class _Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            sink.append(record.getMessage())

    logger = logging.getLogger("nncf")
    saved_handlers, saved_level = list(logger.handlers), logger.level
    logger.handlers = [_Collect(level=logging.WARNING)]
    logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("always")
            yield
        sink.extend(str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning))
    finally:
        logger.handlers = saved_handlers
        logger.setLevel(saved_level)


def _nncf_arguments(options: NncfInt8Options, samples: int, ignored: Sequence[str]) -> dict[str, Any]:
    """Keyword arguments for ``nncf.quantize`` from typed options."""
    import nncf
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        OverflowFix,
        QuantizationParameters,
    )
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    ranges = {
        "minmax": RangeEstimatorParametersSet.MINMAX,
        "percentile": RangeEstimatorParametersSet.MEAN_QUANTILE,
        "entropy": RangeEstimatorParametersSet.HISTOGRAM,
    }
    advanced: dict[str, Any] = {"overflow_fix": OverflowFix(options.overflow_fix)}
    if options.calibration:
        advanced["activations_range_estimator_params"] = ranges[options.calibration]
    if options.granularity:
        advanced["weights_quantization_params"] = QuantizationParameters(
            per_channel=options.granularity == "per-channel"
        )
    arguments: dict[str, Any] = {
        "preset": nncf.QuantizationPreset(options.preset),
        "target_device": nncf.TargetDevice[options.target_device],
        "subset_size": min(options.subset_size or samples, samples),
        "fast_bias_correction": options.fast_bias_correction,
        "advanced_parameters": AdvancedQuantizationParameters(**advanced),
    }
    if options.model_type == "transformer":
        arguments["model_type"] = nncf.ModelType.TRANSFORMER
    if ignored:
        arguments["ignored_scope"] = nncf.IgnoredScope(names=list(ignored), validate=False)
    return arguments


def quantized_ops(model: Any) -> Counter[str]:
    """Weighted ops whose data input comes from a FakeQuantize, directly or through ops that only move
    values (Reshape, Transpose, MaxPool... where NNCF places the quantizer above them), by op type."""
    found: Counter[str] = Counter()
    for op in model.get_ops():
        if op.get_type_name() in OV_WEIGHTED:
            source = op.input_value(0).get_node()
            for _ in range(8):
                if source.get_type_name() not in _MOVES_VALUES:
                    break
                source = source.input_value(0).get_node()
            if source.get_type_name() == "FakeQuantize":
                found[op.get_type_name()] += 1
    return found


def quantize(
    model: Any, options: NncfInt8Options, feeds: Sequence[Mapping[str, np.ndarray]], onnx_path: Path
) -> tuple[Any, dict[str, Any], tuple[str, ...], dict[str, tuple[str, ...]]]:
    """``nncf.quantize`` with ``options``; returns the model, its report, notes and the kept ops."""
    if not feeds:
        raise CompileError("int8 needs calibration samples and none were given", hint="give --calib data")
    import nncf

    kept = ov_ops_for(model, onnx_path, options.nodes_to_exclude)
    ignored = [name for names in kept.values() for name in names]
    arguments = _nncf_arguments(options, len(feeds), ignored)
    messages: list[str] = []
    try:
        with _quiet_nncf(messages):
            quantized = nncf.quantize(model, nncf.Dataset([dict(f) for f in feeds]), **arguments)
    except Exception as exc:  # NNCF raises many types (nncf.ValidationError, RuntimeError from OpenVINO...)
        raise CompileError(
            f"NNCF could not quantize the model: {type(exc).__name__}: {_first_line(exc)}",
            hint="try another int8 variant, or precision fp16/fp32",
        ) from exc
    ops = Counter(op.get_type_name() for op in quantized.get_ops())
    done = quantized_ops(quantized)
    total = sum(ops[o] for o in OV_WEIGHTED)
    if ops["FakeQuantize"] == 0 or not done:
        raise CompileError(
            f"NNCF quantized none of the {total} weighted ops (Convolution/MatMul): the result would be a float "
            "model labelled int8",
            hint="int8 has nothing to speed up in this graph; use fp32 or fp16",
        )
    report = {
        **options.to_params(),
        "subset_size": arguments["subset_size"],
        "fake_quantize_nodes": ops["FakeQuantize"],
        "quantized_ops": sum(done.values()),
        "weighted_ops": total,
        "quantized_by_op": dict(sorted(done.items())),
        "ignored_ov_ops": len(ignored),
    }
    notes = [f"NNCF int8: {sum(done.values())}/{total} weighted ops quantized, {ops['FakeQuantize']} FakeQuantize"]
    notes += list(dict.fromkeys(m.strip().splitlines()[0][:300] for m in messages if m.strip()))[:8]
    return quantized, report, tuple(notes), kept


# --- the job --------------------------------------------------------------------------------------


def build_ir(job: BuildJob) -> BuildResult:
    """Convert (and quantize) ``job.source`` into ``job.out_dir/model.xml`` + ``model.bin``."""
    import openvino as ov

    source, out = Path(job.source), Path(job.out_dir)
    model, changed, notes = convert(source, job.batch)
    convert_params = {"compress_to_fp16": job.compress_to_fp16, "batch_agnostic_reshapes": changed}
    quantize_params = None
    kept: dict[str, tuple[str, ...]] = {}
    nncf_version = ""
    if job.int8 is not None:
        import nncf

        nncf_version = nncf.__version__
        model, quantize_params, q_notes, kept = quantize(model, job.int8, job.calibration, source)
        notes += q_notes
    out.mkdir(parents=True, exist_ok=True)
    try:
        ov.save_model(model, str(out / MODEL_XML), compress_to_fp16=job.compress_to_fp16)
    except Exception as exc:
        raise CompileError(f"OpenVINO could not save the IR: {_first_line(exc)}", hint="check free disk space") from exc
    return BuildResult(
        files=(MODEL_XML, MODEL_BIN),
        convert=convert_params,
        quantize=quantize_params,
        notes=tuple(notes),
        openvino=ov.__version__,
        nncf=nncf_version,
        kept_fp32_ops=kept,
    )


def build_ir_in_worker(job: BuildJob) -> BuildResult:
    """``build_ir`` as the long-lived build worker runs it: from inside ``job.out_dir``, with a private temp
    directory there (removed afterwards), leaving for ``/`` when done.

    The worker outlives the directories its callers ran in (a deploy's temp folders, a test's); a process
    whose working directory has been deleted cannot load some native libraries (torch's oneMKL aborts),
    so each build starts from a directory that exists and never leaves the worker parked in one that
    may vanish. Only ever called in the worker process: it changes that process's working directory, and its
    environment declines OpenVINO/NNCF telemetry (``edgeopt_openvino.telemetry``).
    """
    quiet_telemetry()
    out = Path(job.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    os.chdir(out)
    saved_env, saved_tempdir = os.environ.get("TMPDIR"), tempfile.tempdir
    try:
        with tempfile.TemporaryDirectory(prefix=".build-tmp-", dir=out) as tmp:
            tempfile.tempdir = tmp
            os.environ["TMPDIR"] = tmp
            return build_ir(job)
    finally:
        tempfile.tempdir = saved_tempdir
        if saved_env is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = saved_env
        os.chdir("/")
