"""Int8 quantization with ONNX Runtime's quantizer, behind typed options and an honest report.

The options and the report are ``edgeopt.passes.ort_quantize_options``; what the report counts is read from the
models by ``edgeopt.passes.int8_nodes``.

Static quantization writes a QDQ model (QuantizeLinear/DequantizeLinear pairs around float ops)
that any ONNX Runtime, and most other runtimes, can load and fuse into integer kernels. Dynamic
quantization stores int8 weights and quantizes activations at run time (ConvInteger, MatMulInteger).

Contracts kept here, each the fix for a bug seen in the wild:
- the input must already be a normalized graph (opset >= 13; edgeopt normalizes to 17). ORT's
  ``quant_pre_process`` is never run: its symbolic shape inference fails on real graphs and leaves
  files in the working directory;
- every file, ORT's calibration model included, is written in private temporary directories; only
  ``dst`` (and its external-data file, for models over 2 GB) appears, and only on success;
- a run that quantizes no Conv/MatMul/Gemm node raises ``CompileError`` instead of shipping a float
  model labelled int8.
"""


from __future__ import annotations

import io
import logging
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, redirect_stdout
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from edgeopt.errors import CompileError, DataError, EdgeoptError
from edgeopt.passes.int8_nodes import (
    DYNAMIC_OP_TYPES,
    STATIC_OP_TYPES,
    float_tail_nodes,
    quantizable,
    quantized_dynamic,
    quantized_static,
    weight_bytes,
)
from edgeopt.passes.ort_calibrate import calibrate, calibrator_options, quantize_with_ranges
from edgeopt.passes.ort_optimize import BIG_MODEL_BYTES, model_bytes, model_files
from edgeopt.passes.ort_quantize_options import ORT_CALIBRATION, DynamicInt8Options, QuantizeReport, StaticInt8Options
from edgeopt.types import Dataset

_log = logging.getLogger(__name__)
_ORT_TYPES = {"uint8": "QUInt8", "int8": "QInt8"}


def _load(path: Path) -> onnx.ModelProto:
    return onnx.load(str(path), load_external_data=False)


def _opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


# --- ORT plumbing ---------------------------------------------------------------------------------


class _DropPreprocessHint(logging.Filter):
    """ORT asks for ``quant_pre_process`` on every call; edgeopt's normalizer already did that job."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


@contextmanager
def _staged(dst: Path) -> Iterator[Path]:
    """A path to write in a private folder beside ``dst``; its files move to ``dst``'s folder on success."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".edgeopt-quant-", dir=dst.parent) as tmp:
        staged = Path(tmp) / dst.name
        yield staged
        for name in model_files(staged):
            shutil.move(str(Path(tmp) / name), str(dst.parent / name))


def _calibration_feeds(model: onnx.ModelProto, calibration: Dataset, limit: int | None) -> list[dict[str, np.ndarray]]:
    """Feeds for the model's inputs, batched like its (static) batch dimension, checked against it."""
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]
    if not inputs:
        raise CompileError("the model has no inputs to calibrate", hint="deploy it as fp32")
    missing = [i.name for i in inputs if i.name not in calibration.arrays]
    if missing:
        raise DataError(
            f"calibration data has no array for input(s) {', '.join(missing)} "
            f"(it has {', '.join(calibration.arrays) or 'none'})"
        )
    if len(calibration) == 0:
        raise DataError("calibration data holds no samples")
    dims = {
        i.name: [d.dim_value if d.HasField("dim_value") else None for d in i.type.tensor_type.shape.dim] for i in inputs
    }
    batched = [i for i in inputs if i.name not in calibration.fed_whole]  # fed whole: no batch axis at 0
    first = dims[batched[0].name] if batched else []
    batch = first[0] if first and first[0] else 1
    n = len(calibration) if limit is None else min(limit, len(calibration))
    if n < batch:
        raise DataError(f"calibration data has {n} samples, fewer than the model's batch size {batch}")
    head = calibration.head(n)  # a stream's states are those its reference stream fed (edgeopt.data.stream)
    feeds = replace(head, arrays={i.name: head.arrays[i.name] for i in inputs}).batches(batch)
    for i in inputs:
        want = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(i.type.tensor_type.elem_type))
        got = feeds[0][i.name]
        shape_ok = got.ndim == len(dims[i.name]) and all(
            d is None or d == g for d, g in zip(dims[i.name], got.shape, strict=True)
        )
        if got.dtype != want or not shape_ok:
            expected = tuple(d if d is not None else "?" for d in dims[i.name])
            raise DataError(
                f"calibration batch for input {i.name!r} is {got.dtype}{list(got.shape)}, "
                f"the model expects {want}{list(expected)}"
            )
    return feeds


