"""The failure classes real models hit on the way to TFLite, each on a small graph built here, end to end through
the core (``edgeopt.api.deploy``: the converter child, the fidelity guard, the artifact):

- shape operands onnx2torch reads at run time (a Reshape of a Reshape, Slice, Resize by scales, Squeeze with axes
  as an input), which ``torch.export`` saw as data-dependent sizes (PP-OCRv4's recognizer: ``Eq(u0, 1)``; its
  detector: ``Eq(zuf0, 1.0)``);
- an embedding Gather on an int64 graph input with an omitted optional input (``Clip(x, min, "")``) after it
  (a sentence encoder);
- a ConvTranspose + Resize head behind hard-swish and hard-sigmoid blocks, to a full-int8 Edge TPU model with every
  op mapped (a DB text detector);
- an op the torch route cannot convert: ``ConversionError`` (E510) naming the node, never E600, and with the
  onnx2tf route in the toolchain, the fallback building it.

Needs the converter toolchain; each deploy converts (10-60 s on 2 shared cores), so all are marked slow except the
refusal, which stops in onnx2torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import needs_converter
from edgeopt import deploy
from edgeopt.plugin import ConversionError
from onnx import TensorProto, helper, numpy_helper

pytestmark = [needs_converter]
RNG = np.random.default_rng(0)


class Quiet:
    def step(self, message: str) -> None:
        pass

    def warn(self, message: str) -> None:
        pass


def _save(path: Path, nodes: list, inputs: list, outputs: list, consts: dict) -> Path:
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()]
    model = helper.make_model(helper.make_graph(nodes, path.stem, inputs, outputs, inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


def _data(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _deploy(model: Path, target: str, precision: str, out: Path, data: Path, **kwargs: object):
    return deploy(model, target=target, precision=precision, out=out, calib=data, eval=data, timing_s=0.2,
                  cache=False, events=Quiet(), **kwargs)


def _float(name: str, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def shape_operands_model(path: Path) -> Path:
    """Conv, then Reshape → Reshape (the second reads a shape after a rewritten first), Slice with constant
    starts/ends/axes/steps, Resize by constant scales, Unsqueeze + Squeeze with axes as inputs."""
    w = RNG.standard_normal((4, 3, 3, 3)).astype(np.float32) * 0.3
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["c", "flat"], ["r1"], name="flatten_hw"),
        helper.make_node("Reshape", ["r1", "back"], ["r2"], name="restore_hw"),
        helper.make_node("Slice", ["r2", "starts", "ends", "axes", "steps"], ["s"], name="crop"),
        helper.make_node("Resize", ["s", "", "scales"], ["up"], name="upsample", mode="nearest"),
        helper.make_node("Unsqueeze", ["up", "ax0"], ["u"], name="add_axis"),
        helper.make_node("Squeeze", ["u", "ax0"], ["y"], name="drop_axis"),
    ]
    consts = {"w": w, "flat": i64(1, 4, -1), "back": i64(0, 0, 8, 8), "starts": i64(1, 2), "ends": i64(7, 8),
              "axes": i64(2, 3), "steps": i64(1, 2), "scales": np.array([1, 1, 2, 2], np.float32), "ax0": i64(0)}
    return _save(path, nodes, [_float("x", [1, 3, 8, 8])], [_float("y", [1, 4, 12, 6])], consts)


def embedding_model(path: Path) -> Path:
    """Token ids (int64 input) → embedding Gather → mean over tokens → Clip with only a minimum."""
    nodes = [
        helper.make_node("Gather", ["table", "ids"], ["e"], name="embeddings/Gather"),
        helper.make_node("ReduceMean", ["e"], ["m"], name="pool", axes=[1], keepdims=0),
        helper.make_node("Clip", ["m", "floor", ""], ["y"], name="clip_min"),
    ]
    consts = {"table": RNG.standard_normal((100, 8)).astype(np.float32), "floor": np.array(-0.5, np.float32)}
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 16])
    return _save(path, nodes, [ids], [_float("y", [1, 8])], consts)


def detector_head_model(path: Path) -> Path:
    """Conv (stride 2) → hard-swish written as PaddlePaddle exports it → SE gate with HardSigmoid → ConvTranspose
    (stride 2) → Resize ×2 → 1×1 Conv → Sigmoid: a dense probability map at twice the input size."""
    c = lambda *s: (RNG.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    f32 = lambda v: np.array(v, np.float32)  # noqa: E731
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="stem", strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["c1", "three"], ["p3"], name="hs_add"),
        helper.make_node("Clip", ["p3", "zero", "six"], ["r6"], name="hs_clip"),
        helper.make_node("Mul", ["c1", "r6"], ["hm"], name="hs_mul"),
        helper.make_node("Div", ["hm", "six"], ["h"], name="hs_div"),
        helper.make_node("GlobalAveragePool", ["h"], ["g"], name="se_pool"),
        helper.make_node("Conv", ["g", "wse"], ["gs"], name="se_fc"),
        helper.make_node("HardSigmoid", ["gs"], ["gate"], name="se_gate", alpha=0.2, beta=0.5),
        helper.make_node("Mul", ["h", "gate"], ["hg"], name="se_scale"),
        helper.make_node("ConvTranspose", ["hg", "wt", "bt"], ["t"], name="deconv", strides=[2, 2]),
        helper.make_node("Relu", ["t"], ["tr"], name="deconv_relu"),
        helper.make_node("Resize", ["tr", "", "scales"], ["up"], name="upsample", mode="nearest"),
        helper.make_node("Conv", ["up", "w2", "b2"], ["logit"], name="head"),
        helper.make_node("Sigmoid", ["logit"], ["y"], name="prob"),
    ]
    consts = {"w1": c(8, 3, 3, 3), "b1": c(8), "three": f32(3), "zero": f32(0), "six": f32(6), "wse": c(8, 8, 1, 1),
              "wt": c(8, 4, 2, 2), "bt": c(4), "scales": f32([1, 1, 2, 2]), "w2": c(1, 4, 1, 1), "b2": c(1)}
    return _save(path, nodes, [_float("x", [1, 3, 16, 16])], [_float("y", [1, 1, 32, 32])], consts)


_EXPORT_CHECK = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("convert_worker", sys.argv[1])
worker = importlib.util.module_from_spec(spec); spec.loader.exec_module(worker); worker.load_siblings()
import onnx, torch
sys.modules["route_torch"].torchvision_placeholder()
from onnx2torch import convert
module = convert(sys.modules["convert_common"].prepare_for_onnx2torch(onnx.load(sys.argv[2]))[0]).eval()
x = torch.randn(1, 3, 8, 8)
reference = module(x)
try:
    torch.export.export(module, (x,)); before = "exported"
except Exception as exc:
    before = type(exc).__name__
done = sys.modules["torch_specialize"].specialize(module, (x,))
exported = torch.export.export(module, (x,))
print(json.dumps({"before": before, "done": dict(done), "same": bool(torch.equal(exported.module()(x), reference))}))
"""


