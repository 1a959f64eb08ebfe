"""Plans, the compiler-log parser, the Coral estimate, device detection and toolchain lookup (no converter needed)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from edgeopt.plugin import CompileError, Graph, PassSpec, Plan, TargetError, TensorSpec, get_profile

from edgeopt_edgetpu import toolchain
from edgeopt_edgetpu.compat import CompatReport, OpVerdict
from edgeopt_edgetpu.compiler import parse_output
from edgeopt_edgetpu.devices import coral_present
from edgeopt_edgetpu.estimate import ON_CHIP_CACHE_BYTES, estimate
from edgeopt_edgetpu.plan import plan_candidates

COMPILER_STDOUT = """Edge TPU Compiler version 16.0.384591198
Started a compilation timeout timer of 180 seconds.

Model compiled successfully in 1159 ms.

Input model: model.tflite
Input size: 3.03MiB
Output model: model_edgetpu.tflite
Output size: 3.35MiB
On-chip memory used for caching model parameters: 3.42MiB
On-chip memory remaining for caching model parameters: 4.31MiB
Off-chip memory used for streaming uncached model parameters: 0.00B
Number of Edge TPU subgraphs: 1
Total number of operations: 64
Operation log: model_edgetpu.log

Model successfully compiled but not all operations are supported by the Edge TPU. A percentage of the model will \
instead run on the CPU, which is slower.
Number of operations that will run on Edge TPU: 60
Number of operations that will run on CPU: 4
"""
COMPILER_LOG = """Edge TPU Compiler version 16.0.384591198
Input: model.tflite
Output: model_edgetpu.tflite

Operator                       Count      Status

