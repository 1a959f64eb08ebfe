"""ORT int8 passes on tiny real models: what they write, what they report, what they refuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.errors import CompileError, DataError
from edgeopt.passes.ort_quantize import quantize_dynamic_int8, quantize_static_int8
from edgeopt.passes.ort_quantize_options import DynamicInt8Options, StaticInt8Options
from edgeopt.types import Dataset


def _weights(rng: np.random.Generator, name: str, shape: tuple[int, ...], fan_in: int) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32), name)


def _conv_model(path: Path, *, opset: int = 17, batch: int | str = 1) -> Path:
    """Conv+Relu, Conv+Relu, GlobalAveragePool, Flatten, Gemm: 2 Conv + 1 Gemm to quantize."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "fc_w", "fc_b"], ["y"], name="fc", transB=1),
    ]
    inits = [
        _weights(rng, "w1", (8, 3, 3, 3), 27),
        numpy_helper.from_array(np.zeros(8, np.float32), "b1"),
        _weights(rng, "w2", (16, 8, 3, 3), 72),
        numpy_helper.from_array(np.zeros(16, np.float32), "b2"),
        _weights(rng, "fc_w", (10, 16), 16),
        numpy_helper.from_array(np.zeros(10, np.float32), "fc_b"),
    ]
    graph = helper.make_graph(
        nodes,
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    onnx.save(onnx.shape_inference.infer_shapes(model), path)
    return path


def _matmul_model(path: Path, *, gemm: bool = False) -> Path:
    """x[1,16] -> MatMul (or Gemm) 16x32 -> Relu -> MatMul 32x4."""
    rng = np.random.default_rng(1)
    first = (
        helper.make_node("Gemm", ["x", "w0", "b0"], ["h"], name="fc0")
        if gemm
        else helper.make_node("MatMul", ["x", "w0"], ["h"], name="fc0")
    )
    nodes = [
        first,
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "w1"], ["y"], name="fc1"),
    ]
    inits = [
        _weights(rng, "w0", (16, 32), 16),
        numpy_helper.from_array(np.zeros(32, np.float32), "b0"),
        _weights(rng, "w1", (32, 4), 32),
    ]
    if not gemm:
        inits.pop(1)
    graph = helper.make_graph(
        nodes,
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


def _images(n: int = 8, *, dtype: type = np.float32) -> Dataset:
    return Dataset(arrays={"x": np.random.default_rng(3).random((n, 3, 8, 8)).astype(dtype)}, source="test")


def _run(path: Path, x: np.ndarray) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture
def conv(tmp_path: Path) -> Path:
    (tmp_path / "src").mkdir()
    return _conv_model(tmp_path / "src" / "model.onnx")


def test_static_reports_what_it_quantized(conv: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out" / "q.onnx"
    options = StaticInt8Options(per_channel=True, reduce_range=True)
    report = quantize_static_int8(conv, dst, _images(), options)
    assert report.mode == "static"
    assert report.quantized_nodes == report.quantizable_nodes == 3
    assert report.quantized_by_op == {"Conv": 2, "Gemm": 1}
    weights = (8 * 27 + 16 * 72 + 10 * 16) + (8 + 16 + 10)  # float32 elements
    assert report.weight_bytes_before == 4 * weights
    assert report.weight_bytes_after < report.weight_bytes_before / 2
    assert report.calibration_samples == 8
    assert report.ort_parameters["reduce_range"] is True
    assert report.ort_parameters["activation_type"] == "QUInt8"
    assert report.ort_parameters["calibrate_method"] == "MinMax"
    assert report.ort_version == ort.__version__
    json.dumps(report.as_params())  # manifest-ready
    ops = [n.op_type for n in onnx.load(str(dst)).graph.node]
    assert "DequantizeLinear" in ops and "QuantizeLinear" in ops
    x = _images(1).arrays["x"]
    assert _cosine(_run(dst, x), _run(conv, x)) > 0.99


@pytest.mark.parametrize(
    "options",
    [
        StaticInt8Options(weight_type="uint8"),
        StaticInt8Options(activation_type="int8", symmetric_activation=True),
        StaticInt8Options(calibrate_method="percentile", percentile=99.9),
        StaticInt8Options(calibrate_method="entropy", per_channel=False),
    ],
)
def test_static_variants_all_quantize(conv: Path, tmp_path: Path, options: StaticInt8Options) -> None:
    report = quantize_static_int8(conv, tmp_path / "q.onnx", _images(), options)
    assert report.quantized_nodes == 3
    x = _images(1).arrays["x"]
    assert _cosine(_run(tmp_path / "q.onnx", x), _run(conv, x)) > 0.98


def test_no_temp_files_in_cwd_or_beside_dst(conv: Path, tmp_path: Path, monkeypatch) -> None:
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "out"
    quantize_static_int8(conv, out / "s.onnx", _images(), StaticInt8Options(calibrate_method="percentile"))
    quantize_dynamic_int8(conv, out / "d.onnx", DynamicInt8Options(op_types=("Conv", "Gemm")))
    assert list(cwd.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["d.onnx", "s.onnx"]
    assert sorted(p.name for p in conv.parent.iterdir()) == ["model.onnx"]


def test_nothing_quantized_raises_and_writes_nothing(conv: Path, tmp_path: Path) -> None:
    dst = tmp_path / "out" / "q.onnx"
    excluded = StaticInt8Options(nodes_to_exclude=("conv1", "conv2", "fc"))
    with pytest.raises(CompileError, match="changed nothing") as info:
        quantize_static_int8(conv, dst, _images(), excluded)
    assert info.value.hint
    with pytest.raises(CompileError, match="no MatMul node"):
        quantize_static_int8(conv, dst, _images(), StaticInt8Options(op_types=("MatMul",)))
    with pytest.raises(CompileError, match="name no op"):
        quantize_static_int8(conv, dst, _images(), StaticInt8Options(op_types=("Relu",)))
    assert not dst.exists()
    assert list(dst.parent.iterdir()) == []


def test_per_channel_on_old_opset_is_refused(tmp_path: Path) -> None:
    old = _conv_model(tmp_path / "old.onnx", opset=12)
    with pytest.raises(CompileError, match="opset 12") as info:
        quantize_static_int8(old, tmp_path / "q.onnx", _images(), StaticInt8Options(per_channel=True))
    assert "opset 17" in info.value.hint
    report = quantize_static_int8(old, tmp_path / "q.onnx", _images(), StaticInt8Options(per_channel=False))
    assert report.quantized_nodes == 3


def test_calibration_data_must_fit(conv: Path, tmp_path: Path) -> None:
    dst = tmp_path / "q.onnx"
    with pytest.raises(DataError, match="no array for input"):
        quantize_static_int8(conv, dst, Dataset(arrays={"image": _images().arrays["x"]}))
    with pytest.raises(DataError, match="float64"):
        quantize_static_int8(conv, dst, _images(dtype=np.float64))
    with pytest.raises(DataError, match="expects float32"):
        quantize_static_int8(conv, dst, Dataset(arrays={"x": np.zeros((4, 3, 9, 9), np.float32)}))
    batch4 = _conv_model(tmp_path / "b4.onnx", batch=4)
    with pytest.raises(DataError, match="fewer than the model's batch size 4"):
        quantize_static_int8(batch4, dst, _images(3))
    report = quantize_static_int8(batch4, dst, _images(9))
    assert report.calibration_samples == 8  # two batches of 4, the partial one dropped


def test_calibration_sample_cap_and_dynamic_batch(tmp_path: Path) -> None:
    dynamic = _conv_model(tmp_path / "n.onnx", batch="N")
    report = quantize_static_int8(
        dynamic, tmp_path / "q.onnx", _images(8), StaticInt8Options(max_calibration_samples=3)
    )
    assert report.calibration_samples == 3
    assert _run(tmp_path / "q.onnx", _images(5).arrays["x"]).shape == (5, 10)


def test_dynamic_quantizes_matmul_and_gemm(tmp_path: Path) -> None:
    for gemm in (False, True):
        src = _matmul_model(tmp_path / f"mm{gemm}.onnx", gemm=gemm)
        dst = tmp_path / f"q{gemm}.onnx"
        report = quantize_dynamic_int8(src, dst, DynamicInt8Options(per_channel=True, reduce_range=True))
        assert report.mode == "dynamic"
        assert report.quantized_nodes == report.quantizable_nodes == 2
        assert report.quantized_by_op == {"MatMul": 2}  # ORT rewrites Gemm to MatMul before quantizing
        assert "MatMulInteger" in {n.op_type for n in onnx.load(str(dst)).graph.node}
        x = np.random.default_rng(4).standard_normal((1, 16)).astype(np.float32)
        assert _cosine(_run(dst, x), _run(src, x)) > 0.99


def test_dynamic_notes_unsupported_ops_and_refuses_empty_runs(conv: Path, tmp_path: Path) -> None:
    report = quantize_dynamic_int8(conv, tmp_path / "q.onnx", DynamicInt8Options(op_types=("Gemm", "GRU")))
    assert report.quantized_nodes == 1
    assert "GRU" in report.notes[0]
    with pytest.raises(CompileError, match="no MatMul node"):
        quantize_dynamic_int8(conv, tmp_path / "z.onnx", DynamicInt8Options(op_types=("MatMul",)))
    with pytest.raises(CompileError, match="name no op"):
        quantize_dynamic_int8(conv, tmp_path / "z.onnx", DynamicInt8Options(op_types=("GRU",)))
    assert not (tmp_path / "z.onnx").exists()


def test_options_validate_and_round_trip() -> None:
    with pytest.raises(CompileError, match="activation_type"):
        StaticInt8Options(activation_type="int4")  # type: ignore[arg-type]
    with pytest.raises(CompileError, match="S8U8"):
        StaticInt8Options(activation_type="int8", weight_type="uint8")
    with pytest.raises(CompileError, match="calibrate_method"):
        StaticInt8Options(calibrate_method="Entropy")  # type: ignore[arg-type]
    with pytest.raises(CompileError, match="unknown StaticInt8Options option"):
        StaticInt8Options.from_params({"ActivationSymmetric": True})
    options = StaticInt8Options(op_types=("Conv",), nodes_to_exclude=("fc",), reduce_range=True)
    assert StaticInt8Options.from_params(json.loads(json.dumps(options.to_params()))) == options
    dynamic = DynamicInt8Options(per_channel=True)
    assert DynamicInt8Options.from_params(json.loads(json.dumps(dynamic.to_params()))) == dynamic


def test_every_option_field_has_a_docstring() -> None:
    import ast
    import inspect

    import edgeopt.passes.ort_quantize_options as module

    tree = ast.parse(inspect.getsource(module))
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.endswith("Options")):
        body = cls.body
        for index, stmt in enumerate(body):
            if isinstance(stmt, ast.AnnAssign):
                following = body[index + 1] if index + 1 < len(body) else None
                documented = isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant)
                assert documented, f"{cls.name}.{stmt.target.id} has no docstring"


def test_dynamic_exclusion_reaches_gemms_that_ort_rewrote(tmp_path: Path) -> None:
    src = _matmul_model(tmp_path / "gemm.onnx", gemm=True)
    report = quantize_dynamic_int8(src, tmp_path / "q.onnx", DynamicInt8Options(nodes_to_exclude=("fc0",)))
    assert (report.quantized_nodes, report.quantizable_nodes) == (1, 1)
    only_gemm = quantize_dynamic_int8(src, tmp_path / "g.onnx", DynamicInt8Options(op_types=("Gemm",)))
    assert (only_gemm.quantized_nodes, only_gemm.quantizable_nodes) == (1, 1)


def test_weightless_output_ops_stay_float_unless_asked(tmp_path: Path) -> None:
    model = onnx.load(str(_conv_model(tmp_path / "conv.onnx")))
    model.graph.node[-1].output[0] = "logits"
    model.graph.node.append(helper.make_node("Softmax", ["logits"], ["y"], name="softmax", axis=-1))
    src = tmp_path / "softmax.onnx"
    onnx.save(onnx.shape_inference.infer_shapes(model), src)

    def producer_of_output(path: Path) -> str:
        graph = onnx.load(str(path)).graph
        return next(n.op_type for n in graph.node if "y" in n.output)

    kept = quantize_static_int8(src, tmp_path / "kept.onnx", _images(), StaticInt8Options())
    assert producer_of_output(tmp_path / "kept.onnx") == "Softmax"
    assert kept.ort_parameters["nodes_to_exclude"] == ["softmax"]
    assert kept.quantized_nodes == 3
    quantize_static_int8(src, tmp_path / "all.onnx", _images(), StaticInt8Options(float_outputs=False))
    assert producer_of_output(tmp_path / "all.onnx") == "DequantizeLinear"
    x = _images(1).arrays["x"]
    assert _cosine(_run(tmp_path / "kept.onnx", x), _run(src, x)) > 0.999
