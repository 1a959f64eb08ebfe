"""The Edge TPU compatibility report on hand-built ``.tflite`` files (no converter needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import needs_litert
from tflite_builders import OpSpec, Spec, int8_conv_net, write_tflite

pytestmark = needs_litert


def analyze(path: Path, **kwargs):
    from edgeopt_edgetpu.compat import analyze_file

    return analyze_file(path, **kwargs)


def test_a_full_int8_conv_net_maps_every_op(tmp_path: Path) -> None:
    report = analyze(int8_conv_net(tmp_path / "m.tflite"))
    assert [v.op for v in report.ops] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert report.first_fallback is None and report.compilable
    assert report.op_fraction == 1.0 and report.flop_fraction == 1.0
    conv, _, fc = report.ops
    assert conv.flops == 2 * 8 * 8 * 4 * 3 * 3 * 3 and fc.flops == 2 * 10 * 256
    assert conv.weight_bytes == 4 * 3 * 3 * 3 + 4 * 4  # int8 kernel + int32 bias
    assert "no CPU fallback" in report.summary()


def test_an_unsupported_float_tail_is_named_and_blocks_the_compile(tmp_path: Path) -> None:
    report = analyze(int8_conv_net(tmp_path / "m.tflite", tail="DEQUANTIZE"))
    tail = report.ops[2]
    assert not tail.on_edgetpu and report.first_fallback == 2
    assert any("unsupported op DEQUANTIZE" in r for r in tail.reasons)
    assert any("not int8 (float32" in r for r in tail.reasons)
    assert not report.compilable and "not a full-integer model" in report.summary()
    assert report.mapped_ops == 2 and 0.9 < report.flop_fraction < 1.0


def test_a_dynamic_input_falls_back_from_the_first_op(tmp_path: Path) -> None:
    report = analyze(int8_conv_net(tmp_path / "m.tflite", dynamic=True))
    assert report.first_fallback == 0 and report.mapped_ops == 0
    assert "dynamic size" in report.ops[0].reasons
    assert report.ops[1].reasons == ("after the first CPU fallback",)
    assert any("dynamic size" in p for p in report.model_problems)


def test_rank_beyond_three_inner_dims_and_the_runtime_version_are_reasons(tmp_path: Path) -> None:
    tensors = [Spec("x", "int8", (1, 2, 4, 4, 3)), Spec("p", "int32", (5,), np.array([0, 1, 3, 2, 4])),
               Spec("y", "int8", (1, 2, 4, 4, 3)), Spec("z", "int8", (1, 2, 4, 4, 3))]
    ops = [OpSpec("RELU", ["x"], ["y"]), OpSpec("TRANSPOSE", ["y", "p"], ["z"])]
    path = write_tflite(tmp_path / "m.tflite", tensors, ops, ["x"], ["z"])
    report = analyze(path, runtime=13)
    assert any("tensor rank beyond what the chip takes" in r for r in report.ops[0].reasons)
    assert any("needs Edge TPU runtime >= 14 (targeting 13)" in r for r in report.ops[1].reasons)
    assert not report.compilable  # nothing left on the Edge TPU


def test_a_later_unsupported_op_sends_everything_after_it_to_the_cpu(tmp_path: Path) -> None:
    tensors = [Spec("x", "int8", (1, 16)), Spec("a", "int8", (1, 16)), Spec("b", "int8", (1, 16)),
               Spec("c", "int8", (1, 16))]
    ops = [OpSpec("RELU", ["x"], ["a"]), OpSpec("ABS", ["a"], ["b"]), OpSpec("RELU", ["b"], ["c"])]
    report = analyze(write_tflite(tmp_path / "m.tflite", tensors, ops, ["x"], ["c"]))
    assert [v.on_edgetpu for v in report.ops] == [True, False, False]
    assert report.ops[2].supported and report.ops[2].reasons == ("after the first CPU fallback",)
    assert report.first_fallback == 1 and report.compilable
    assert "falls back to the CPU from op 1 ABS (unsupported op ABS) onward" in report.summary()


@pytest.mark.parametrize(("options", "reason"), [
    ({"dilationHFactor": 2, "dilationWFactor": 1}, "different dilation in x and y"),
    ({"dilationHFactor": 1, "dilationWFactor": 1, "fusedActivationFunction": 1}, None),
])
def test_conv_dilation_rule(tmp_path: Path, options: dict, reason: str | None) -> None:
    tensors = [Spec("x", "int8", (1, 8, 8, 3)), Spec("w", "int8", (4, 3, 3, 3), np.ones((4, 3, 3, 3))),
               Spec("b", "int32", (4,), np.zeros(4)), Spec("y", "int8", (1, 8, 8, 4))]
    path = write_tflite(tmp_path / "m.tflite", tensors, [OpSpec("CONV_2D", ["x", "w", "b"], ["y"], options)],
                        ["x"], ["y"])
    verdict = analyze(path).ops[0]
    assert verdict.on_edgetpu == (reason is None)
    if reason:
        assert any(reason in r for r in verdict.reasons)


def test_pooling_with_a_fused_activation_is_refused(tmp_path: Path) -> None:
    tensors = [Spec("x", "int8", (1, 8, 8, 3)), Spec("y", "int8", (1, 4, 4, 3))]
    ops = [OpSpec("MAX_POOL_2D", ["x"], ["y"], {"fusedActivationFunction": 3, "filterWidth": 2, "filterHeight": 2,
                                                  "strideW": 2, "strideH": 2})]
    verdict = analyze(write_tflite(tmp_path / "m.tflite", tensors, ops, ["x"], ["y"])).ops[0]
    assert any("fused activation RELU6" in r for r in verdict.reasons)


def test_mean_over_the_batch_axis_is_refused_and_over_space_is_mapped(tmp_path: Path) -> None:
    def mean(axes: list[int]):
        tensors = [Spec("x", "int8", (1, 4, 4, 8)), Spec("ax", "int32", (len(axes),), np.array(axes)),
                   Spec("y", "int8", (1, 8))]
        path = write_tflite(tmp_path / f"m{axes}.tflite", tensors, [OpSpec("MEAN", ["x", "ax"], ["y"])], ["x"], ["y"])
        return analyze(path).ops[0]

    assert mean([1, 2]).on_edgetpu
    assert "MEAN: operates on the batch dimension" in mean([0]).reasons


def test_report_json_round_trips(tmp_path: Path) -> None:
    data = analyze(int8_conv_net(tmp_path / "m.tflite")).to_dict()
    again = json.loads(json.dumps(data))
    assert again["mapped_ops"] == 3 and again["total_ops"] == 3 and again["compilable"] is True
    assert again["source"].startswith("https://coral.ai/docs/edgetpu/models-intro")


def test_a_file_that_is_not_tflite_is_a_value_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(ValueError, match="not a TFLite flatbuffer"):
        analyze(bad)
