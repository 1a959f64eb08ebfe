"""The runner runs what it was given and explains inputs that do not fit."""

from __future__ import annotations

import numpy as np
import pytest
from edgeopt.plugin import InputSpecError, Runner

from edgeopt_cpu.runner import OrtCpuRunner


def test_runner_is_a_runner_and_returns_outputs_in_order(conv_graph) -> None:
    runner = OrtCpuRunner(conv_graph.path, threads=1)
    assert isinstance(runner, Runner)
    outputs = runner.run({"x": np.zeros((1, 3, 16, 16), np.float32)})
    assert [o.shape for o in outputs] == [(1, 10)]
    runner.close()
    with pytest.raises(RuntimeError, match="after close"):
        runner.run({"x": np.zeros((1, 3, 16, 16), np.float32)})


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({"x": np.zeros((2, 3, 16, 16), np.float32)}, r"float32\[2, 3, 16, 16\], the model expects float32\[1, 3"),
        ({"x": np.zeros((1, 3, 16, 16), np.float64)}, "float64"),
        ({"image": np.zeros((1, 3, 16, 16), np.float32)}, r"missing \['x'\], unexpected \['image'\]"),
    ],
)
def test_mismatched_feeds_raise_input_spec_error(conv_graph, feeds, message) -> None:
    runner = OrtCpuRunner(conv_graph.path, threads=1)
    with pytest.raises(InputSpecError, match=message):
        runner.run(feeds)


def test_static_batch_model_is_rebatched_and_matches_per_sample_runs(conv_graph) -> None:
    import numpy as np
    from edgeopt.plugin import batch_matches

    single = OrtCpuRunner(conv_graph.path, threads=1, batch=1)
    batched = OrtCpuRunner(conv_graph.path, threads=1, batch=4)
    x = np.random.default_rng(0).standard_normal((4, 3, 16, 16)).astype(np.float32)
    assert batched.run({"x": x})[0].shape[0] == 4
    assert batch_matches(batched.run, single.run, {"x": x}) is None


def test_failure_inside_the_model_is_a_compile_error(tmp_path) -> None:
    import onnx
    from edgeopt.plugin import CompileError
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")],
        "reshape",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8]),
            helper.make_tensor_value_info("shape", TensorProto.INT64, [2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    path = tmp_path / "reshape.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    runner = OrtCpuRunner(path, threads=1)
    assert runner.run({"x": np.ones((1, 8), np.float32), "shape": np.array([2, 4])})[0].shape == (2, 4)
    with pytest.raises(CompileError, match="ONNX Runtime failed running reshape.onnx"):
        runner.run({"x": np.ones((1, 8), np.float32), "shape": np.array([3, 3])})
