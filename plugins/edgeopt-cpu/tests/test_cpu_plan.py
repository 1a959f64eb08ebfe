"""Plans follow the device's ISA and the graph's op mix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cpu_models import cpu_profile, no_weights_net
from edgeopt.plugin import DynamicInt8Options, StaticInt8Options, TargetError

from edgeopt_cpu.plan import plan_candidates


def _static(plan) -> StaticInt8Options:  # noqa: ANN001
    (spec,) = plan.passes
    assert spec.name == "quantize-static"
    return StaticInt8Options.from_params(json.loads(json.dumps(dict(spec.params))))


def test_avx2_int8_uses_reduce_range_first_then_u8u8(conv_graph, avx2) -> None:
    plans = plan_candidates(conv_graph, avx2, "int8")
    assert [p.precision for p in plans] == ["int8"] * 3
    first, second, third = (_static(p) for p in plans)
    assert (first.activation_type, first.weight_type, first.per_channel, first.reduce_range) == (
        "uint8",
        "int8",
        True,
        True,
    )
    assert first.calibrate_method == "minmax"
    assert (second.activation_type, second.weight_type, second.reduce_range) == ("uint8", "uint8", False)
    assert third.calibrate_method == "percentile" and third.reduce_range
    assert plans[0].label == "int8 static per-channel minmax reduce-range (AVX2)"
    assert "u8u8" in plans[1].label
    assert all(p.threads == avx2.cores for p in plans)


def test_vnni_int8_keeps_full_range_weights(conv_graph, vnni, avx2) -> None:
    plans = plan_candidates(conv_graph, vnni, "int8")
    first = _static(plans[0])
    assert (first.activation_type, first.weight_type, first.per_channel, first.reduce_range) == (
        "uint8",
        "int8",
        True,
        False,
    )
    assert not any(_static(p).reduce_range for p in plans)
    assert plans[0].label == "int8 static per-channel minmax (VNNI)"
    assert plans[0].threads == 4
    assert plans[0].passes != plan_candidates(conv_graph, avx2, "int8")[0].passes


def test_arm_prefers_s8s8_and_unknown_isa_stays_safe(conv_graph) -> None:
    arm = _static(plan_candidates(conv_graph, cpu_profile("pi", ("neon", "dotprod"), cores=4), "int8")[0])
    assert (arm.activation_type, arm.weight_type, arm.reduce_range) == ("int8", "int8", False)
    generic = plan_candidates(conv_graph, cpu_profile("old", ()), "int8")
    assert _static(generic[0]).reduce_range
    assert generic[0].label.endswith("(generic CPU)")


def test_auto_on_conv_net_skips_dynamic(conv_graph, avx2) -> None:
    plans = plan_candidates(conv_graph, avx2, "auto")
    assert [p.precision for p in plans] == ["fp32", "int8", "int8", "int8"]
    assert plans[0].passes[0].name == "ort-optimize"
    assert dict(plans[0].passes[0].params) == {"level": "extended"}


def test_auto_on_matmul_net_adds_dynamic_last(mlp_graph, avx2) -> None:
    plans = plan_candidates(mlp_graph, avx2, "auto")
    assert plans[0].precision == "fp32" and plans[-1].precision == "int8-dynamic"
    options = DynamicInt8Options.from_params(plans[-1].passes[0].params)
    assert options.reduce_range  # AVX2 without VNNI
    assert "Conv" not in options.op_types


def test_explicit_dynamic_and_fp32(conv_graph, vnni) -> None:
    (dynamic,) = plan_candidates(conv_graph, vnni, "int8-dynamic")
    assert dynamic.passes[0].name == "quantize-dynamic"
    assert not DynamicInt8Options.from_params(dynamic.passes[0].params).reduce_range
    (fp32,) = plan_candidates(conv_graph, vnni, "fp32")
    assert fp32.precision == "fp32"


def test_auto_without_weighted_ops_plans_fp32_only(tmp_path: Path, avx2) -> None:
    graph = no_weights_net(tmp_path / "model.onnx")
    (only,) = plan_candidates(graph, avx2, "auto")
    assert only.precision == "fp32"
    assert "nothing to speed up" in only.notes[0]


def test_unknown_precision_is_a_target_error(conv_graph, avx2) -> None:
    with pytest.raises(TargetError, match="fp16") as info:
        plan_candidates(conv_graph, avx2, "fp16")
    assert "int8-dynamic" in info.value.hint


def test_threads_default_to_physical_cores(conv_graph) -> None:
    from edgeopt.plugin import physical_cores

    device = cpu_profile("no-cores", ("avx2",), cores=0)
    assert plan_candidates(conv_graph, device, "fp32")[0].threads == physical_cores()


@pytest.mark.parametrize("precision", ["int8", "int8-dynamic"])
def test_explicit_int8_without_weighted_ops_says_there_is_nothing_to_quantize(tmp_path: Path, avx2, precision) -> None:
    graph = no_weights_net(tmp_path / "g.onnx")
    with pytest.raises(TargetError, match="nothing to quantize") as info:
        plan_candidates(graph, avx2, precision)
    assert "--precision fp32" in info.value.hint