def test_specialized_modules_export_without_data_dependent_sizes(tmp_path: Path) -> None:
    """The failure class itself, fast: onnx2torch's module of the shape-operand graph does not export; once
    specialized it does, and computes the same."""
    import subprocess

    from edgeopt_edgetpu.convert import WORKER
    from edgeopt_edgetpu.toolchain import find_toolchain

    model = shape_operands_model(tmp_path / "shapes.onnx")
    done = subprocess.run([str(find_toolchain().python), "-c", _EXPORT_CHECK, str(WORKER), str(model)],  # type: ignore[union-attr]
                          capture_output=True, text=True, timeout=300, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["before"] == "GuardOnDataDependentSymNode" and result["same"]
    assert result["done"] == {"OnnxReshape": 2, "OnnxSlice": 1, "OnnxResize": 1, "OnnxSqueezeDynamicAxes": 1}


@pytest.mark.slow
def test_shape_operands_read_at_run_time_convert_with_the_graph_static_shapes(tmp_path: Path) -> None:
    model = shape_operands_model(tmp_path / "shapes.onnx")
    data = _data(tmp_path / "data.npz", x=RNG.standard_normal((16, 3, 8, 8)).astype(np.float32))
    result = _deploy(model, "tflite", "fp32", tmp_path / "out", data)
    notes = " ".join(result.manifest["plan"]["notes"])
    assert "specialized to the static input shapes" in notes and "Slice" in notes and "Resize" in notes
    assert result.metrics["drop"] <= 1e-6
    convert = next(p for p in result.manifest["plan"]["passes"] if p["name"] == "litert-convert")
    assert convert["params"]["route"] == "torch"


@pytest.mark.slow
def test_an_embedding_gather_on_an_int64_input_converts_and_runs(tmp_path: Path) -> None:
    model = embedding_model(tmp_path / "encoder.onnx")
    data = _data(tmp_path / "ids.npz", ids=RNG.integers(0, 100, size=(32, 16)).astype(np.int64))
    result = _deploy(model, "tflite", "fp32", tmp_path / "out", data)
    assert result.metrics["drop"] <= 1e-6
    io = json.loads((result.path / "io.json").read_text())
    assert io["inputs"][0]["dtype"] == "int64" and io["signature"]["inputs"]


@pytest.mark.slow
def test_a_conv_transpose_and_resize_head_maps_every_op_to_the_edge_tpu(tmp_path: Path) -> None:
    model = detector_head_model(tmp_path / "head.onnx")
    data = _data(tmp_path / "x.npz", x=RNG.uniform(-1, 1, size=(48, 3, 16, 16)).astype(np.float32))
    result = _deploy(model, "edgetpu", "int8", tmp_path / "out", data, max_drop=5.0)
    report = json.loads((result.path / "edgetpu_report.json").read_text())["compatibility"]
    assert report["compilable"] and report["first_fallback"] is None and report["op_fraction"] == 1.0
    ops = {op["op"] for op in report["ops"]}
    assert {"TRANSPOSE_CONV", "RESIZE_NEAREST_NEIGHBOR"} <= ops and not ops & {"HARD_SWISH", "RELU_0_TO_1"}
    notes = " ".join(result.manifest["plan"]["notes"])
    assert "hard-swish pattern" in notes and "HardSigmoid" in notes


def _space_to_depth_model(path: Path) -> Path:
    nodes = [helper.make_node("SpaceToDepth", ["x"], ["s"], name="focus", blocksize=2),
             helper.make_node("Relu", ["s"], ["y"], name="act")]
    return _save(path, nodes, [_float("x", [1, 2, 8, 8])], [_float("y", [1, 8, 4, 4])], {})


def test_an_op_the_torch_route_cannot_convert_is_a_conversion_error_naming_it(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("EDGEOPT_LITERT_ROUTES", "torch")
    model = _space_to_depth_model(tmp_path / "focus.onnx")
    data = _data(tmp_path / "x.npz", x=RNG.standard_normal((8, 2, 8, 8)).astype(np.float32))
    with pytest.raises(ConversionError) as caught:
        _deploy(model, "tflite", "fp32", tmp_path / "out", data)
    assert caught.value.code == "E510"
    assert "route 'torch'" in caught.value.message and "'focus' (SpaceToDepth)" in caught.value.message
    assert "SpaceToDepth is not supported" in caught.value.hint and "--max-drop" not in caught.value.hint
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_with_onnx2tf_in_the_toolchain_the_second_route_builds_what_the_first_cannot(tmp_path: Path) -> None:
    from edgeopt_edgetpu.toolchain import find_toolchain, has_onnx2tf

    if not has_onnx2tf(find_toolchain()):  # type: ignore[arg-type]
        pytest.skip("the onnx2tf route is not installed: edgeopt edgetpu toolchain --create --with-onnx2tf")
    model = _space_to_depth_model(tmp_path / "focus.onnx")
    data = _data(tmp_path / "x.npz", x=RNG.standard_normal((8, 2, 8, 8)).astype(np.float32))
    result = _deploy(model, "tflite", "fp32", tmp_path / "out", data)
    convert = next(p for p in result.manifest["plan"]["passes"] if p["name"] == "litert-convert")
    assert convert["params"]["route"] == "onnx2tf" and convert["params"]["failed_routes"] == ["torch"]
    assert result.metrics["drop"] <= 1e-6
