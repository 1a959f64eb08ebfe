"""bf16 on OpenVINO: planned only where the device computes it, carried in the artifact, never implied."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from edgeopt.plugin import CompileError, PassSpec, Plan, TargetError
from ov_models import cpu_profile, reference_outputs, samples_for

import edgeopt_openvino.plan as ov_plan
from edgeopt_openvino.compile import INFERENCE_FILE, compile_plan, read_compute
from edgeopt_openvino.devices import computes_bf16, target_spec
from edgeopt_openvino.plan import CONVERT, plan_candidates
from edgeopt_openvino.runner import OpenVinoRunner, inference_precision

CPU = target_spec("openvino")
BF16_ISA = ("avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16")


@pytest.fixture
def bf16_cpu():
    return cpu_profile("bf16-test", BF16_ISA, cores=2)


@pytest.fixture
def ov_reports_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ov_plan, "computes_bf16", lambda ov_device: True)


def test_bf16_is_planned_where_the_cpu_computes_it(conv_graph, bf16_cpu, ov_reports_bf16) -> None:
    plans = plan_candidates(conv_graph, CPU, bf16_cpu, "auto")
    (bf16,) = [p for p in plans if p.precision == "bf16"]
    assert bf16.passes == (PassSpec(CONVERT, {"compress_to_fp16": False, "inference_precision": "bf16"}),)
    int8 = [p for p in plans if p.precision == "int8"]
    mixed = [p for p in int8 if p.passes[0].params.get("inference_precision") == "bf16"]
    assert len(mixed) == 1 and "bf16 float parts" in mixed[0].label
    assert mixed[0].passes[1:] == int8[0].passes[1:]  # the first int8 variant, float parts in bf16
    assert [p.label for p in plan_candidates(conv_graph, CPU, bf16_cpu, "bf16")] == [bf16.label]


def test_bf16_is_not_planned_without_native_bf16(conv_graph, avx2, vnni, ov_reports_bf16) -> None:
    for device in (avx2, vnni):  # OpenVINO here says BF16, but the device profile has no bf16 dot products
        plans = plan_candidates(conv_graph, CPU, device, "auto")
        assert not any(p.precision == "bf16" or "bf16" in p.label for p in plans)
        with pytest.raises(TargetError, match="no BF16 compute"):
            plan_candidates(conv_graph, CPU, device, "bf16")


def test_requested_hint_wins_and_is_checked_against_the_device() -> None:
    assert inference_precision("int8", "CPU", ("FP32", "INT8", "BF16"), "bf16") == "bf16"
    assert inference_precision("bf16", "CPU", ("FP32", "BF16")) == "bf16"
    with pytest.raises(CompileError, match="does not compute in bf16"):
        inference_precision("bf16", "CPU", ("FP32", "INT8"))
    with pytest.raises(CompileError, match="unknown OpenVINO inference precision"):
        inference_precision("fp32", "CPU", ("FP32",), "bf8")


def test_compile_writes_the_hint_into_the_artifact(conv_graph, tmp_path: Path) -> None:
    plan = Plan("openvino", "bf16", (PassSpec(CONVERT, {"compress_to_fp16": False, "inference_precision": "bf16"}),),
                "bf16")
    compiled = compile_plan(conv_graph, plan, CPU, samples_for(conv_graph, n=0), tmp_path / "out")
    assert INFERENCE_FILE in compiled.files and read_compute(compiled) == "bf16"
    assert compiled.passes[0].params["inference_precision"] == "bf16"
    fp32 = compile_plan(conv_graph, Plan("openvino", "fp32", (PassSpec(CONVERT, {}),), "fp32"), CPU,
                        samples_for(conv_graph, n=0), tmp_path / "fp32")
    assert INFERENCE_FILE not in fp32.files and read_compute(fp32) is None
    (tmp_path / "out" / INFERENCE_FILE).write_text('{"INFERENCE_PRECISION_HINT": "f8"}')
    with pytest.raises(CompileError, match="unknown inference precision"):
        read_compute(compiled)


@pytest.mark.skipif(not computes_bf16("CPU"), reason="OpenVINO reports no BF16 compute on this CPU")
def test_bf16_runs_close_to_fp32_on_this_cpu(conv_graph, tmp_path: Path) -> None:
    plan = Plan("openvino", "bf16", (PassSpec(CONVERT, {"compress_to_fp16": False, "inference_precision": "bf16"}),),
                "bf16")
    compiled = compile_plan(conv_graph, plan, CPU, samples_for(conv_graph, n=0), tmp_path / "out")
    runner = OpenVinoRunner(compiled.model_path, precision="bf16", compute=read_compute(compiled))
    try:
        assert runner.config["INFERENCE_PRECISION_HINT"] == "bf16"
        feeds = samples_for(conv_graph, n=1, seed=5).batches(1)[0]
        (got,), (want,) = runner.run(feeds), reference_outputs(conv_graph, feeds)
    finally:
        runner.close()
    rel = float(np.abs(got - want).max() / (np.abs(want).max() + 1e-12))
    assert 0 < rel < 0.05  # bf16 keeps 8 mantissa bits: close to fp32, but not bit-identical