CONV_2D                        52         Mapped to Edge TPU
MEAN                           1          Mapped to Edge TPU
SOFTMAX                        1          Operation is working on an unsupported data type
"""


def graph(shape=(1, 3, 8, 8)) -> Graph:
    spec = TensorSpec("x", "float32", shape)
    return Graph(Path("m.onnx"), "f", "f", "onnx", 17, (spec,), (TensorSpec("y", "float32", (1, 10)),))


def test_plans_per_target() -> None:
    device = get_profile("coral-edgetpu-usb")
    assert [p.precision for p in plan_candidates(graph(), "tflite", device, "auto")] == [
        "fp32", "int8", "int8-dynamic", "fp16"]
    (only,) = plan_candidates(graph(), "edgetpu", device, "auto")
    assert only.precision == "int8" and [p.name for p in only.passes][-1] == "edgetpu-compile"
    assert dict(only.passes[1].params) == {"recipe": "static_wi8_ai8", "io": "int8"}
    with pytest.raises(TargetError, match="cannot compile precision 'fp32'"):
        plan_candidates(graph(), "edgetpu", device, "fp32")


def test_compile_refuses_malformed_plans_and_keep_fp32_before_converting(tmp_path: Path) -> None:
    from edgeopt_edgetpu.compile import compile_plan, parse_plan

    device = get_profile("coral-edgetpu-usb")
    with pytest.raises(CompileError, match="unexpected passes"):
        parse_plan(Plan("tflite", "int8", (PassSpec("litert-convert"),)))
    with pytest.raises(CompileError, match="needs recipe 'static_wi8_ai8'"):
        parse_plan(Plan("tflite", "int8", (PassSpec("litert-convert"), PassSpec("litert-quantize", {"recipe": "x"}))))
    (plan,) = plan_candidates(graph(), "edgetpu", device, "int8")
    from dataclasses import replace

    from edgeopt.plugin import Dataset

    with pytest.raises(CompileError, match="cannot keep ONNX nodes in fp32"):
        compile_plan(graph(), replace(plan, keep_fp32=("conv",)), device, Dataset({}), tmp_path)
    with pytest.raises(CompileError, match="the Edge TPU takes batch 1"):
        compile_plan(graph((2, 3, 8, 8)), plan, device, Dataset({}), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_parse_compiler_output_and_log() -> None:
    report = parse_output(COMPILER_STDOUT, COMPILER_LOG)
    assert report.version == "16.0.384591198"
    assert (report.edgetpu_ops, report.cpu_ops, report.total_ops, report.subgraphs) == (60, 4, 64, 1)
    assert report.on_chip_bytes == pytest.approx(3.42 * 1024**2)
    assert report.off_chip_bytes == 0.0
    assert report.operators[0] == {"op": "CONV_2D", "count": 52, "status": "Mapped to Edge TPU"}
    assert report.operators[-1]["status"] == "Operation is working on an unsupported data type"


def test_parse_compiler_output_when_everything_maps() -> None:
    text = COMPILER_STDOUT.split("Model successfully compiled but")[0]
    report = parse_output(text)
    assert (report.edgetpu_ops, report.cpu_ops) == (64, 0)


def _report(ops: list[OpVerdict], io: int = 1000) -> CompatReport:
    first = next((v.index for v in ops if not v.on_edgetpu), None)
    return CompatReport("m.tflite", 14, tuple(ops), first_fallback=first, io_bytes=io)


def test_estimate_splits_edgetpu_and_cpu_parts() -> None:
    coral, host = get_profile("coral-edgetpu-usb"), get_profile("raspberry-pi-5")
    ops = [OpVerdict(0, "CONV_2D", True, True, (), 4e9, weight_bytes=1000),
           OpVerdict(1, "ABS", False, False, ("unsupported op ABS",), 6.144e8, weight_bytes=0)]
    est = estimate(_report(ops), coral, host)
    assert est.edgetpu_s == pytest.approx(4e9 / 4e12)  # compute-bound: 1000 I/O bytes at 625 MB/s is 1.6 µs
    assert est.cpu_s == pytest.approx(6.144e8 / 614.4e9)
    assert est.latency_s == pytest.approx(est.edgetpu_s + est.cpu_s)
    assert est.joules == pytest.approx(2.0 * est.edgetpu_s + 7.0 * est.cpu_s)
    assert est.method.startswith("estimated:roofline") and "not measurements" in est.note


def test_estimate_streams_weights_beyond_the_on_chip_cache() -> None:
    coral, host = get_profile("coral-edgetpu-usb"), get_profile("raspberry-pi-5")
    big = ON_CHIP_CACHE_BYTES + 6_250_000
    est = estimate(_report([OpVerdict(0, "FULLY_CONNECTED", True, True, (), 1e6, weight_bytes=big)], io=0),
                   coral, host)
    assert est.streamed_bytes == 6_250_000 and est.edgetpu_s == pytest.approx(6_250_000 / 625e6)
    assert est.cpu_s == 0.0


def test_coral_detection_reads_usb_ids_and_apex_nodes(tmp_path: Path) -> None:
    usb, dev = tmp_path / "usb", tmp_path / "dev"
    (usb / "1-1").mkdir(parents=True)
    dev.mkdir()
    (usb / "1-1" / "idVendor").write_text("1d6b\n")
    (usb / "1-1" / "idProduct").write_text("0002\n")
    assert coral_present(sysfs=usb, dev=dev) == ""
    (usb / "2-1").mkdir()
    (usb / "2-1" / "idVendor").write_text("18d1\n")
    (usb / "2-1" / "idProduct").write_text("9302\n")
    assert coral_present(sysfs=usb, dev=dev) == "usb 18d1:9302"
    (dev / "apex_0").write_text("")
    assert coral_present(sysfs=usb, dev=dev).startswith("pcie ")


def test_toolchain_lookup_order(isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(toolchain, "converter_importable", lambda: False)
    assert toolchain.find_toolchain() is None
    with pytest.raises(TargetError, match="converter .* is not set up") as caught:
        toolchain.require_toolchain()
    assert "edgeopt edgetpu toolchain --create" in caught.value.hint
    root = toolchain.toolchain_dir()
    assert root.parent == isolated_cache and root.name.startswith("litert-")
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "python").write_text("")
    assert toolchain.find_toolchain() is None  # not marked complete: a half-made toolchain is never used
    (root / ".complete").write_text("")
    assert toolchain.find_toolchain() == toolchain.Toolchain(root / "bin" / "python", "cache")
    monkeypatch.setenv(toolchain.PYTHON_ENV, sys.executable)
    assert toolchain.find_toolchain() == toolchain.Toolchain(Path(sys.executable), "env")


def test_toolchain_folder_is_in_the_core_cache_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``EDGEOPT_TOOLCHAIN_DIR`` the toolchain lives in ``toolchains/`` of edgeopt's cache folder."""
    monkeypatch.delenv(toolchain.DIR_ENV, raising=False)
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(tmp_path / "cache"))
    assert toolchain.toolchain_dir().parent == tmp_path / "cache" / "toolchains"
    monkeypatch.setenv(toolchain.DIR_ENV, str(tmp_path / "mine"))
    assert toolchain.toolchain_dir().parent == tmp_path / "mine"


