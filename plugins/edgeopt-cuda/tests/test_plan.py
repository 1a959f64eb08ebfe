"""Which candidates the target offers, and what each records."""

from __future__ import annotations

from pathlib import Path

import pytest
from cuda_models import conv_net
from edgeopt.plugin import StaticInt8Options, TargetError, get_profile

from edgeopt_cuda.config import EpConfig
from edgeopt_cuda.fp16 import Fp16Options
from edgeopt_cuda.plan import MAX_BATCH, plan_candidates, trt_profiles


def _config(plan) -> EpConfig:  # noqa: ANN001
    assert plan.passes[-1].name == "ep-config"
    return EpConfig.from_params(plan.passes[-1].params)


def test_auto_without_tensorrt_is_fp32_tf32_fp16(conv_graph, h100) -> None:
    plans = plan_candidates(conv_graph, h100, "auto", tensorrt=False)
    assert [(p.precision, p.label) for p in plans] == [
        ("fp32", "fp32 (CUDA EP, TF32 off)"),
        ("tf32", "tf32 tensor cores (CUDA EP use_tf32)"),
        ("fp16", "fp16 converted, fp32 I/O (CUDA EP)"),
    ]
    fp32, tf32, fp16 = (_config(p) for p in plans)
    assert fp32 == EpConfig(provider="cuda", tf32=False, cuda_graph=True)
    assert tf32.tf32 and fp16 == fp32
    assert plans[2].passes[0].name == "fp16-convert"
    assert Fp16Options.from_params(plans[2].passes[0].params) == Fp16Options(
        op_block_list=Fp16Options().blocked_ops()
    )


def test_auto_with_tensorrt_adds_trt_and_int8(conv_graph, h100) -> None:
    plans = plan_candidates(conv_graph, h100, "auto", tensorrt=True)
    assert [p.precision for p in plans] == ["fp32", "tf32", "tf32", "fp16", "fp16", "int8", "int8", "int8"]
    assert plans[0].precision == "fp32"  # fp32 first, as the hook contract asks
    trt_fp16 = _config(plans[4])
    assert (trt_fp16.provider, trt_fp16.fp16, trt_fp16.int8) == ("tensorrt", True, False)
    int8 = plans[5:]
    for plan, fp16_fallback in zip(int8, (True, True, False), strict=True):
        quant, ep = plan.passes
        options = StaticInt8Options.from_params(quant.params)
        assert quant.name == "quantize-static"
        assert (options.activation_type, options.weight_type) == ("int8", "int8")
        assert options.symmetric_activation and options.per_channel and not options.reduce_range
        config = _config(plan)
        assert (config.provider, config.int8, config.fp16) == ("tensorrt", True, fp16_fallback)
    assert StaticInt8Options.from_params(int8[1].passes[0].params).calibrate_method == "percentile"
    assert int8[0].label == "int8 QDQ per-channel minmax symmetric, fp16 fallback (TensorRT)"


@pytest.mark.parametrize(
    ("precision", "count", "tensorrt"), [("fp32", 1, True), ("tf32", 2, True), ("fp16", 2, True), ("fp16", 1, False)]
)
def test_one_precision_gives_only_its_candidates(conv_graph, h100, precision, count, tensorrt) -> None:
    plans = plan_candidates(conv_graph, h100, precision, tensorrt=tensorrt)
    assert len(plans) == count and {p.precision for p in plans} == {precision}


def test_int8_needs_tensorrt_and_says_why(conv_graph, h100) -> None:
    with pytest.raises(TargetError, match="needs ONNX Runtime's TensorRT execution provider: libnvinfer.so.10") as info:
        plan_candidates(conv_graph, h100, "int8", tensorrt=False, tensorrt_reason="libnvinfer.so.10 is missing")
    assert "TensorRT 10" in info.value.hint


def test_cpu_device_and_unknown_precision_are_refused(conv_graph, h100) -> None:
    with pytest.raises(TargetError, match="runs on GPU device profiles"):
        plan_candidates(conv_graph, get_profile("x86-avx2-2core"), "fp32", tensorrt=False)
    with pytest.raises(TargetError, match="cannot compile precision 'int4'"):
        plan_candidates(conv_graph, h100, "int4", tensorrt=True)


def test_real_gpu_profiles_plan(conv_graph) -> None:
    for name in ("nvidia-h100", "jetson-orin-nano"):
        assert plan_candidates(conv_graph, get_profile(name), "auto", tensorrt=False)


def test_dynamic_batch_gets_a_tensorrt_profile_and_no_cuda_graph(tmp_path: Path, h100) -> None:
    graph = conv_net(tmp_path / "dyn.onnx", batch="N")
    profiles, note = trt_profiles(graph)
    assert note is None
    (profile,) = profiles
    assert (profile.name, profile.min, profile.opt, profile.max) == (
        "x", (1, 3, 16, 16), (1, 3, 16, 16), (MAX_BATCH, 3, 16, 16)
    )
    plans = plan_candidates(graph, h100, "auto", tensorrt=True)
    assert not any(_config(p).cuda_graph for p in plans)
    trt = [p for p in plans if _config(p).provider == "tensorrt"]
    assert trt and all(_config(p).profiles == (profile,) for p in trt)
    assert all(any("TensorRT optimization profile: x min [1, 3, 16, 16] opt" in n for n in p.notes) for p in trt)
    assert all(any("CUDA graphs are off" in n for n in p.notes) for p in plans)


def test_other_dynamic_dims_get_no_profile_and_say_so(tmp_path: Path, h100) -> None:
    graph = conv_net(tmp_path / "dyn.onnx", batch="N", height="H")
    profiles, note = trt_profiles(graph)
    assert profiles == () and note is not None and "dynamic dimensions besides the batch" in note
    plans = plan_candidates(graph, h100, "int8", tensorrt=True)
    assert all(_config(p).profiles == () for p in plans)
    assert all(note in p.notes for p in plans)


def test_static_graph_needs_no_profile(conv_graph) -> None:
    assert trt_profiles(conv_graph) == ((), None)
