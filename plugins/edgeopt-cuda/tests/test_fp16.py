"""fp16 conversion: real onnxconverter-common output, run by ONNX Runtime's CPU provider against fp32.

ORT's CPU provider runs fp16 models (nodes without an fp16 CPU kernel get casts to fp32 around them), so
these tests check the converted graph and its rounding of weights and tensors; they cannot show the GPU's
fp16 accumulation, which the ``gpu`` tests compare on the device.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from cuda_models import calibration_for, conv_net, cpu_outputs, cpu_session, overflow_net, relative_error
from edgeopt.plugin import CompileError

from edgeopt_cuda.fp16 import (
    NUMERICALLY_UNSAFE_OPS,
    Fp16Options,
    convert_fp16,
    default_op_block_list,
    tensor_types,
)

DIGITS = Path(__file__).resolve().parents[3] / "examples" / "digits"


def _io_types(path: Path) -> tuple[list[int], list[int]]:
    model = onnx.load(str(path))
    elem = [i.type.tensor_type.elem_type for i in model.graph.input]
    out = [o.type.tensor_type.elem_type for o in model.graph.output]
    return elem, out


def test_conv_net_in_fp16_keeps_fp32_io_and_stays_close(conv_graph, tmp_path: Path) -> None:
    report = convert_fp16(conv_graph.path, tmp_path / "fp16.onnx")
    assert _io_types(tmp_path / "fp16.onnx") == ([onnx.TensorProto.FLOAT], [onnx.TensorProto.FLOAT])
    model = onnx.load(str(tmp_path / "fp16.onnx"))
    assert {i.data_type for i in model.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert report.fp16_nodes == 8 and report.fp32_nodes == 0  # conv, relu x2, gap, flatten, gemm, softmax
    assert report.casts_added == 2  # one on the input, one on the output
    assert report.weight_bytes_after * 2 == report.weight_bytes_before
    for seed in (3, 4, 5):
        feeds = calibration_for(conv_graph, n=1, seed=seed).batches(1)[0]
        (want,) = cpu_outputs(conv_graph.path, feeds)
        (got,) = cpu_outputs(tmp_path / "fp16.onnx", feeds)
        assert got.dtype == np.float32
        assert relative_error(want, got) < 1e-2
        assert relative_error(want, got) > 0  # it really computed in fp16


def test_unsafe_ops_are_blocked_so_they_compute_in_fp32(tmp_path: Path) -> None:
    """ReduceSum of 4096 values near 30 (122880) and exp(12) (162755) exceed fp16's 65504.

    With the plugin's block list both run in fp32 and their outputs come back exactly; with the converter's
    own list they are typed fp16, which a GPU computes in fp16 (inf). ORT's CPU provider cannot show that
    overflow: it runs such nodes through casts to fp32, so the unsafe case is checked on the graph's types.
    """
    graph = overflow_net(tmp_path / "overflow.onnx")
    feeds = {"x": np.full((1, 4096), 30.0, np.float32)}
    want_sum, want_exp = cpu_outputs(graph.path, feeds)
    assert want_sum[0, 0] == pytest.approx(122880.0) and want_exp[0, 0] > 65504

    report = convert_fp16(graph.path, tmp_path / "safe.onnx")
    assert report.blocked == {"Exp": 1, "ReduceSum": 1}
    assert report.outputs_restored == 2  # the converter declared both outputs fp16 despite keep_io_types
    safe = tensor_types(onnx.load(str(tmp_path / "safe.onnx")))
    assert safe["sum_output_cast_0"] == safe["exp_output_cast_0"] == onnx.TensorProto.FLOAT
    assert _io_types(tmp_path / "safe.onnx") == ([onnx.TensorProto.FLOAT], [onnx.TensorProto.FLOAT] * 2)
    got_sum, got_exp = cpu_outputs(tmp_path / "safe.onnx", feeds)
    assert got_sum.dtype == got_exp.dtype == np.float32
    assert relative_error(want_sum, got_sum) < 1e-3 and relative_error(want_exp, got_exp) < 1e-2

    from onnxconverter_common import float16

    converter_only = Fp16Options(op_block_list=tuple(float16.DEFAULT_OP_BLOCK_LIST))
    report = convert_fp16(graph.path, tmp_path / "unsafe.onnx", converter_only)
    assert report.blocked == {}
    unsafe = onnx.load(str(tmp_path / "unsafe.onnx"))
    types = tensor_types(unsafe)
    fp16_ops = {n.op_type for n in unsafe.graph.node if types.get(n.output[0]) == onnx.TensorProto.FLOAT16}
    assert {"ReduceSum", "Exp"} <= fp16_ops
    with np.errstate(over="ignore"):  # what fp16 makes of the fp32 results: inf
        assert np.isinf(np.float16(want_sum)).all() and np.isinf(np.float16(want_exp)).all()


def test_digits_cnn_on_real_data_agrees_with_fp32(tmp_path: Path) -> None:
    model = DIGITS / "digits_cnn.onnx"
    data = np.load(DIGITS / "eval.npz")
    convert_fp16(model, tmp_path / "digits16.onnx")
    name = onnx.load(str(model)).graph.input[0].name
    x = data["input"] if "input" in data.files else data[next(k for k in data.files if k != "labels")]
    ref, fp16 = cpu_session(model), cpu_session(tmp_path / "digits16.onnx")
    want = np.concatenate([ref.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
    got = np.concatenate([fp16.run(None, {name: x[i : i + 1]})[0] for i in range(len(x))])
    assert np.mean(np.argmax(want, 1) == np.argmax(got, 1)) >= 0.99
    assert relative_error(want, got) < 1e-2


def test_source_is_untouched_and_fp16_models_are_refused(conv_graph, tmp_path: Path) -> None:
    before = conv_graph.path.read_bytes()
    convert_fp16(conv_graph.path, tmp_path / "a.onnx")
    assert conv_graph.path.read_bytes() == before
    with pytest.raises(CompileError, match="already holds float16 weights"):
        convert_fp16(tmp_path / "a.onnx", tmp_path / "b.onnx")


def test_blocking_every_op_is_refused(tmp_path: Path) -> None:
    graph = conv_net(tmp_path / "m.onnx")
    everything = ("Conv", "Relu", "GlobalAveragePool", "Flatten", "Gemm", "Softmax")
    with pytest.raises(CompileError, match="changed nothing"):
        convert_fp16(graph.path, tmp_path / "out.onnx", Fp16Options(op_block_list=everything))
    assert not (tmp_path / "out.onnx").exists()


def test_node_block_list_keeps_a_named_layer_in_fp32(conv_graph, tmp_path: Path) -> None:
    report = convert_fp16(conv_graph.path, tmp_path / "m.onnx", Fp16Options(node_block_list=("fc",)))
    assert report.blocked == {"Gemm": 1}
    assert report.fp32_nodes >= 1


def test_options_round_trip_and_validate() -> None:
    options = Fp16Options(node_block_list=("fc",))
    params = options.to_params()
    assert params["op_block_list"] == list(default_op_block_list())
    assert set(NUMERICALLY_UNSAFE_OPS) <= set(params["op_block_list"])
    assert "Resize" in params["op_block_list"]  # the converter's own list is kept
    again = Fp16Options.from_params(params)
    assert again.blocked_ops() == options.blocked_ops() and again.node_block_list == ("fc",)
    with pytest.raises(CompileError, match="unknown fp16-convert option"):
        Fp16Options.from_params({"keep_io": True})
    with pytest.raises(CompileError, match="value range"):
        Fp16Options(max_finite_val=1e6)