def test_toolchain_key_follows_its_requirements(monkeypatch: pytest.MonkeyPatch) -> None:
    before = toolchain.toolchain_key()
    monkeypatch.setattr(toolchain, "REQUIREMENTS", (*toolchain.REQUIREMENTS, "extra-package"))
    assert toolchain.toolchain_key() != before


def _opset18_model():
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("ReduceMean", ["x", "axes"], ["m"], keepdims=1),
        helper.make_node("Reshape", ["m", "shape"], ["y"], allowzero=1),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(np.array([2, 3], np.int64), "axes"),
         numpy_helper.from_array(np.array([1, 4], np.int64), "shape")],
    )
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_prepare_for_onnx2torch_lowers_reduce_axes_and_allowzero_without_changing_results() -> None:
    import numpy as np
    import onnx
    import onnxruntime as ort

    from edgeopt_edgetpu.convert_worker import prepare_for_onnx2torch

    model = _opset18_model()
    lowered, note = prepare_for_onnx2torch(model)
    onnx.checker.check_model(lowered, full_check=True)
    assert lowered.opset_import[0].version == 17 and "from 18" in note
    mean, reshape = lowered.graph.node
    assert list(mean.input) == ["x"] and [a.name for a in mean.attribute] == ["keepdims", "axes"]
    assert [a.name for a in reshape.attribute] == []
    x = np.random.default_rng(0).standard_normal((1, 4, 3, 3)).astype(np.float32)
    before, after = (ort.InferenceSession(m.SerializeToString()).run(None, {"x": x})[0] for m in (model, lowered))
    np.testing.assert_array_equal(before, after)
    assert model.opset_import[0].version == 18  # the caller's model is left alone


def test_prepare_for_onnx2torch_keeps_the_opset_when_a_node_changed_meaning() -> None:
    from onnx import helper

    from edgeopt_edgetpu.convert_worker import prepare_for_onnx2torch

    model = _opset18_model()
    model.graph.node.append(helper.make_node("Split", ["y"], ["s0", "s1"], axis=1, num_outputs=2))
    lowered, note = prepare_for_onnx2torch(model)
    assert lowered.opset_import[0].version == 18 and "Split" in note


def test_calibration_samples_are_read_one_at_a_time_from_the_npz(tmp_path: Path) -> None:
    """The quantizer's feeds come from the calibration ``.npz`` sample by sample (never the whole set at once),
    each sample exactly the slice the worker wrote, for every input in the order asked."""
    import numpy as np

    from edgeopt_edgetpu.litert_quantize import read_samples

    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    ids = rng.integers(0, 9, size=(5,)).astype(np.int64)
    np.savez(tmp_path / "c.npz", **{"input:0": x, "ids": ids})
    samples = read_samples(str(tmp_path / "c.npz"), ["ids", "input:0"])
    seen = 0
    for i, (a, b) in enumerate(samples):
        assert a.dtype == np.int64 and np.array_equal(a, ids[i : i + 1])
        assert b.shape == (1, 3, 4) and np.array_equal(b, x[i : i + 1])
        seen += 1
    assert seen == 5
    np.savez(tmp_path / "f.npz", x=np.asfortranarray(rng.standard_normal((4, 3))))
    with pytest.raises(ValueError, match="C-ordered"):
        next(read_samples(str(tmp_path / "f.npz"), ["x"]))
