"""``OrtCudaRunner``'s control flow — provider check, fallback detection, CUDA-graph retry, caches — driven
through the real CPU onnxruntime dressed up as a GPU build (only session creation is faked: the sessions,
IO binding and runs are real CPU ones, with buffers on ``cpu``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from cuda_models import calibration_for, cpu_outputs
from edgeopt.plugin import CompileError, TargetUnavailable

from edgeopt_cuda import runner as runner_module
from edgeopt_cuda.config import EpConfig
from edgeopt_cuda.runner import SMOKE_RUNS, OrtCudaRunner
from edgeopt_cuda.runtime import Preload

CUDA, TRT, CPU = "CUDAExecutionProvider", "TensorrtExecutionProvider", "CPUExecutionProvider"
GRAPH_REFUSED = (
    "[ONNXRuntimeError] : 1 : FAIL : This session cannot use the CUDA Graph feature as requested by the user as "
    "all compute graph nodes have not been partitioned to the CUDA EP."
)


class FakeSession:
    """A real CPU session that reports the providers a GPU session would, and can fail its runs."""

    def __init__(self, real: Any, reported: list[str], fail_runs: bool) -> None:
        self._real, self._reported, self._fail_runs = real, reported, fail_runs
        self.runs = 0

    def get_providers(self) -> list[str]:
        return self._reported

    def get_inputs(self) -> Any:
        return self._real.get_inputs()

    def get_outputs(self) -> Any:
        return self._real.get_outputs()

    def io_binding(self) -> Any:
        return self._real.io_binding()

    def run_with_iobinding(self, binding: Any) -> None:
        self.runs += 1
        if self._fail_runs:
            raise RuntimeError("CUDA failure 900: operation not permitted when stream is capturing")
        self._real.run_with_iobinding(binding)


class FakeGpuOrt:
    """onnxruntime-gpu as the runner sees it, backed by the CPU build."""

    GraphOptimizationLevel = ort.GraphOptimizationLevel
    SessionOptions = ort.SessionOptions
    __version__ = ort.__version__

    def __init__(
        self, *, available=(TRT, CUDA, CPU), refuse_graph=False, fail_graph_runs=False, fallback=None, load_error=""
    ) -> None:
        self.available, self.fallback, self.load_error = available, fallback, load_error
        self.refuse_graph, self.fail_graph_runs = refuse_graph, fail_graph_runs
        self.created: list[list[tuple[str, dict[str, str]]]] = []
        self.sessions: list[FakeSession] = []

    def get_available_providers(self) -> list[str]:
        return list(self.available)

    def InferenceSession(self, source: bytes, sess_options: Any = None, providers: Any = None) -> FakeSession:  # noqa: N802
        self.created.append(providers)
        options = providers[0][1]
        graph = options.get("enable_cuda_graph") == "1" or options.get("trt_cuda_graph_enable") == "True"
        if graph and self.refuse_graph:
            raise RuntimeError(GRAPH_REFUSED)
        if self.load_error:
            raise RuntimeError(self.load_error)
        real = ort.InferenceSession(source, sess_options, providers=[CPU])
        reported = self.fallback or [providers[0][0], CPU]
        session = FakeSession(real, reported, fail_runs=graph and self.fail_graph_runs)
        self.sessions.append(session)
        return session


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    def install(**kwargs: Any) -> FakeGpuOrt:
        gpu = FakeGpuOrt(**kwargs)
        monkeypatch.setattr(runner_module, "import_onnxruntime", lambda **_: (gpu, Preload((), ())))
        return gpu

    return install


def _feeds(graph, seed: int = 3) -> dict[str, np.ndarray]:  # noqa: ANN001
    return calibration_for(graph, n=1, seed=seed).batches(1)[0]


def test_cuda_graph_run_uses_the_bound_session_and_smoke_runs(conv_graph, tmp_path: Path, fake) -> None:
    gpu = fake()
    runner = OrtCudaRunner(conv_graph.path, config=EpConfig(), cache_root=tmp_path / "cache", device="cpu")
    assert runner.cuda_graph and runner.providers == (CUDA, CPU)
    assert runner.notes == [f"providers: {CUDA}, {CPU}", "CUDA graph on: each run replays one captured graph"]
    ((name, options),) = gpu.created[0]
    assert (name, options["enable_cuda_graph"], options["use_tf32"]) == (CUDA, "1", "0")
    assert gpu.sessions[0].runs == SMOKE_RUNS
    (got,) = runner.run(_feeds(conv_graph))
    np.testing.assert_allclose(got, cpu_outputs(conv_graph.path, _feeds(conv_graph))[0], rtol=1e-6)
    assert runner.cache is None and not (tmp_path / "cache").exists()  # the CUDA EP caches nothing
    runner.close()
    with pytest.raises(RuntimeError, match="after close"):
        runner.run(_feeds(conv_graph))


def test_cuda_graph_refused_at_load_is_dropped_with_a_note(conv_graph, tmp_path: Path, fake) -> None:
    gpu = fake(refuse_graph=True)
    runner = OrtCudaRunner(conv_graph.path, config=EpConfig(), cache_root=tmp_path, device="cpu")
    assert not runner.cuda_graph
    assert any(n.startswith("CUDA graph off: ONNX Runtime cannot load model.onnx") for n in runner.notes)
    assert [p[0][1]["enable_cuda_graph"] for p in gpu.created] == ["1", "0"]
    assert runner.run(_feeds(conv_graph))[0].shape == (1, 10)


def test_cuda_graph_failing_in_the_smoke_runs_is_dropped(conv_graph, tmp_path: Path, fake) -> None:
    gpu = fake(fail_graph_runs=True)
    runner = OrtCudaRunner(conv_graph.path, config=EpConfig(), cache_root=tmp_path, device="cpu")
    assert not runner.cuda_graph
    assert "CUDA graph off: CUDA failure 900: operation not permitted when stream is capturing" in runner.notes
    assert len(gpu.created) == 2


def test_silent_fallback_to_cpu_is_target_unavailable(conv_graph, tmp_path: Path, fake) -> None:
    fake(fallback=[CPU])
    with pytest.raises(TargetUnavailable, match=f"fell back from {CUDA} to {CPU}") as info:
        OrtCudaRunner(conv_graph.path, config=EpConfig(), cache_root=tmp_path, device="cpu")
    assert "edgeopt targets" in info.value.hint


def test_tensorrt_falling_back_to_cuda_is_target_unavailable(conv_graph, tmp_path: Path, fake) -> None:
    fake(fallback=[CUDA, CPU])
    with pytest.raises(TargetUnavailable, match=f"fell back from {TRT} to {CUDA}"):
        OrtCudaRunner(conv_graph.path, config=EpConfig(provider="tensorrt"), cache_root=tmp_path, device="cpu")


def test_missing_tensorrt_provider_is_target_unavailable(conv_graph, tmp_path: Path, fake) -> None:
    fake(available=(CUDA, CPU))
    with pytest.raises(TargetUnavailable, match="no TensorrtExecutionProvider"):
        OrtCudaRunner(conv_graph.path, config=EpConfig(provider="tensorrt"), cache_root=tmp_path, device="cpu")


def test_tensorrt_session_gets_its_engine_folder_and_the_cuda_ep_behind_it(conv_graph, tmp_path: Path, fake) -> None:
    gpu = fake()
    config = EpConfig(provider="tensorrt", fp16=True)
    runner = OrtCudaRunner(conv_graph.path, config=config, cache_root=tmp_path, batch=2, device="cpu")
    (trt_name, trt), (cuda_name, cuda) = gpu.created[0]
    assert (trt_name, cuda_name) == (TRT, CUDA)
    assert trt["trt_engine_cache_path"] == str(runner.cache.engines) and runner.cache.engines.is_dir()
    assert runner.cache.engines.name.endswith("-b2") and runner.cache.timing == tmp_path / "timing"
    assert (trt["trt_fp16_enable"], cuda["enable_cuda_graph"]) == ("True", "0")
    feeds = calibration_for(conv_graph, n=2, seed=4).batches(2)[0]
    assert runner.run(feeds)[0].shape == (2, 10)  # the static batch-1 model was re-batched


def test_a_model_the_provider_cannot_load_is_a_compile_error(conv_graph, tmp_path: Path, fake) -> None:
    gpu = fake(load_error="[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an implementation for Foo")
    with pytest.raises(CompileError, match="cannot load model.onnx on CUDAExecutionProvider: .*NOT_IMPLEMENTED"):
        OrtCudaRunner(conv_graph.path, config=EpConfig(), cache_root=tmp_path, device="cpu")
    assert len(gpu.created) == 2  # tried with the CUDA graph, then without


def test_run_errors_are_explained(conv_graph, tmp_path: Path, fake) -> None:
    fake()
    runner = OrtCudaRunner(conv_graph.path, config=EpConfig(), cache_root=tmp_path, device="cpu")
    from edgeopt.plugin import InputSpecError

    with pytest.raises(InputSpecError, match="the model expects float32"):
        runner.run({"x": np.zeros((1, 3, 8, 8), np.float32)})
