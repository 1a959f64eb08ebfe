"""Streaming calibration for ONNX Runtime's static quantizer: activation ranges without every activation at once.

ONNX Runtime's histogram calibrators (percentile, entropy) keep every calibrated tensor of every sample in
memory before they histogram any of them: about 400 MB a sample for a 10 MB convolutional text recognizer at
48x320, so 100 samples need tens of GB. Here the same ORT calibrators see one feed (one batch) at a time:

- ``minmax``: ORT's ``MinMaxCalibrater`` is fed ``MINMAX_CHUNK`` feeds per ``collect_data`` call; it reduces
  each call to per-tensor min/max and merges them (min of mins, max of maxes), so the ranges are exact;
- ``percentile`` and ``entropy``: two passes over the feeds through ORT's own augmented model (every calibrated
  tensor an output). The first finds each tensor's range, the second adds up each tensor's histogram over that
  fixed range. These are, bin for bin, the histograms ORT's ``HistogramCollector.collect`` builds when it is
  given every sample at once (same bins, same edges, integer counts summed), so ORT's own
  ``compute_collection_result`` then picks the same thresholds as a one-shot ``quantize_static``; the cost is a
  second inference pass, the gain memory bounded by one feed's activations.

The quantizer then runs with these ranges: through ``quantize_static(calibration_cache_path=...)`` where ORT
has it (1.32+), else through the ``QDQQuantizer`` that ``quantize_static`` itself builds (older ORT; that path
skips ORT's opset bump for 16-bit/4-bit types, which edgeopt's uint8/int8 plans never use).

Entropy bins: ORT's entropy calibrator defaults to 128 histogram bins and 128 quantized bins, which leaves the
KL search a single candidate, the full range, clipped to min/max: exactly the MinMax range, so "entropy" built
the same file as "minmax". ``ENTROPY_BINS`` gives the search real candidates.
"""

from __future__ import annotations

import inspect
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt.errors import CompileError

MINMAX_CHUNK = 16
"""Feeds per ``MinMaxCalibrater.collect_data`` call (it holds only per-feed min/max values between calls)."""
ENTROPY_BINS = 512
"""Histogram bins for entropy calibration (ORT's default, 128, equals its 128 quantized bins: no search at all).
The KL search tries (bins - 128) / 2 + 1 thresholds per tensor in Python; 512 keeps that to seconds."""
ENTROPY_QUANTIZED_BINS = 128
"""Bins the entropy search quantizes the histogram into (ORT's and TensorRT's 8-bit default)."""


def calibrator_options(method: str, *, percentile: float) -> dict[str, Any]:
    """The ``extra_options`` of ORT's ``create_calibrator`` for ``method`` (minmax, percentile, entropy)."""
    if method == "percentile":
        return {"percentile": percentile}
    if method == "entropy":
        return {"num_bins": ENTROPY_BINS, "num_quantized_bins": ENTROPY_QUANTIZED_BINS}
    return {}


def all_op_types() -> list[str]:
    """What ``quantize_static`` quantizes (and calibrates) when given no op types: every registered op."""
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    return sorted(set(QLinearOpsRegistry) | set(QDQRegistry))


