"""Compile every kind of plan for real (on CPU), and check what lands in the work directory."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from cuda_models import calibration_for, conv_net, cpu_outputs, cpu_session, relative_error
from edgeopt.plugin import CompileError, PassSpec, Plan
from onnx import numpy_helper

from edgeopt_cuda.compile import compile_plan, split_plan
from edgeopt_cuda.config import CONFIG_FILE, EpConfig, read_config
from edgeopt_cuda.plan import plan_candidates
from edgeopt_cuda.status import CudaStatus

NO_GPU = CudaStatus(False, "no NVIDIA GPU/driver found (test)")


def _by_label(graph, device, word: str) -> Plan:  # noqa: ANN001
    return next(p for p in plan_candidates(graph, device, "auto", tensorrt=True) if word in p.label)


def test_fp32_plan_copies_the_graph_and_stores_its_settings(conv_graph, h100, tmp_path: Path) -> None:
    plan = plan_candidates(conv_graph, h100, "fp32", tensorrt=False)[0]
    compiled = compile_plan(conv_graph, plan, calibration_for(conv_graph), tmp_path / "out", status=NO_GPU)
    assert compiled.files == ("model.onnx", CONFIG_FILE)
    assert compiled.model_path.read_bytes() == conv_graph.path.read_bytes()
    assert read_config(compiled.directory, precision="int8") == EpConfig()  # the file wins over the default
    assert compiled.passes == (PassSpec("ep-config", EpConfig().to_params()),)
    assert compiled.runtime.startswith("onnxruntime ") and compiled.runtime.endswith("(CUDAExecutionProvider)")
    assert "runs on CUDAExecutionProvider (use_tf32=False, CUDA graph requested)" in compiled.notes
    assert any("not loaded on a GPU at compile time" in n for n in compiled.notes)


def test_fp16_plan_writes_an_fp16_model_and_reports_it(conv_graph, h100, tmp_path: Path) -> None:
    plan = plan_candidates(conv_graph, h100, "fp16", tensorrt=False)[0]
    compiled = compile_plan(conv_graph, plan, calibration_for(conv_graph), tmp_path / "out")
    convert, ep = compiled.passes
    assert convert.name == "fp16-convert" and ep.name == "ep-config"
    params = dict(convert.params)
    assert params["fp16_nodes"] == 8 and params["keep_io_types"] is True and "ReduceSum" in params["op_block_list"]
    assert any(n.startswith("fp16: 8 nodes in fp16, 0 kept in fp32") for n in compiled.notes)
    inits = onnx.load(str(compiled.model_path)).graph.initializer
    assert {i.data_type for i in inits} == {onnx.TensorProto.FLOAT16}
    feeds = calibration_for(conv_graph, n=1, seed=7).batches(1)[0]
    assert relative_error(cpu_outputs(conv_graph.path, feeds)[0], cpu_outputs(compiled.model_path, feeds)[0]) < 1e-2


def test_int8_plan_is_a_symmetric_s8s8_qdq_model_for_tensorrt(conv_graph, h100, tmp_path: Path) -> None:
    plan = _by_label(conv_graph, h100, "minmax symmetric, fp16 fallback")
    compiled = compile_plan(conv_graph, plan, calibration_for(conv_graph, n=32), tmp_path / "out")
    quant, ep = compiled.passes
    assert dict(quant.params)["quantized_nodes"] == dict(quant.params)["quantizable_nodes"] == 3
    assert dict(quant.params)["ort"]["activation_type"] == "QInt8"
    assert dict(quant.params)["ort"]["extra_options"]["ActivationSymmetric"] is True
    config = EpConfig.from_params(ep.params)
    assert (config.provider, config.int8, config.fp16) == ("tensorrt", True, True)
    assert compiled.runtime.endswith("(TensorrtExecutionProvider)")
    model = onnx.load(str(compiled.model_path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)  # int8, zero point 0
    # Q/DQ executed literally (fake quantization) is the arithmetic TensorRT's explicit int8 performs.
    reference, fake_quant = cpu_session(conv_graph.path), cpu_session(compiled.model_path, optimize=False)
    for seed in (11, 12, 13):
        feeds = calibration_for(conv_graph, n=1, seed=seed).batches(1)[0]
        want, got = reference.run(None, feeds)[0], fake_quant.run(None, feeds)[0]
        assert 0 < relative_error(want, got) < 0.03


def test_tensorrt_plan_is_refused_where_tensorrt_does_not_work(conv_graph, h100, tmp_path: Path) -> None:
    plan = _by_label(conv_graph, h100, "trt_fp16_enable")
    status = CudaStatus(True, "", tensorrt=False, tensorrt_reason="libnvinfer.so.10 is missing")
    with pytest.raises(CompileError, match="TensorRT EP is not usable here: libnvinfer.so.10 is missing"):
        compile_plan(conv_graph, plan, calibration_for(conv_graph), tmp_path / "out", status=status)


@pytest.mark.parametrize(
    ("passes", "message"),
    [
        ((PassSpec("ep-config", EpConfig(provider="tensorrt", int8=True).to_params()),), "needs a QDQ model"),
        (
            (
                PassSpec("quantize-static", {"activation_type": "int8", "symmetric_activation": True}),
                PassSpec("ep-config", EpConfig().to_params()),
            ),
            "run on the TensorRT EP",
        ),
        ((PassSpec("ep-config", EpConfig().to_params()), PassSpec("fp16-convert", {})), "comes last"),
    ],
)
def test_inconsistent_plans_are_refused(passes, message) -> None:  # noqa: ANN001
    with pytest.raises(CompileError, match=message):
        split_plan(Plan("cuda", "int8", passes))


def test_uint8_or_asymmetric_activations_are_refused_for_tensorrt(conv_graph, tmp_path: Path) -> None:
    plan = Plan(
        "cuda",
        "int8",
        (
            PassSpec("quantize-static", {"activation_type": "uint8"}),
            PassSpec("ep-config", EpConfig(provider="tensorrt", int8=True).to_params()),
        ),
    )
    with pytest.raises(CompileError, match="int8 activations with symmetric ranges"):
        compile_plan(conv_graph, plan, calibration_for(conv_graph), tmp_path / "out")


def test_plan_without_ep_config_gets_the_precision_default(conv_graph, tmp_path: Path) -> None:
    compiled = compile_plan(conv_graph, Plan("cuda", "fp32"), calibration_for(conv_graph), tmp_path / "out")
    assert compiled.passes == (PassSpec("ep-config", EpConfig().to_params()),)
    assert json.loads((compiled.directory / CONFIG_FILE).read_text()) == EpConfig().to_params()


def test_unknown_pass_is_refused(conv_graph, tmp_path: Path) -> None:
    plan = Plan("cuda", "fp32", (PassSpec("prune", {}), PassSpec("ep-config", EpConfig().to_params())))
    with pytest.raises(CompileError, match="no pass 'prune'"):
        compile_plan(conv_graph, plan, calibration_for(conv_graph), tmp_path / "out")


def test_compile_writes_only_its_files_and_leaves_cwd_and_graph_alone(
    conv_graph, h100, tmp_path: Path, monkeypatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = hashlib.sha256(conv_graph.path.read_bytes()).hexdigest()
    graph_dir = sorted(p.name for p in conv_graph.path.parent.iterdir())
    for index, plan in enumerate(plan_candidates(conv_graph, h100, "auto", tensorrt=True)):
        out = tmp_path / f"out{index}"
        compile_plan(conv_graph, plan, calibration_for(conv_graph), out, status=NO_GPU)
        assert sorted(p.name for p in out.iterdir()) == [CONFIG_FILE, "model.onnx"]
    assert list(cwd.iterdir()) == []
    assert hashlib.sha256(conv_graph.path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in conv_graph.path.parent.iterdir()) == graph_dir


def test_dynamic_batch_profile_is_recorded_in_the_passes(tmp_path: Path, h100) -> None:
    graph = conv_net(tmp_path / "dyn.onnx", batch="N")
    plan = _by_label(graph, h100, "trt_fp16_enable")
    compiled = compile_plan(graph, plan, calibration_for(graph), tmp_path / "out")
    (ep,) = compiled.passes
    assert dict(ep.params)["profiles"] == [{"name": "x", "min": [1, 3, 16, 16], "opt": [1, 3, 16, 16],
                                            "max": [32, 3, 16, 16]}]
    assert any(n.startswith("TensorRT optimization profile: x min [1, 3, 16, 16]") for n in compiled.notes)
