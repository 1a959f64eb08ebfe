"""The runner's parts that do not need a GPU: IO binding semantics (on CPU buffers), batching, caches,
and refusing to run where the CUDA provider is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from cuda_models import calibration_for, conv_net, cpu_outputs, cpu_session, save_graph
from edgeopt.plugin import CompileError, InputSpecError, TargetUnavailable
from onnx import TensorProto, helper

from edgeopt_cuda.config import EpConfig, TrtProfile
from edgeopt_cuda.runner import BoundSession, OrtCudaRunner, cache_root_for, engine_cache, model_for_batch

NO_CUDA = "CUDAExecutionProvider" not in ort.get_available_providers()


def test_bound_session_returns_what_the_plain_session_returns(conv_graph) -> None:
    bound = BoundSession(cpu_session(conv_graph.path), device="cpu")
    assert bound.fixed_addresses
    for seed in (1, 2, 3):
        feeds = calibration_for(conv_graph, n=1, seed=seed).batches(1)[0]
        (got,) = bound.run(feeds)
        (want,) = cpu_outputs(conv_graph.path, feeds)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


def test_outputs_are_new_arrays_not_views_of_the_bound_buffer(conv_graph) -> None:
    bound = BoundSession(cpu_session(conv_graph.path), device="cpu")
    a_feeds, b_feeds = (calibration_for(conv_graph, n=1, seed=s).batches(1)[0] for s in (4, 5))
    (first,) = bound.run(a_feeds)
    kept = first.copy()
    bound.run(b_feeds)
    np.testing.assert_array_equal(first, kept)  # the second run did not overwrite the first result


def test_each_run_uploads_its_feeds_and_resident_runs_reuse_them(conv_graph) -> None:
    bound = BoundSession(cpu_session(conv_graph.path), device="cpu")
    a, b = (calibration_for(conv_graph, n=1, seed=s).batches(1)[0] for s in (6, 7))
    (out_a,) = bound.run(a)
    (out_b,) = bound.run(b)
    assert not np.allclose(out_a, out_b)
    bound.upload(a)
    bound.run_resident()
    (again,) = bound.download()
    np.testing.assert_allclose(again, out_a, rtol=1e-6)


def test_dynamic_shapes_are_bound_per_run(tmp_path: Path) -> None:
    graph = conv_net(tmp_path / "dyn.onnx", batch="N")
    bound = BoundSession(cpu_session(graph.path), device="cpu")
    assert not bound.fixed_addresses
    for n in (1, 3):
        feeds = {"x": np.random.default_rng(n).random((n, 3, 16, 16), dtype=np.float32)}
        (got,) = bound.run(feeds)
        assert got.shape == (n, 10)
        np.testing.assert_allclose(got, cpu_outputs(graph.path, feeds)[0], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("feeds", "message"),
    [
        ({"x": np.zeros((2, 3, 16, 16), np.float32)}, r"float32\[2, 3, 16, 16\], the model expects float32\[1, 3"),
        ({"x": np.zeros((1, 3, 16, 16), np.float64)}, "float64"),
        ({"image": np.zeros((1, 3, 16, 16), np.float32)}, r"missing \['x'\], unexpected \['image'\]"),
    ],
)
def test_feeds_that_do_not_fit_are_input_errors(conv_graph, feeds, message) -> None:
    bound = BoundSession(cpu_session(conv_graph.path), device="cpu")
    with pytest.raises(InputSpecError, match=message):
        bound.run(feeds)


def test_multi_input_model_binds_every_input(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"], name="add")],
        "add",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 3]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
    )
    g = save_graph(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "add.onnx")
    bound = BoundSession(cpu_session(g.path), device="cpu")
    (y,) = bound.run({"a": np.ones((2, 3), np.float32), "b": np.full((2, 3), 2.0, np.float32)})
    np.testing.assert_array_equal(y, np.full((2, 3), 3.0, np.float32))


def test_static_model_is_rebatched_and_dynamic_one_kept(conv_graph, tmp_path: Path) -> None:
    fp32 = EpConfig()
    eight = onnx.load_from_string(model_for_batch(conv_graph.path, 8, fp32))
    assert eight.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 8
    assert model_for_batch(conv_graph.path, 1, fp32) == onnx.load(str(conv_graph.path)).SerializeToString()
    dyn = conv_net(tmp_path / "dyn.onnx", batch="N")
    assert model_for_batch(dyn.path, 4, fp32) == onnx.load(str(dyn.path)).SerializeToString()


def test_dynamic_batch_beyond_the_tensorrt_profile_is_refused(tmp_path: Path) -> None:
    dyn = conv_net(tmp_path / "dyn.onnx", batch="N")
    config = EpConfig(provider="tensorrt", profiles=(TrtProfile("x", (1, 3, 16, 16), (1, 3, 16, 16), (8, 3, 16, 16)),))
    assert model_for_batch(dyn.path, 8, config)
    with pytest.raises(CompileError, match="batch 16 exceeds the TensorRT optimization profile"):
        model_for_batch(dyn.path, 16, config)


def test_engine_cache_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A work dir keeps its engines; an artifact's go to the core's cache folder, ``tensorrt/`` in it."""
    assert cache_root_for(tmp_path / "candidate-0") == tmp_path / "candidate-0" / "trt_cache"
    artifact = tmp_path / "model-cuda.edgeopt"
    artifact.mkdir()
    (artifact / "manifest.json").write_text("{}")
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", "/x")
    assert cache_root_for(artifact) == Path("/x/tensorrt")
    monkeypatch.delenv("EDGEOPT_CACHE_DIR")
    monkeypatch.setattr("platformdirs.user_cache_dir", lambda app, appauthor=None: f"/platform/{app}")
    assert cache_root_for(artifact) == Path("/platform/edgeopt/tensorrt")


def test_engines_are_kept_apart_by_model_settings_and_batch(tmp_path: Path) -> None:
    fp16 = EpConfig(provider="tensorrt", fp16=True)
    fp32 = EpConfig(provider="tensorrt")
    a = engine_cache(tmp_path, b"model", fp16, 1)
    assert a.timing == tmp_path / "timing" and a.engines.parent == tmp_path
    others = [engine_cache(tmp_path, b"model", fp32, 1), engine_cache(tmp_path, b"model", fp16, 8),
              engine_cache(tmp_path, b"other", fp16, 1)]
    assert len({a.engines, *(o.engines for o in others)}) == 4
    assert engine_cache(tmp_path, b"model", fp16, 1) == a


@pytest.mark.skipif(not NO_CUDA, reason="this onnxruntime has the CUDA provider")
def test_runner_refuses_an_onnxruntime_without_cuda(conv_graph, tmp_path: Path) -> None:
    with pytest.raises(TargetUnavailable, match="has no CUDAExecutionProvider") as info:
        OrtCudaRunner(conv_graph.path, config=EpConfig(), cache_root=tmp_path)
    assert "pip uninstall -y onnxruntime && pip install onnxruntime-gpu==1.31.1" in info.value.hint