def _reader(feeds: Sequence[Mapping[str, np.ndarray]]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class FeedReader(CalibrationDataReader):
        def __init__(self) -> None:
            self._feeds = iter(feeds)

        def get_next(self) -> Mapping[str, np.ndarray] | None:
            return next(self._feeds, None)

        def __len__(self) -> int:
            return len(feeds)

    return FeedReader()


@contextmanager
def _calibrator(model: Path, method: str, op_types: Sequence[str] | None, *, use_external_data: bool,
                extra: Mapping[str, Any], scratch: Path | None) -> Iterator[Any]:
    """ORT's calibrator for ``method`` on ``model``, its augmented model in a private folder under ``scratch``."""
    from onnxruntime.quantization import CalibrationMethod
    from onnxruntime.quantization.calibrate import create_calibrator

    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    with tempfile.TemporaryDirectory(prefix=".edgeopt-calib-", dir=scratch) as tmp:
        calibrator = create_calibrator(
            model, list(op_types) if op_types else all_op_types(),
            augmented_model_path=str(Path(tmp) / "augmented_model.onnx"), calibrate_method=methods[method],
            use_external_data_format=use_external_data, extra_options=dict(extra),
        )
        try:
            yield calibrator
        finally:
            calibrator.infer_session = None  # release the session before its model file goes


def _tensor_outputs(calibrator: Any) -> list[tuple[int, str]]:
    names = [o.name for o in calibrator.infer_session.get_outputs()]
    return [(i, n) for i, n in enumerate(names) if n in calibrator.tensors_to_calibrate]


def _stats(arr: np.ndarray, absolute: bool) -> list:
    """``[nanmin, nanmax]`` of ``arr`` (plus ``min |x|``, ``max |x|`` for ``absolute``): the values ORT's
    collector computes, in as few passes over the data as the signs allow."""
    low, high = arr.min(), arr.max()
    if np.isnan(low) or np.isnan(high):
        low, high = np.nanmin(arr), np.nanmax(arr)
    if not absolute:
        return [low, high]
    top = max(np.absolute(low), np.absolute(high))
    if low > 0:
        bottom = np.absolute(low)
    elif high < 0:
        bottom = np.absolute(high)
    elif low == 0 or high == 0:
        bottom = np.zeros((), arr.dtype)[()]
    else:  # both signs: the smallest magnitude may be anywhere
        bottom = np.absolute(arr).min()
    return [low, high, bottom, top]


def _ranges(calibrator: Any, feeds: Sequence[Mapping[str, np.ndarray]], absolute: bool) -> dict[str, list]:
    """Pass 1: per tensor the signed min and max (and, for ``absolute``, the min and max of ``|x|``) over all
    feeds. ``CompileError`` when a tensor's range is not finite (ORT's histograms refuse those too)."""
    found: dict[str, list] = {}
    wanted = _tensor_outputs(calibrator)
    for feed in feeds:
        outputs = calibrator.infer_session.run(None, dict(feed))
        for i, name in wanted:
            arr = np.asarray(outputs[i]).ravel()
            if arr.size == 0:
                continue
            stats = _stats(arr, absolute)
            old = found.get(name)
            found[name] = stats if old is None else [
                np.fmin(old[0], stats[0]), np.fmax(old[1], stats[1]),
                *([min(old[2], stats[2]), max(old[3], stats[3])] if absolute else []),
            ]
        del outputs
    for name, stats in found.items():
        if not all(np.isfinite(v) for v in stats):
            raise CompileError(f"calibration found NaN or infinite values in tensor {name!r}",
                               hint="check the calibration data for NaN/inf, or deploy as fp32")
    return found


def _histograms(calibrator: Any, feeds: Sequence[Mapping[str, np.ndarray]]) -> dict[str, tuple]:
    """Pass 2: the histograms ORT's ``HistogramCollector.collect`` builds from every sample at once, summed feed
    by feed over the ranges of pass 1 (``collect_absolute_value`` for symmetric percentile, else
    ``collect_value``), in the layout ``compute_collection_result`` reads."""
    absolute = calibrator.method == "percentile" and calibrator.symmetric
    ranges = _ranges(calibrator, feeds, absolute)
    bins = int(calibrator.num_bins)
    spans: dict[str, tuple] = {}
    for name, stats in ranges.items():
        if absolute:
            spans[name] = (stats[2], stats[3])
        else:
            threshold = np.array(max(abs(stats[0]), abs(stats[1])), dtype=np.asarray(stats[0]).dtype)
            spans[name] = (-threshold, threshold)
    counts: dict[str, np.ndarray] = {}
    edges: dict[str, np.ndarray] = {}
    wanted = _tensor_outputs(calibrator)
    for feed in feeds:
        outputs = calibrator.infer_session.run(None, dict(feed))
        for i, name in wanted:
            if name not in spans:
                continue
            arr = np.asarray(outputs[i]).ravel()
            hist, edge = np.histogram(np.absolute(arr) if absolute else arr, bins, range=spans[name])
            counts[name] = hist if name not in counts else counts[name] + hist
            edges[name] = edge
        del outputs
    result: dict[str, tuple] = {}
    for name, hist in counts.items():
        smin, smax = ranges[name][0], ranges[name][1]
        if absolute:
            result[name] = (hist, edges[name].astype(np.asarray(smin).dtype), smin, smax)
        else:
            result[name] = (hist, edges[name], smin, smax, spans[name][1])
    return result


def calibrate(
    model: Path,
    feeds: Sequence[Mapping[str, np.ndarray]],
    method: str,
    *,
    op_types: Sequence[str] | None = None,
    percentile: float = 99.999,
    use_external_data: bool = False,
    scratch: Path | None = None,
) -> Any:
    """ORT ``TensorsData`` (activation ranges) of ``model`` for ``method``, the feeds streamed (see the module).

    ORT's augmented model goes to a private folder under ``scratch`` (default: the system's temporary folder),
    removed on return. Raises ``ValueError`` (ORT's own) when no feed produced data.
    """
    from onnxruntime.quantization.calibrate import HistogramCollector

    extra = calibrator_options(method, percentile=percentile)
    with _calibrator(Path(model), method, op_types, use_external_data=use_external_data, extra=extra,
                     scratch=scratch) as calibrator:
        if method == "minmax":
            for start in range(0, len(feeds), MINMAX_CHUNK):
                calibrator.collect_data(_reader(feeds[start : start + MINMAX_CHUNK]))
            return calibrator.compute_data()
        histograms = _histograms(calibrator, feeds)
        if not histograms:
            raise ValueError("No data is collected.")
        collector = HistogramCollector(
            method=calibrator.method, symmetric=calibrator.symmetric, num_bins=calibrator.num_bins,
            num_quantized_bins=calibrator.num_quantized_bins, percentile=calibrator.percentile,
            scenario=calibrator.scenario,
        )
        collector.histogram_dict = histograms
        calibrator.collector = collector
        return calibrator.compute_data()


def has_calibration_cache() -> bool:
    """Whether this ORT's ``quantize_static`` takes precomputed ranges (``calibration_cache_path``, ORT 1.32+)."""
    from onnxruntime.quantization import quantize_static

    return "calibration_cache_path" in inspect.signature(quantize_static).parameters


def quantize_with_ranges(src: Path, dst: Path, ranges: Any, kwargs: Mapping[str, Any], *,
                         via_cache: bool | None = None) -> None:
    """Write ``src`` quantized with ORT's static QDQ quantizer at ``dst``, using precomputed ``ranges``.

    ``kwargs`` are ``quantize_static``'s keyword arguments (enums already resolved). ``via_cache`` forces one
    of the two routes (see the module); None picks ``calibration_cache_path`` where ORT has it."""
    from onnxruntime.quantization import quantize_static

    if has_calibration_cache() if via_cache is None else via_cache:
        from onnxruntime.quantization.calibrate import save_tensors_data

        with tempfile.TemporaryDirectory(prefix=".edgeopt-ranges-", dir=Path(dst).parent) as tmp:
            cache = Path(tmp) / "ranges.json"
            save_tensors_data(ranges, cache)
            quantize_static(str(src), str(dst), None, calibration_cache_path=str(cache), **kwargs)
        return
    _quantize_legacy(src, dst, ranges, kwargs)


def _quantize_legacy(src: Path, dst: Path, ranges: Any, kwargs: Mapping[str, Any]) -> None:
    """What ``quantize_static`` does after calibration, for an ORT without ``calibration_cache_path``."""
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer
    from onnxruntime.quantization.quantize import check_static_quant_arguments

    opts = dict(kwargs)
    check_static_quant_arguments(opts["quant_format"], opts["activation_type"], opts["weight_type"])
    quantizer = QDQQuantizer(
        load_model_with_shape_infer(Path(src)),
        opts.get("per_channel", False),
        opts.get("reduce_range", False),
        opts["weight_type"],
        opts["activation_type"],
        ranges,
        opts.get("nodes_to_quantize") or [],
        opts.get("nodes_to_exclude") or [],
        opts.get("op_types_to_quantize") or all_op_types(),
        dict(opts.get("extra_options") or {}),
    )
    quantizer.quantize_model()
    quantizer.model.save_model_to_file(str(dst), opts.get("use_external_data_format", False))
