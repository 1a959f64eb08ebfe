"""Candidate plans: which precisions and int8 variants, in which order, for which graphs and CPUs."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgeopt.plugin import TargetError
from ov_models import attention, conv_net, no_weights_net

from edgeopt_openvino.devices import computes_fp16, target_spec
from edgeopt_openvino.options import NncfInt8Options
from edgeopt_openvino.plan import CONVERT, QUANTIZE, graph_traits, plan_candidates

CPU = target_spec("openvino")


def _options(plan) -> NncfInt8Options:
    (spec,) = [p for p in plan.passes if p.name == QUANTIZE]
    return NncfInt8Options.from_params(spec.params)


def test_fp32_and_fp16_plans(conv_graph, avx2) -> None:
    (fp32,) = plan_candidates(conv_graph, CPU, avx2, "fp32")
    (fp16,) = plan_candidates(conv_graph, CPU, avx2, "fp16")
    assert fp32.passes[0].name == CONVERT and fp32.passes[0].params == {"compress_to_fp16": False}
    assert fp16.passes[0].params == {"compress_to_fp16": True}
    assert fp32.threads == avx2.cores and fp32.target == "openvino"
    if not computes_fp16("CPU"):
        assert "f32 compute" in fp16.label and "run in f32" in fp16.notes[0]


def test_avx2_int8_starts_with_7bit_weights_then_nncf_defaults(conv_graph, avx2) -> None:
    plans = plan_candidates(conv_graph, CPU, avx2, "int8")
    assert [p.precision for p in plans] == ["int8", "int8"]  # a ReLU net: no mixed-preset variant
    first, defaults = (_options(p) for p in plans)
    assert (first.preset, first.overflow_fix, first.calibration) == ("performance", "enable", "minmax")
    assert "7-bit" in plans[0].label and "AVX2" in plans[0].label
    assert defaults == NncfInt8Options(target_device="CPU")  # nncf.quantize's defaults, for CPU
    assert all(p.passes[0].name == CONVERT for p in plans)


def test_vnni_keeps_8bit_weights(conv_graph, vnni) -> None:
    first = _options(plan_candidates(conv_graph, CPU, vnni, "int8")[0])
    assert first.overflow_fix == "first_layer_only"
    assert "VNNI" in plan_candidates(conv_graph, CPU, vnni, "int8")[0].label


def test_non_relu_activations_add_the_mixed_preset(tmp_path: Path, avx2) -> None:
    graph = conv_net(tmp_path / "tanh.onnx", activation="Tanh")
    presets = [_options(p).preset for p in plan_candidates(graph, CPU, avx2, "int8")]
    assert presets == ["performance", "performance", "mixed"]


def test_attention_is_detected_from_the_op_graph(tmp_path: Path, conv_graph, avx2) -> None:
    graph = attention(tmp_path / "attn.onnx")
    traits = graph_traits(graph)
    assert traits.is_transformer and traits.activation_matmuls == 2
    assert not graph_traits(conv_graph).is_transformer
    plans = plan_candidates(graph, CPU, avx2, "int8")
    assert [(_options(p).model_type, _options(p).preset) for p in plans] == [
        ("transformer", "mixed"),
        ("transformer", "performance"),
    ]
    assert "attention graph" in plans[0].notes[0]


def test_auto_lists_fp32_first_then_int8_then_fp16(conv_graph, avx2) -> None:
    plans = plan_candidates(conv_graph, CPU, avx2, "auto")
    assert [p.precision for p in plans] == ["fp32", "int8", "int8", "fp16"]


def test_auto_without_weighted_ops_plans_fp32_only(tmp_path: Path, avx2) -> None:
    (plan,) = plan_candidates(no_weights_net(tmp_path / "nw.onnx"), CPU, avx2, "auto")
    assert plan.precision == "fp32" and "nothing to speed up" in plan.notes[0]


def test_explicit_int8_without_weighted_ops_says_there_is_nothing_to_quantize(tmp_path: Path, avx2) -> None:
    with pytest.raises(TargetError, match="nothing to quantize") as info:
        plan_candidates(no_weights_net(tmp_path / "nw.onnx"), CPU, avx2, "int8")
    assert "--precision fp32" in info.value.hint and "OpenVINO" in info.value.hint


def test_undeclared_precision_is_refused(conv_graph, avx2) -> None:
    with pytest.raises(TargetError, match="int8-dynamic"):
        plan_candidates(conv_graph, CPU, avx2, "int8-dynamic")


def test_plans_round_trip_their_options(conv_graph, avx2) -> None:
    for plan in plan_candidates(conv_graph, CPU, avx2, "int8"):
        options = _options(plan)
        assert NncfInt8Options.from_params(options.to_params()) == options
