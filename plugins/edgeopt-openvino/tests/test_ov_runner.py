"""The runner: latency mode at batch 1, split throughput mode above, inputs checked, outputs copied."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openvino as ov
import pytest
from edgeopt.plugin import Compiled, InputSpecError, Plan
from ov_models import reference_outputs, relative_error, samples_for

from edgeopt_openvino.compile import compile_plan
from edgeopt_openvino.devices import target_spec
from edgeopt_openvino.plan import plan_candidates
from edgeopt_openvino.runner import LATENCY, THROUGHPUT, OpenVinoRunner, inference_precision, runtime_config

CPU = target_spec("openvino")


@pytest.fixture
def fp32(conv_graph, avx2, tmp_path: Path) -> Compiled:
    (plan,) = plan_candidates(conv_graph, CPU, avx2, "fp32")
    return compile_plan(conv_graph, plan, CPU, samples_for(conv_graph), tmp_path / "fp32")


def _per_sample(graph, data) -> np.ndarray:
    return np.concatenate([reference_outputs(graph, feeds)[0] for feeds in data.batches(1)])


def test_batch_1_runs_one_latency_request(fp32, conv_graph) -> None:
    runner = OpenVinoRunner(fp32.model_path, threads=2)
    try:
        assert runner.mode == "latency" and runner.streams == 1
        assert runner.config["PERFORMANCE_HINT"] == LATENCY
        assert runner.config["INFERENCE_NUM_THREADS"] == "2" and runner.config["INFERENCE_PRECISION_HINT"] == "f32"
        data = samples_for(conv_graph, n=3, seed=4)
        got = np.concatenate([runner.run(feeds)[0] for feeds in data.batches(1)])
    finally:
        runner.close()
    assert relative_error(_per_sample(conv_graph, data), got) < 1e-5


def test_a_larger_batch_splits_over_throughput_streams(fp32, conv_graph) -> None:
    optimal = ov.Core().compile_model(str(fp32.model_path), "CPU", {"PERFORMANCE_HINT": THROUGHPUT})
    if int(optimal.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")) < 2:
        pytest.skip("OpenVINO wants a single request on this machine")
    data = samples_for(conv_graph, n=4, seed=5)
    runner = OpenVinoRunner(fp32.model_path, batch=4, threads=2)
    try:
        assert runner.streams >= 2 and 4 % runner.streams == 0
        assert runner.mode == f"throughput x{runner.streams}"
        assert runner.config["PERFORMANCE_HINT"] == THROUGHPUT
        assert runner.config["NUM_STREAMS"] == str(runner.streams)
        (got,) = runner.run(data.batches(4)[0])
    finally:
        runner.close()
    assert got.shape == (4, 10)
    assert relative_error(_per_sample(conv_graph, data), got) < 1e-5


def test_a_batch_no_stream_count_divides_runs_on_one_request(fp32, conv_graph) -> None:
    data = samples_for(conv_graph, n=3, seed=6)
    runner = OpenVinoRunner(fp32.model_path, batch=3)  # 3 has no divisor among 2 streams
    try:
        (got,) = runner.run(data.batches(3)[0])
        assert runner.streams in (1, 3)
    finally:
        runner.close()
    assert relative_error(_per_sample(conv_graph, data), got) < 1e-5


def test_inputs_that_do_not_fit_raise_input_spec_error(fp32) -> None:
    runner = OpenVinoRunner(fp32.model_path)
    good = np.zeros((1, 3, 16, 16), np.float32)
    try:
        runner.run({"x": good})
        with pytest.raises(InputSpecError, match=r"'x' is float32\[1, 3, 16, 15\].*expects float32\[1, 3, 16, 16\]"):
            runner.run({"x": good[..., :15]})
        with pytest.raises(InputSpecError, match="float64"):
            runner.run({"x": good.astype(np.float64)})
        with pytest.raises(InputSpecError, match="built for batch 1"):
            runner.run({"x": np.zeros((2, 3, 16, 16), np.float32)})
        with pytest.raises(InputSpecError, match=r"missing \['x'\], unexpected \['y'\]"):
            runner.run({"y": good})
    finally:
        runner.close()


def test_outputs_are_copies_not_views_of_the_next_run(fp32, conv_graph) -> None:
    data = samples_for(conv_graph, n=2, seed=7).batches(1)
    runner = OpenVinoRunner(fp32.model_path)
    try:
        (first,) = runner.run(data[0])
        kept = first.copy()
        runner.run(data[1])
    finally:
        runner.close()
    assert np.array_equal(first, kept)
    with pytest.raises(RuntimeError, match="after close"):
        runner.run(data[0])


def test_precision_hints_follow_what_was_measured() -> None:
    assert inference_precision("fp32", "CPU", ("FP32", "FP16", "BF16")) == "f32"
    assert inference_precision("int8", "CPU", ("FP32", "INT8", "BF16")) == "f32"  # never bf16 behind our back
    assert inference_precision("fp16", "CPU", ("FP32",)) == "f32"
    assert inference_precision("fp16", "GPU", ("FP32", "FP16")) == "f16"
    assert inference_precision("int8", "GPU", ("FP32", "FP16", "INT8")) == "f16"
    config = runtime_config(ov.Core(), "CPU", precision="fp32", hint=LATENCY, threads=3)
    assert config == {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": "3"}


def test_runner_hook_uses_the_plan_threads(fp32, openvino_target, avx2) -> None:
    from edgeopt.plugin import RunSettings

    import edgeopt_openvino

    runner = edgeopt_openvino.edgeopt_runner(fp32, openvino_target, avx2, RunSettings(batch=1))
    try:
        assert runner.config["INFERENCE_NUM_THREADS"] == str(fp32.plan.threads)
    finally:
        runner.close()
    loaded = Compiled(fp32.directory, fp32.model_file, fp32.files, Plan("openvino", "fp32"), fp32.runtime)
    runner = edgeopt_openvino.edgeopt_runner(loaded, openvino_target, avx2, RunSettings(batch=1, threads=1))
    try:
        assert runner.config["INFERENCE_NUM_THREADS"] == "1"
    finally:
        runner.close()


def test_reused_input_arrays_are_read_afresh_and_the_tensor_cache_stays_bounded(fp32, conv_graph) -> None:
    """Wrappers over the caller's arrays are reused (no copy): an array changed in place is seen on the next run,
    a new array with an old one's id is not mistaken for it, and the cache never grows past its bound."""
    from edgeopt_openvino import runner as runner_module

    data = samples_for(conv_graph, n=2, seed=9).batches(1)
    expected = [reference_outputs(conv_graph, feeds)[0] for feeds in data]
    feeds = {name: array.copy() for name, array in data[0].items()}
    runner = OpenVinoRunner(fp32.model_path)
    try:
        assert relative_error(expected[0], runner.run(feeds)[0]) < 1e-5
        for name in feeds:
            feeds[name][...] = data[1][name]  # same array object, new contents
        assert relative_error(expected[1], runner.run(feeds)[0]) < 1e-5
        for i in range(runner_module._TENSOR_CACHE + 5):
            fresh = {name: array + 0.0 for name, array in data[i % 2].items()}  # new objects (ids may be reused)
            assert relative_error(expected[i % 2], runner.run(fresh)[0]) < 1e-5
        assert len(runner._tensors) <= runner_module._TENSOR_CACHE
    finally:
        runner.close()
