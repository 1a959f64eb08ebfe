"""Memory measured in a fresh interpreter through the installed cpu plugin."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeopt.measure.devices import host_profile
from edgeopt.measure.memory import FRESH_PROCESS, measure_memory
from edgeopt.plugin.manager import get_plugin_manager, load_runner
from edgeopt.types import Compiled, Plan, RunSettings

WIDTH = 9216  # a 256 x 9216 float32 weight: 9 MiB


def test_fresh_process_sees_the_model_weights(tmp_path: Path) -> None:
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((256, WIDTH)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "mm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, WIDTH])],
        initializer=[w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "model.onnx")
    target = get_plugin_manager().target("cpu")
    compiled = Compiled(
        directory=tmp_path,
        model_file="model.onnx",
        files=("model.onnx",),
        plan=Plan(target="cpu", precision="fp32"),
        runtime="onnxruntime",
    )
    feeds = [{"x": np.ones((1, 256), np.float32)}]
    load = functools.partial(load_runner, compiled, target, host_profile(), RunSettings(batch=1, threads=1))
    stats = measure_memory(load, feeds)
    assert stats.method.endswith(FRESH_PROCESS)
    assert stats.peak_bytes >= stats.load_bytes > 8 << 20  # the 9 MiB weight shows against a clean baseline
