"""Compiling plans into OpenVINO IR: files, fp16 size, NNCF int8 and the plan fields it honours."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from edgeopt.plugin import CompileError, PassSpec, Plan
from edgeopt.testing import confined
from ov_models import no_weights_net, reference_outputs, relative_error, reshape_net, samples_for

import edgeopt_openvino.compile as ov_compile
from edgeopt_openvino.build import quantized_ops
from edgeopt_openvino.compile import compile_plan
from edgeopt_openvino.devices import target_spec
from edgeopt_openvino.plan import plan_candidates
from edgeopt_openvino.runner import OpenVinoRunner

CPU = target_spec("openvino")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(compiled, graph, *, seed: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    feeds = samples_for(graph, n=1, seed=seed).batches(1)[0]
    runner = OpenVinoRunner(compiled.model_path, precision=compiled.plan.precision)
    try:
        return list(runner.run(feeds)), reference_outputs(graph, feeds)
    finally:
        runner.close()


def _int8(graph, device, **fields) -> Plan:
    return replace(plan_candidates(graph, CPU, device, "int8")[0], **fields)


def test_fp32_writes_xml_and_bin_and_matches_onnx(conv_graph, avx2, tmp_path: Path) -> None:
    (plan,) = plan_candidates(conv_graph, CPU, avx2, "fp32")
    before = _sha(conv_graph.path)
    compiled = compile_plan(conv_graph, plan, CPU, samples_for(conv_graph), tmp_path / "out")
    assert compiled.model_file == "model.xml" and compiled.files == ("model.xml", "model.bin")
    assert all((compiled.directory / f).is_file() for f in compiled.files)
    assert compiled.runtime.startswith("openvino 20") and compiled.plan == plan
    assert [p.name for p in compiled.passes] == ["ov-convert"]
    assert _sha(conv_graph.path) == before
    (got,), (want,) = _run(compiled, conv_graph)
    assert relative_error(want, got) < 1e-5


def test_fp16_halves_the_weights(conv_graph, avx2, tmp_path: Path) -> None:
    sizes = {}
    for precision in ("fp32", "fp16"):
        (plan,) = plan_candidates(conv_graph, CPU, avx2, precision)
        compiled = compile_plan(conv_graph, plan, CPU, samples_for(conv_graph), tmp_path / precision)
        sizes[precision] = (compiled.directory / "model.bin").stat().st_size
        (got,), (want,) = _run(compiled, conv_graph)
        assert relative_error(want, got) < 1e-2
    assert sizes["fp16"] < 0.6 * sizes["fp32"]


def test_int8_is_quantized_and_close(conv_graph, avx2, tmp_path: Path, in_process) -> None:
    compiled = compile_plan(conv_graph, _int8(conv_graph, avx2), CPU, samples_for(conv_graph, n=32), tmp_path / "q")
    (convert, quantize) = compiled.passes
    assert quantize.name == "nncf-quantize"
    assert quantize.params["fake_quantize_nodes"] > 0 and quantize.params["quantized_ops"] == 3
    assert quantize.params["overflow_fix"] == "enable" and quantize.params["subset_size"] == 32
    assert any(n.startswith("NNCF int8: 3/3 weighted ops quantized") for n in compiled.notes)
    (got,), (want,) = _run(compiled, conv_graph, seed=0)
    assert relative_error(want, got) < 0.1


def test_keep_fp32_leaves_that_node_unquantized(conv_graph, avx2, tmp_path: Path, in_process) -> None:
    import openvino as ov

    plan = _int8(conv_graph, avx2, keep_fp32=("conv1",))
    compiled = compile_plan(conv_graph, plan, CPU, samples_for(conv_graph, n=32), tmp_path / "keep")
    assert compiled.passes[1].params["nodes_to_exclude"] == ["conv1"]
    assert compiled.passes[1].params["quantized_ops"] == 2
    assert any(n.startswith("kept in float: conv1 -> ") and "conv1/WithoutBiases" in n for n in compiled.notes)
    model = ov.Core().read_model(str(compiled.model_path))
    conv1 = next(op for op in model.get_ops() if op.get_friendly_name() == "conv1/WithoutBiases")
    assert conv1.input_value(0).get_node().get_type_name() != "FakeQuantize"
    assert sum(quantized_ops(model).values()) == 2


def test_keep_fp32_with_an_unknown_node_fails(conv_graph, avx2, tmp_path: Path, in_process) -> None:
    with pytest.raises(CompileError, match="'no_such_node'.* not a node of the graph"):
        compile_plan(conv_graph, _int8(conv_graph, avx2, keep_fp32=("no_such_node",)), CPU, samples_for(conv_graph),
                     tmp_path / "bad")


def test_calibration_and_granularity_fields_change_the_build(conv_graph, avx2, tmp_path: Path, in_process) -> None:
    data = samples_for(conv_graph, n=32)
    built = {}
    for name, fields in {"base": {}, "entropy": {"calibration": "entropy"}, "percentile": {"calibration": "percentile"},
                         "per-tensor": {"granularity": "per-tensor"}}.items():
        compiled = compile_plan(conv_graph, _int8(conv_graph, avx2, **fields), CPU, data, tmp_path / name)
        params = compiled.passes[1].params
        for key, value in fields.items():
            assert params[key] == value
        built[name] = _sha(compiled.directory / "model.bin") + _sha(compiled.model_path)
    assert len(set(built.values())) == 4


def test_malformed_plans_fail_with_compile_error(conv_graph, avx2, tmp_path: Path) -> None:
    base = _int8(conv_graph, avx2)
    unknown = replace(base, passes=(base.passes[0], PassSpec("nncf-quantize", {"bits": 4})))
    with pytest.raises(CompileError, match="unknown nncf-quantize option"):
        compile_plan(conv_graph, unknown, CPU, samples_for(conv_graph), tmp_path / "a")
    with pytest.raises(CompileError, match="needs the 'nncf-quantize' pass"):
        compile_plan(conv_graph, replace(base, passes=base.passes[:1]), CPU, samples_for(conv_graph), tmp_path / "b")
    with pytest.raises(CompileError, match="starts with the 'ov-convert' pass"):
        compile_plan(conv_graph, replace(base, passes=()), CPU, samples_for(conv_graph), tmp_path / "c")
    with pytest.raises(CompileError, match="invalid nncf-quantize preset"):
        bad = replace(base, passes=(base.passes[0], PassSpec("nncf-quantize", {"preset": "fastest"})))
        compile_plan(conv_graph, bad, CPU, samples_for(conv_graph), tmp_path / "d")


def test_int8_with_nothing_to_quantize_fails(tmp_path: Path, conv_graph, avx2, in_process) -> None:
    """compile's own guard, for a plan made elsewhere (the planner already refuses int8 on such a graph)."""
    graph = no_weights_net(tmp_path / "nw.onnx")
    with pytest.raises(CompileError, match="quantized none of the 0 weighted ops"):
        compile_plan(graph, _int8(conv_graph, avx2), CPU, samples_for(graph), tmp_path / "out")


