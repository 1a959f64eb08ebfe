"""Streaming calibration gives the ranges and files of ORT's one-shot calibration, holding one feed at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.calibrate import create_calibrator

from edgeopt.errors import CompileError
from edgeopt.passes import ort_calibrate
from edgeopt.passes.ort_calibrate import all_op_types, calibrate, calibrator_options, quantize_with_ranges
from edgeopt.passes.ort_quantize import quantize_static_int8
from edgeopt.passes.ort_quantize_options import StaticInt8Options
from edgeopt.types import Dataset
from tests.passes.test_ort_quantize import _conv_model

METHODS = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
           "entropy": CalibrationMethod.Entropy}


class _Reader(CalibrationDataReader):
    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def _feeds(n: int = 40, sign: str = "mixed") -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    # samples with very different ranges, the widest last: a merge that fixed its bins on the first feeds
    # (ORT's own HistogramCollector merging across collect_data calls) would not reproduce one-shot histograms
    feeds = [(rng.standard_normal((1, 3, 8, 8)) * (0.1 + i / 4)).astype(np.float32) for i in range(n)]
    if sign != "mixed":  # inputs of one sign: the other branches of the |x| range
        feeds = [(np.abs(x) + 0.01) * (1 if sign == "positive" else -1) for x in feeds]
    return [{"x": x} for x in feeds]


def _one_shot(model: Path, feeds: list[dict[str, np.ndarray]], method: str, tmp: Path):  # noqa: ANN202
    """What ORT's quantize_static computes: every feed in one collect_data call."""
    calibrator = create_calibrator(model, all_op_types(), augmented_model_path=str(tmp / "aug.onnx"),
                                   calibrate_method=METHODS[method],
                                   extra_options=calibrator_options(method, percentile=99.9))
    calibrator.collect_data(_Reader(feeds))
    return calibrator.compute_data()


@pytest.mark.parametrize(("method", "sign"), [(m, "mixed") for m in METHODS] + [("percentile", "positive"),
                                                                                 ("percentile", "negative")])
def test_streamed_ranges_equal_one_shot(tmp_path: Path, method: str, sign: str,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    model = _conv_model(tmp_path / "conv.onnx")
    feeds = _feeds(sign=sign)
    monkeypatch.setattr(ort_calibrate, "MINMAX_CHUNK", 3)  # several collect_data calls for minmax too
    streamed = calibrate(model, feeds, method, percentile=99.9, scratch=tmp_path)
    expected = _one_shot(model, feeds, method, tmp_path)
    assert streamed.calibration_method == expected.calibration_method
    assert set(streamed.keys()) == set(expected.keys()) and len(streamed.keys()) >= 5
    for name in expected:
        got, want = streamed[name], expected[name]
        np.testing.assert_array_equal(np.asarray(got.range_value), np.asarray(want.range_value), err_msg=name)
        if hasattr(want, "hist"):
            np.testing.assert_array_equal(got.hist, want.hist, err_msg=name)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".edgeopt-calib-")]


def test_entropy_differs_from_minmax(tmp_path: Path) -> None:
    """ORT's default entropy settings (128 bins for 128 quantized bins) reproduce the min/max range exactly;
    with ENTROPY_BINS the KL search clips at least one tensor's range."""
    model = _conv_model(tmp_path / "conv.onnx")
    feeds = _feeds()
    minmax = calibrate(model, feeds, "minmax")
    entropy = calibrate(model, feeds, "entropy")
    clipped = [n for n in minmax if np.ravel(entropy[n].range_value[1]) < np.ravel(minmax[n].range_value[1])]
    assert clipped
    calibrator = create_calibrator(model, all_op_types(), augmented_model_path=str(tmp_path / "aug.onnx"),
                                   calibrate_method=CalibrationMethod.Entropy)  # ORT's defaults: the old bug
    calibrator.collect_data(_Reader(feeds))
    ort_default = calibrator.compute_data()
    for name in minmax:
        np.testing.assert_array_equal(np.ravel(ort_default[name].range_value), np.ravel(minmax[name].range_value))


@pytest.mark.parametrize("method", ["minmax", "percentile"])
def test_quantized_file_is_byte_identical_to_quantize_static(tmp_path: Path, method: str) -> None:
    """minmax and percentile (whose settings ORT's quantize_static can express) write the very same model."""
    model = _conv_model(tmp_path / "conv.onnx")
    x = np.concatenate([f["x"] for f in _feeds(12)])
    ours = tmp_path / "ours.onnx"
    quantize_static_int8(model, ours, Dataset({"x": x}),
                         StaticInt8Options(calibrate_method=method, percentile=99.9, float_outputs=False))
    theirs = tmp_path / "theirs.onnx"
    extra = {"ActivationSymmetric": False, "CalibPercentile": 99.9}
    quantize_static(str(model), str(theirs), _Reader([{"x": x[i : i + 1]} for i in range(len(x))]),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, calibrate_method=METHODS[method], extra_options=extra)
    assert onnx.load(str(ours)).SerializeToString() == onnx.load(str(theirs)).SerializeToString()


def test_both_quantizer_routes_write_the_same_model(tmp_path: Path) -> None:
    """The route for ORT without calibration_cache_path (its QDQQuantizer) matches the cache route."""
    model = _conv_model(tmp_path / "conv.onnx")
    ranges = calibrate(model, _feeds(8), "entropy")
    kwargs = {"quant_format": QuantFormat.QDQ, "per_channel": True, "reduce_range": False,
              "activation_type": QuantType.QUInt8, "weight_type": QuantType.QInt8, "op_types_to_quantize": None,
              "nodes_to_exclude": [], "use_external_data_format": False, "calibrate_method": METHODS["entropy"],
              "extra_options": {"ActivationSymmetric": False}}
    legacy, cached = tmp_path / "legacy.onnx", tmp_path / "cached.onnx"
    quantize_with_ranges(model, legacy, ranges, kwargs, via_cache=False)
    if not ort_calibrate.has_calibration_cache():
        pytest.skip("this onnxruntime has no calibration_cache_path: only the legacy route exists")
    quantize_with_ranges(model, cached, ranges, kwargs, via_cache=True)
    assert legacy.read_bytes() == cached.read_bytes()


def test_nan_activations_are_refused(tmp_path: Path) -> None:
    model = _conv_model(tmp_path / "conv.onnx")
    x = np.concatenate([f["x"] for f in _feeds(4)])
    x[2, 0, 0, 0] = np.inf
    with pytest.raises(CompileError, match="NaN or infinite values in tensor"):
        quantize_static_int8(model, tmp_path / "q.onnx", Dataset({"x": x}),
                             StaticInt8Options(calibrate_method="entropy"))
    assert not (tmp_path / "q.onnx").exists()
