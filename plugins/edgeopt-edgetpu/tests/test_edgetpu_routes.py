"""Conversion routes without the converter: the Edge TPU activation rewrite, onnx2torch preparation, the route
fallback and its record, and conversion failures named as ``ConversionError`` (E510) with a fitting hint.

Fast: onnx, onnxruntime and numpy only; the routes themselves are replaced by stand-ins where a test is about
the order they are tried in (the real routes are exercised in ``test_edgetpu_real_failures.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgeopt.plugin import AccuracyBudgetExceeded, CompileError, ConversionError
from onnx import TensorProto, helper, numpy_helper

from edgeopt_edgetpu import convert, convert_worker
from edgeopt_edgetpu.convert_common import RouteFailure, prepare_for_onnx2torch
from edgeopt_edgetpu.edgetpu_rewrite import edgetpu_activations


def _run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)


def _activations_model() -> onnx.ModelProto:
    """HardSwish, HardSigmoid (PaddlePaddle's slope 0.2) and PaddlePaddle's exported hard-swish pattern
    ``x * Clip(x + 3, 0, 6) / 6`` after a conv."""
    const = [numpy_helper.from_array(v, n) for n, v in {
        "w": np.random.default_rng(0).standard_normal((4, 3, 3, 3)).astype(np.float32),
        "three": np.array(3.0, np.float32), "zero": np.array(0.0, np.float32), "six": np.array(6.0, np.float32),
    }.items()]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("HardSwish", ["c"], ["hs"], name="hswish"),
        helper.make_node("Add", ["hs", "three"], ["p3"], name="add3"),
        helper.make_node("Clip", ["p3", "zero", "six"], ["r6"], name="relu6"),
        helper.make_node("Mul", ["hs", "r6"], ["m"], name="mul"),
        helper.make_node("Div", ["m", "six"], ["pattern"], name="div6"),
        helper.make_node("HardSigmoid", ["pattern"], ["gate"], name="hsig", alpha=0.2, beta=0.5),
        helper.make_node("Mul", ["pattern", "gate"], ["y"], name="se"),
    ]
    graph = helper.make_graph(nodes, "acts", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], const)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_edgetpu_activations_rewrites_every_hard_activation_without_changing_results() -> None:
    model = _activations_model()
    rewritten, done = edgetpu_activations(model)
    onnx.checker.check_model(rewritten, full_check=True)
    assert dict(done) == {"HardSwish": 1, "hard-swish pattern": 1, "HardSigmoid": 1}
    ops = [n.op_type for n in rewritten.graph.node]
    assert "HardSwish" not in ops and "HardSigmoid" not in ops and "Div" not in ops
    x = (np.random.default_rng(1).standard_normal((1, 3, 8, 8)) * 4).astype(np.float32)
    np.testing.assert_allclose(_run(rewritten, {"x": x})[0], _run(model, {"x": x})[0], rtol=1e-5, atol=1e-5)
    assert [n.op_type for n in model.graph.node].count("HardSwish") == 1  # the caller's model is left alone
    unchanged, none = edgetpu_activations(rewritten)
    assert not none and len(unchanged.graph.node) == len(rewritten.graph.node)


def test_the_hard_swish_pattern_is_left_alone_when_its_product_has_other_users() -> None:
    model = _activations_model()
    model.graph.output.append(helper.make_tensor_value_info("m", TensorProto.FLOAT, [1, 4, 8, 8]))
    _, done = edgetpu_activations(model)
    assert "hard-swish pattern" not in done


def test_prepare_for_onnx2torch_drops_trailing_empty_inputs() -> None:
    graph = helper.make_graph(
        [helper.make_node("Clip", ["x", "lo", ""], ["y"], name="clip")], "clip",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [numpy_helper.from_array(np.array(1e-9, np.float32), "lo")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    prepared, _ = prepare_for_onnx2torch(model)
    assert list(prepared.graph.node[0].input) == ["x", "lo"] and list(model.graph.node[0].input) == ["x", "lo", ""]
    x = np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(_run(prepared, {"x": x})[0], _run(model, {"x": x})[0])


class _Route:
    """A stand-in route: builds (writes a marker file) or fails the way it is told."""

    def __init__(self, name: str, *, fails: RouteFailure | None = None, missing: str | None = None) -> None:
        self.name, self.fails, self.missing, self.calls = name, fails, missing, 0

    def available(self) -> str | None:
        return self.missing

    def build(self, model_path: str, out: Path, sample: tuple, notes: list[str]) -> None:
        self.calls += 1
        if self.fails is not None:
            raise self.fails
        out.write_bytes(b"tflite")
        notes.append(f"{self.name} built it")


@pytest.fixture
def job(tmp_path: Path) -> dict:
    return {"onnx": str(tmp_path / "m.onnx"), "out": str(tmp_path / "m.tflite"), "precision": "fp32",
            "inputs": [{"name": "x", "shape": [1, 2], "dtype": "float32"}], "outputs": ["y"], "calibration": ""}


def _fake_routes(monkeypatch: pytest.MonkeyPatch, routes: dict[str, _Route]) -> None:
    real = convert_worker._module
    monkeypatch.setattr(convert_worker, "_module", lambda name: routes[name[6:]] if name.startswith("route_")
                        else real(name))
    monkeypatch.setattr(convert_worker, "signature_of",
                        lambda path, ins, outs: {"name": "serving_default", "inputs": ins, "outputs": outs})
    monkeypatch.setattr(convert_worker, "mismatch", lambda *args: None)


def test_routes_are_tried_in_order_and_the_one_that_built_is_recorded(monkeypatch, job: dict) -> None:
    failure = RouteFailure("litert-torch", "GuardOnDataDependentSymNode: Eq(u0, 1)", node="n7", op="Slice",
                           kind="data-dependent-shape")
    torch_route, tf_route = _Route("torch", fails=failure), _Route("onnx2tf")
    _fake_routes(monkeypatch, {"torch": torch_route, "onnx2tf": tf_route})
    result = convert_worker.convert({**job, "routes": ["torch", "onnx2tf"]})
    assert result["route"] == "onnx2tf" and torch_route.calls == tf_route.calls == 1
    assert result["attempts"] == [{"route": "torch", "stage": "litert-torch", "node": "n7", "op": "Slice",
                                   "kind": "data-dependent-shape", "error": "GuardOnDataDependentSymNode: Eq(u0, 1)"}]
    assert "onnx2tf built it" in result["notes"] and any("after route 'torch' failed" in n for n in result["notes"])


def test_the_first_route_that_builds_ends_the_search(monkeypatch, job: dict) -> None:
    torch_route, tf_route = _Route("torch"), _Route("onnx2tf")
    _fake_routes(monkeypatch, {"torch": torch_route, "onnx2tf": tf_route})
    result = convert_worker.convert({**job, "routes": ["torch", "onnx2tf"]})
    assert result["route"] == "torch" and result["attempts"] == [] and tf_route.calls == 0


def test_a_route_whose_model_differs_from_onnx_runtime_counts_as_failed(monkeypatch, job: dict) -> None:
    _fake_routes(monkeypatch, {"torch": _Route("torch"), "onnx2tf": _Route("onnx2tf")})
    verdicts = iter(["output 'y' has shape [1, 2, 1], ONNX Runtime gives [1, 2]", None])
    monkeypatch.setattr(convert_worker, "mismatch", lambda *args: next(verdicts))
    result = convert_worker.convert({**job, "routes": ["torch", "onnx2tf"]})
    assert result["route"] == "onnx2tf"
    assert result["attempts"][0]["stage"] == "check" and result["attempts"][0]["kind"] == "mismatch"


def test_when_every_route_fails_the_result_names_the_first_real_failure(monkeypatch, job: dict) -> None:
    failure = RouteFailure("onnx2torch", "NotImplementedError: Converter is not implemented", node="rs",
                           op="ReverseSequence", kind="unsupported-op")
    _fake_routes(monkeypatch, {"torch": _Route("torch", fails=failure),
                               "onnx2tf": _Route("onnx2tf", missing="not installed: tensorflow")})
    with pytest.raises(convert_worker.ConversionFailed) as caught:
        convert_worker.convert({**job, "routes": ["onnx2tf", "torch"]})
    result = convert_worker.failure_result(caught.value)
    assert (result["route"], result["node"], result["op"]) == ("torch", "rs", "ReverseSequence")
    assert [a["route"] for a in result["attempts"]] == ["onnx2tf", "torch"]
    assert result["attempts"][0]["kind"] == "unavailable"


def _job() -> convert.ConvertJob:
    return convert.ConvertJob("m.onnx", "m.tflite", "r.json", "fp32", ({"name": "x", "shape": [1], "dtype": "f"},))


def _attempt(route: str, stage: str, kind: str, op: str = "", node: str = "", error: str = "boom") -> dict:
    return {"route": route, "stage": stage, "kind": kind, "op": op, "node": node, "error": error}


@pytest.mark.parametrize(("attempts", "hint_has"), [
    ([_attempt("torch", "litert-torch", "data-dependent-shape", "Slice", "n7"),
      _attempt("onnx2tf", "onnx2tf", "", "Slice", "n7")], "--input-shape"),
    ([_attempt("torch", "onnx2torch", "unsupported-op", "ReverseSequence", "rs"),
      _attempt("onnx2tf", "onnx2tf", "unsupported-op", "ReverseSequence", "rs")], "ReverseSequence is not supported"),
    ([_attempt("torch", "onnx2torch", "unsupported-op", "ReverseSequence", "rs"),
      _attempt("onnx2tf", "setup", "unavailable", error="not installed: tensorflow")], "--with-onnx2tf"),
])
def test_conversion_failures_are_conversion_errors_with_a_fitting_hint(attempts: list, hint_has: str) -> None:
    first = attempts[0]
    error = convert.conversion_error({**first, "attempts": attempts}, _job())
    assert isinstance(error, ConversionError) and isinstance(error, CompileError)
    assert not isinstance(error, AccuracyBudgetExceeded) and error.code == "E510"
    assert (error.route, error.node, error.op) == ("torch", first["node"], first["op"])
    assert error.converter == "onnx2torch+litert-torch" and hint_has in error.hint
    assert f"at node {first['node']!r} ({first['op']})" in error.message
    assert "raise --max-drop" not in error.hint and "--precision fp32" not in error.hint


def test_a_quantizer_failure_names_the_quantizer_and_the_route() -> None:
    error = convert.conversion_error({**_attempt("torch", "quantize", "", error="ValueError: x"), "attempts": []},
                                     _job())
    assert error.code == "E510" and error.converter == "ai-edge-quantizer" and "int8-dynamic" in error.hint


def test_run_conversion_turns_a_failed_result_into_a_conversion_error(monkeypatch, tmp_path: Path) -> None:
    job = convert.ConvertJob(str(tmp_path / "m.onnx"), str(tmp_path / "m.tflite"), str(tmp_path / "r.json"), "fp32",
                             ({"name": "x", "shape": [1], "dtype": "float32"},))
    failed = {**_attempt("torch", "onnx2torch", "unsupported-op", "Foo", "f0"), "attempts": []}

    class Child:
        def run(self, job_file: Path, *, timeout_s: float) -> int:
            Path(job.result).write_text(json.dumps(failed))
            return 2

    monkeypatch.setattr(convert, "converter_process", lambda toolchain: Child())
    with pytest.raises(ConversionError, match="at node 'f0' \\(Foo\\)"):
        convert.run_conversion(None, job, tmp_path)  # type: ignore[arg-type]
    assert not Path(job.result).exists()


def test_route_order_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv(convert.ROUTES_ENV, "onnx2tf, torch")
    assert convert.routes() == ("onnx2tf", "torch")
    monkeypatch.setenv(convert.ROUTES_ENV, "tflite2onnx")
    with pytest.raises(CompileError, match="unknown routes"):
        convert.routes()
    monkeypatch.delenv(convert.ROUTES_ENV)
    assert convert.routes() == ("torch", "onnx2tf")


def test_signature_keys_follow_the_graph_order() -> None:
    order = convert_worker._keys_in_order
    assert order(["output_10", "output_2", "output_0"], ["a", "b", "c"]) == ["output_0", "output_2", "output_10"]
    assert order(["b", "a"], ["a", "b"]) == ["a", "b"]
    assert order(["x_1", "y_in"], ["y:in", "x.1"]) == ["y_in", "x_1"]
    assert order(["a"], ["a", "b"]) is None


def test_the_onnx2tf_route_is_added_only_to_a_toolchain_edgeopt_created(tmp_path: Path) -> None:
    import sys

    from edgeopt.plugin import TargetError

    from edgeopt_edgetpu.toolchain import ONNX2TF_MARKER, Toolchain, add_onnx2tf, has_onnx2tf

    with pytest.raises(TargetError, match="not created by edgeopt"):
        add_onnx2tf(Toolchain(Path(sys.executable), "env"))
    cached = Toolchain(tmp_path / "bin" / "python", "cache")
    assert not has_onnx2tf(cached)
    (tmp_path / ONNX2TF_MARKER).write_text("tensorflow\n")
    assert has_onnx2tf(cached) and add_onnx2tf(cached) == 0.0  # already there: nothing installed
