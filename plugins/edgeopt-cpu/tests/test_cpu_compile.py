"""Compile every kind of plan for real, run it, and compare with the float model."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import pytest
from cpu_models import calibration_for, conv_net, cosine, no_weights_net, reference_outputs
from edgeopt.plugin import CompileError, PassSpec, Plan, RunSettings

from edgeopt_cpu.compile import compile_plan
from edgeopt_cpu.plan import plan_candidates
from edgeopt_cpu.runner import OrtCpuRunner


def _run(compiled, feeds):  # noqa: ANN001, ANN202
    runner = OrtCpuRunner(compiled.model_path, threads=1)
    try:
        return runner.run(feeds)
    finally:
        runner.close()


def _ops(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_fp32_matches_the_graph(conv_graph, avx2, tmp_path: Path) -> None:
    (plan,) = plan_candidates(conv_graph, avx2, "fp32")
    compiled = compile_plan(conv_graph, plan, calibration_for(conv_graph), tmp_path / "out")
    assert compiled.files == ("model.onnx",)
    assert compiled.runtime.startswith("onnxruntime ")
    assert compiled.passes == (PassSpec("ort-optimize", {"level": "extended"}),)
    feeds = calibration_for(conv_graph, n=1, seed=9).batches(1)[0]
    (got,) = _run(compiled, feeds)
    (want,) = reference_outputs(conv_graph, feeds)
    assert got.shape == want.shape == (1, 10)
    assert abs(got - want).max() < 1e-4


@pytest.mark.parametrize("device_name", ["avx2", "vnni"])
@pytest.mark.parametrize("variant", [0, 1, 2])
def test_int8_static_variants_quantize_and_stay_close(conv_graph, device_name, variant, request, tmp_path) -> None:
    device = request.getfixturevalue(device_name)
    plan = plan_candidates(conv_graph, device, "int8")[variant]
    compiled = compile_plan(conv_graph, plan, calibration_for(conv_graph), tmp_path / "out")
    (spec,) = compiled.passes
    params = dict(spec.params)
    assert spec.name == "quantize-static"
    assert params["quantized_nodes"] == params["quantizable_nodes"] == 3
    assert params["quantized_by_op"] == {"Conv": 2, "Gemm": 1}
    assert params["weight_bytes_after"] < params["weight_bytes_before"] / 2
    assert params["ort"]["quant_format"] == "QDQ"
    assert params["reduce_range"] == dict(plan.passes[0].params)["reduce_range"]
    assert {"QuantizeLinear", "DequantizeLinear"} <= _ops(compiled.model_path)
    assert any("3/3 weighted nodes quantized" in n for n in compiled.notes)
    for seed in (11, 12, 13):
        feeds = calibration_for(conv_graph, n=1, seed=seed).batches(1)[0]
        (got,) = _run(compiled, feeds)
        (want,) = reference_outputs(conv_graph, feeds)
        assert cosine(got, want) > 0.99


def test_int8_dynamic_on_matmul_net(mlp_graph, avx2, tmp_path: Path) -> None:
    (plan,) = plan_candidates(mlp_graph, avx2, "int8-dynamic")
    compiled = compile_plan(mlp_graph, plan, calibration_for(mlp_graph), tmp_path / "out")
    params = dict(compiled.passes[0].params)
    assert params["quantized_nodes"] == params["quantizable_nodes"] == 3
    assert "MatMulInteger" in _ops(compiled.model_path)
    feeds = calibration_for(mlp_graph, n=1, seed=5).batches(1)[0]
    (got,) = _run(compiled, feeds)
    (want,) = reference_outputs(mlp_graph, feeds)
    assert cosine(got, want) > 0.99


def test_nothing_quantized_is_a_compile_error(tmp_path: Path, avx2) -> None:
    """The planner refuses int8 for such a graph already; compile checks again for plans made elsewhere."""
    graph = no_weights_net(tmp_path / "model.onnx")
    plan = Plan("cpu", "int8", (PassSpec("quantize-static", {"reduce_range": True}),))
    with pytest.raises(CompileError, match="no Conv/ConvTranspose/MatMul/Gemm node") as info:
        compile_plan(graph, plan, calibration_for(graph), tmp_path / "out")
    assert "fp32" in info.value.hint
    assert list((tmp_path / "out").iterdir()) == []


def test_excluding_every_weighted_node_is_refused(conv_graph, avx2, tmp_path: Path) -> None:
    params = {"nodes_to_exclude": ["conv1", "conv2", "fc"], "reduce_range": True}
    plan = Plan("cpu", "int8", (PassSpec("quantize-static", params),))
    with pytest.raises(CompileError, match="changed nothing"):
        compile_plan(conv_graph, plan, calibration_for(conv_graph), tmp_path / "out")


def test_compile_writes_only_the_model_and_leaves_cwd_and_graph_alone(
    conv_graph, avx2, tmp_path: Path, monkeypatch
) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = hashlib.sha256(conv_graph.path.read_bytes()).hexdigest()
    graph_dir = sorted(p.name for p in conv_graph.path.parent.iterdir())
    for index, plan in enumerate(plan_candidates(conv_graph, avx2, "auto")):
        out = tmp_path / f"out{index}"
        compile_plan(conv_graph, plan, calibration_for(conv_graph), out)
        assert sorted(p.name for p in out.iterdir()) == ["model.onnx"]
    assert list(cwd.iterdir()) == []
    assert hashlib.sha256(conv_graph.path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in conv_graph.path.parent.iterdir()) == graph_dir


def test_plan_without_passes_copies_the_graph(conv_graph, tmp_path: Path) -> None:
    compiled = compile_plan(conv_graph, Plan("cpu", "fp32"), calibration_for(conv_graph), tmp_path / "out")
    assert compiled.model_path.read_bytes() == conv_graph.path.read_bytes()
    assert compiled.passes == ()


def test_unknown_pass_and_bad_params_are_compile_errors(conv_graph, tmp_path: Path) -> None:
    data = calibration_for(conv_graph)
    with pytest.raises(CompileError, match="no pass 'prune'"):
        compile_plan(conv_graph, Plan("cpu", "fp32", (PassSpec("prune"),)), data, tmp_path / "a")
    with pytest.raises(CompileError, match="ort-optimize"):
        compile_plan(
            conv_graph, Plan("cpu", "fp32", (PassSpec("ort-optimize", {"level": "max"}),)), data, tmp_path / "b"
        )
    with pytest.raises(CompileError, match="unknown StaticInt8Options option"):
        compile_plan(
            conv_graph, Plan("cpu", "int8", (PassSpec("quantize-static", {"PerChannel": True}),)), data, tmp_path / "c"
        )


def test_dynamic_batch_graph_compiles_and_runs_any_batch(tmp_path: Path, avx2) -> None:
    graph = conv_net(tmp_path / "model.onnx", batch="N")
    plan = plan_candidates(graph, avx2, "int8")[0]
    compiled = compile_plan(graph, plan, calibration_for(graph), tmp_path / "out")
    runner = OrtCpuRunner(compiled.model_path, threads=2, batch=4)
    feeds = {"x": calibration_for(graph, n=4).arrays["x"]}
    (got,) = runner.run(feeds)
    (want,) = reference_outputs(graph, feeds)
    assert got.shape == (4, 10)
    assert cosine(got, want) > 0.99
    assert RunSettings(batch=4).batch == 4