def test_literal_batch_reshapes_are_made_batch_agnostic(tmp_path: Path, avx2) -> None:
    graph = reshape_net(tmp_path / "g" / "reshape.onnx")
    (plan,) = plan_candidates(graph, CPU, avx2, "fp32")
    compiled = compile_plan(graph, plan, CPU, samples_for(graph), tmp_path / "out")
    assert compiled.passes[0].params["batch_agnostic_reshapes"] == 1
    data = samples_for(graph, n=4, seed=9)
    runner = OpenVinoRunner(compiled.model_path, batch=4)
    try:
        (got,) = runner.run(data.batches(4)[0])
    finally:
        runner.close()
    want = np.concatenate([reference_outputs(graph, feeds)[0] for feeds in data.batches(1)])
    assert relative_error(want, got) < 1e-5


def test_build_writes_only_inside_workdir(conv_graph, avx2, tmp_path: Path, in_process) -> None:
    workdir = tmp_path / "confined"
    workdir.mkdir()
    with confined(workdir, watch=[conv_graph.path.parent]) as box:
        compile_plan(conv_graph, _int8(conv_graph, avx2), CPU, samples_for(conv_graph), workdir)
    assert box.leaks == []


def test_builds_share_one_worker_and_a_crash_fails_only_that_plan(conv_graph, avx2, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEOPT_ISOLATION", "1")
    (plan,) = plan_candidates(conv_graph, CPU, avx2, "fp32")
    compile_plan(conv_graph, plan, CPU, samples_for(conv_graph), tmp_path / "a")
    started = ov_compile.BUILDER.starts
    compile_plan(conv_graph, plan, CPU, samples_for(conv_graph), tmp_path / "b")
    assert ov_compile.BUILDER.starts == started  # the same worker served both
    with monkeypatch.context() as patch:
        patch.setattr(ov_compile, "BUILD_FUNCTION", "ov_models:crash")  # the worker aborts (SIGABRT)
        with pytest.raises(CompileError, match="crashed OpenVINO conversion / NNCF quantization"):
            compile_plan(conv_graph, plan, CPU, samples_for(conv_graph), tmp_path / "c")
    compiled = compile_plan(conv_graph, plan, CPU, samples_for(conv_graph), tmp_path / "d")
    assert ov_compile.BUILDER.starts == started + 1 and compiled.model_path.is_file()


def test_conversion_failure_names_the_ops_openvino_could_not_convert(tmp_path) -> None:
    """A graph OpenVINO's ONNX frontend cannot convert (a Conv whose input rank is unknown) is refused naming
    the op, not with the first line of OpenVINO's message (a source location)."""
    import onnx
    from onnx import TensorProto, helper

    from edgeopt_openvino.build import convert

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, None)  # no rank
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], name="conv")], "g", [x], [y], [w])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(CompileError) as info:
        convert(path, 1)
    assert "ops not converted: Conv" in info.value.message
