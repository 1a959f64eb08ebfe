"""End to end through the core: the digits CNN and a MobileNet-style model to ``edgetpu`` as full-int8 TFLite
within 1 point of fp32 (both measured with LiteRT), and SqueezeNet from ONNX's test data converted and judged.

Needs the converter toolchain (skipped without it); each deploy converts, so these are slow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_converter
from edgeopt import deploy

pytestmark = [needs_converter, pytest.mark.slow]

DIGITS = Path(__file__).resolve().parents[3] / "examples" / "digits"
SQUEEZENET = Path(np.__file__).parents[1] / "onnx" / "backend" / "test" / "data" / "light" / "light_squeezenet.onnx"


class Quiet:
    def step(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass


def _deploy(model: object, target: str, precision: str, out: Path, **kwargs: object):
    return deploy(model, target=target, precision=precision, out=out, timing_s=0.2, cache=False, events=Quiet(),
                  **kwargs)


def _check_edgetpu_artifact(path: Path) -> dict:
    stored = json.loads((path / "edgetpu_report.json").read_text())
    compat = stored["compatibility"]
    assert compat["compilable"] and compat["model_problems"] == []
    assert stored["estimate"]["method"].startswith("estimated:roofline")
    assert stored["compiler"]["status"] in ("compiled", "not-run")
    return stored


def test_digits_cnn_to_edgetpu_within_one_point_of_litert_fp32(tmp_path: Path) -> None:
    data = {"calib": DIGITS / "calib.npz", "eval": DIGITS / "eval.npz"}
    fp32 = _deploy(DIGITS / "digits_cnn.onnx", "tflite", "fp32", tmp_path / "fp32", **data)
    int8 = _deploy(DIGITS / "digits_cnn.onnx", "edgetpu", "int8", tmp_path / "int8", **data)
    litert_fp32, litert_int8 = fp32.metrics["candidate"], int8.metrics["candidate"]
    assert fp32.metrics["metric"] == "accuracy" and litert_fp32 > 95
    assert abs(litert_fp32 - litert_int8) <= 1.0, (litert_fp32, litert_int8)
    stored = _check_edgetpu_artifact(int8.path)
    assert stored["compatibility"]["op_fraction"] == 1.0
    assert any(n.startswith("Edge TPU: 8/8 ops") for n in int8.manifest["plan"]["notes"])


def test_mobilenet_style_torch_model_to_edgetpu_within_one_point(tmp_path: Path) -> None:
    from etpu_models import digits_16x16, trained_mobilenet

    x_train, x_test, y_train, y_test = digits_16x16()
    model = trained_mobilenet(x_train, y_train)
    calib, evaluation = {"input": x_train[:128]}, {"input": x_test, "labels": y_test}
    common = {"calib": calib, "eval": evaluation, "input_shapes": (1, 1, 16, 16)}
    fp32 = _deploy(model, "tflite", "fp32", tmp_path / "fp32", **common)
    int8 = _deploy(model, "edgetpu", "int8", tmp_path / "int8", **common)
    assert fp32.metrics["candidate"] > 90
    assert abs(fp32.metrics["candidate"] - int8.metrics["candidate"]) <= 1.0
    stored = _check_edgetpu_artifact(int8.path)
    ops = {op["op"] for op in stored["compatibility"]["ops"]}
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"} <= ops
    assert stored["compatibility"]["flop_fraction"] == 1.0


def test_squeezenet_converts_to_full_int8_and_is_judged(tmp_path: Path) -> None:
    from edgeopt.plugin import ImportOptions, get_profile, synthetic_dataset
    from edgeopt.testing import get_plugin_manager

    from edgeopt_edgetpu.compat import REPORT_FILE

    pm = get_plugin_manager()
    (tmp_path / "graph").mkdir()
    graph = pm.import_model(SQUEEZENET, ImportOptions(), tmp_path / "graph")
    target = pm.target("edgetpu")
    device = get_profile("coral-edgetpu-usb")
    (plan,) = pm.plan(graph, target, device, "int8")
    compiled = pm.compile(graph, plan, target, device, synthetic_dataset(graph, samples=8, seed=0), tmp_path / "b")
    stored = json.loads((compiled.directory / REPORT_FILE).read_text())
    compat = stored["compatibility"]
    assert compat["total_ops"] == 41 and compat["mapped_ops"] == 41 and compat["first_fallback"] is None
    assert {op["op"] for op in compat["ops"]} >= {"CONV_2D", "CONCATENATION", "MAX_POOL_2D", "SOFTMAX"}
    assert 0.5e9 < compat["total_flops"] < 1.0e9
    assert stored["estimate"]["device"] == "coral-edgetpu-usb" and stored["estimate"]["cpu_s"] == 0.0