def _ort_kwargs(ort_params: Mapping[str, Any]) -> dict[str, Any]:
    """ORT's keyword arguments from the JSON-ready record of them (enum names become enums)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType

    enums = {
        "activation_type": QuantType,
        "weight_type": QuantType,
        "calibrate_method": CalibrationMethod,
        "quant_format": QuantFormat,
    }
    kwargs = {k: getattr(enums[k], v) if k in enums else v for k, v in ort_params.items()
              if k != "calibrator_options"}
    kwargs["extra_options"] = dict(ort_params["extra_options"])  # ORT may add keys to it
    return kwargs


@contextmanager
def _quiet() -> Iterator[None]:
    """Keep ORT's pre-processing advice and calibration progress prints off the user's console."""
    hint = _DropPreprocessHint()
    root = logging.getLogger()
    root.addFilter(hint)
    printed = io.StringIO()
    try:
        with redirect_stdout(printed):
            yield
    finally:
        root.removeFilter(hint)
        if printed.getvalue():
            _log.debug("onnxruntime printed:\n%s", printed.getvalue())


def _quantize(
    mode: str,
    src: Path,
    dst: Path,
    run: Callable[[Path], None],
    *,
    model: onnx.ModelProto,
    wanted: tuple[str, ...],
    exclude: tuple[str, ...],
    ort_params: dict[str, Any],
    samples: int = 0,
    notes: tuple[str, ...] = (),
) -> QuantizeReport:
    """Run ``run(staged_output)``, count what it quantized, and publish ``dst`` only if it did something."""
    import onnxruntime as ort

    with _staged(dst) as out:
        try:
            with _quiet():
                run(out)
        except EdgeoptError:
            raise
        except Exception as exc:
            raise CompileError(
                f"ONNX Runtime {mode} quantization of {src.name} failed: {type(exc).__name__}: {exc}",
                hint="try per_channel=False or another calibration method, or deploy as fp32",
            ) from exc
        result = _load(out)
        counted = quantized_static(result) if mode == "static" else quantized_dynamic(result)
        report = QuantizeReport(
            mode=mode,
            quantized_nodes=sum(counted.values()),
            quantizable_nodes=quantizable(model, wanted, exclude),
            quantized_by_op=dict(sorted(counted.items())),
            weight_bytes_before=weight_bytes(model),
            weight_bytes_after=weight_bytes(result),
            ort_parameters=ort_params,
            ort_version=ort.__version__,
            calibration_samples=samples,
            notes=notes,
        )
        _refuse_nothing_quantized(src, report, wanted)
    return report


def _require_weighted(op_types: tuple[str, ...], requested: tuple[str, ...] | None) -> None:
    if not op_types:
        raise CompileError(
            f"op_types {', '.join(requested or ())} name no op ONNX Runtime quantizes in this mode",
            hint="include Conv, MatMul or Gemm in op_types",
        )


def _refuse_nothing_quantized(src: Path, report: QuantizeReport, op_types: tuple[str, ...]) -> None:
    if report.quantized_nodes:
        return
    kinds = "/".join(op_types)
    if report.quantizable_nodes == 0:
        raise CompileError(
            f"int8 quantization of {src.name} changed nothing: the model has no {kinds} node to quantize",
            hint="deploy this model as fp32 (--precision fp32)",
        )
    raise CompileError(
        f"int8 quantization of {src.name} quantized none of its {report.quantizable_nodes} {kinds} nodes",
        hint="check op_types and nodes_to_exclude; the graph must be opset >= 13 (edgeopt normalizes to 17)",
    )


# --- passes ---------------------------------------------------------------------------------------


def quantize_static_int8(
    src: Path, dst: Path, calibration: Dataset, options: StaticInt8Options | None = None
) -> QuantizeReport:
    """Write ``src`` quantized to static int8 QDQ at ``dst``, calibrated on ``calibration``.

    ``src`` must be a normalized graph (opset >= 13 for per-channel). Raises ``DataError`` when
    the calibration data does not fit the model and ``CompileError`` when ORT fails or quantizes
    no weighted node; ``dst`` is written only on success.
    """
    options = options or StaticInt8Options()
    src, dst = Path(src), Path(dst)
    model = _load(src)
    if options.per_channel and _opset(model) < 13:
        raise CompileError(
            f"{src.name} is opset {_opset(model)}: per-channel quantization needs opset >= 13",
            hint="normalize the model first (edgeopt's importers upgrade to opset 17)",
        )
    wanted = tuple(t for t in STATIC_OP_TYPES if options.op_types is None or t in options.op_types)
    _require_weighted(wanted, options.op_types)
    feeds = _calibration_feeds(model, calibration, options.max_calibration_samples)
    extra: dict[str, Any] = {"ActivationSymmetric": options.symmetric_activation}
    if options.calibrate_method == "percentile":
        extra["CalibPercentile"] = options.percentile
    ort_params: dict[str, Any] = {
        "quant_format": "QDQ",
        "per_channel": options.per_channel,
        "reduce_range": options.reduce_range,
        "activation_type": _ORT_TYPES[options.activation_type],
        "weight_type": _ORT_TYPES[options.weight_type],
        "calibrate_method": ORT_CALIBRATION[options.calibrate_method],
        "op_types_to_quantize": list(options.op_types) if options.op_types is not None else None,
        "nodes_to_exclude": list(options.nodes_to_exclude) + (float_tail_nodes(model) if options.float_outputs else []),
        "use_external_data_format": model_bytes(src) > BIG_MODEL_BYTES,
        "extra_options": extra,
        "calibrator_options": calibrator_options(options.calibrate_method, percentile=options.percentile),
    }

    def run(out: Path) -> None:
        kwargs = _ort_kwargs(ort_params)
        ranges = calibrate(
            src, feeds, options.calibrate_method, op_types=kwargs["op_types_to_quantize"],
            percentile=options.percentile, use_external_data=kwargs["use_external_data_format"], scratch=out.parent,
        )
        quantize_with_ranges(src, out, ranges, kwargs)

    return _quantize(
        "static",
        src,
        dst,
        run,
        model=model,
        wanted=wanted,
        exclude=options.nodes_to_exclude,
        ort_params=ort_params,
        samples=sum(len(next(iter(f.values()))) for f in feeds),
    )


def quantize_dynamic_int8(src: Path, dst: Path, options: DynamicInt8Options | None = None) -> QuantizeReport:
    """Write ``src`` with dynamically quantized int8 weights at ``dst``.

    Raises ``CompileError`` when ORT fails or quantizes no weighted node; ``dst`` is written only
    on success.
    """
    from onnxruntime.quantization import quantize_dynamic

    options = options or DynamicInt8Options()
    src, dst = Path(src), Path(dst)
    model = _load(src)
    wanted = tuple(t for t in DYNAMIC_OP_TYPES if t in options.op_types)
    ignored = tuple(t for t in options.op_types if t not in DYNAMIC_OP_TYPES)
    notes = (f"ONNX Runtime has no dynamic int8 kernel for {', '.join(ignored)}; left in float",) if ignored else ()
    _require_weighted(wanted, options.op_types)
    # ORT rewrites each Gemm into a MatMul named "<gemm>_MatMul" (+ Add) and then quantizes MatMuls: ask
    # for MatMul when Gemm is wanted, keeping the model's own MatMuls out unless they were wanted too.
    ort_types, exclude = list(wanted), list(options.nodes_to_exclude)
    exclude += [f"{name}_MatMul" for name in options.nodes_to_exclude]
    if "Gemm" in wanted and "MatMul" not in wanted:
        ort_types.append("MatMul")
        exclude += [n.name for n in model.graph.node if n.op_type == "MatMul" and n.name]
    elif "MatMul" in wanted and "Gemm" not in wanted:
        exclude += [f"{n.name}_MatMul" for n in model.graph.node if n.op_type == "Gemm" and n.name]
    ort_params: dict[str, Any] = {
        "per_channel": options.per_channel,
        "reduce_range": options.reduce_range,
        "weight_type": _ORT_TYPES[options.weight_type],
        "op_types_to_quantize": ort_types,
        "nodes_to_exclude": exclude,
        "use_external_data_format": model_bytes(src) > BIG_MODEL_BYTES,
        "extra_options": {"MatMulConstBOnly": True},
    }
    return _quantize(
        "dynamic",
        src,
        dst,
        lambda out: quantize_dynamic(str(src), str(out), **_ort_kwargs(ort_params)),
        model=model,
        wanted=wanted,
        exclude=options.nodes_to_exclude,
        ort_params=ort_params,
        notes=notes,
    )
