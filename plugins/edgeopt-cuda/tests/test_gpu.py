"""On a GPU: the runner on the CUDA and TensorRT providers, NVML energy, and a deploy end to end.

Every test here is marked ``gpu``; conftest skips them with the target's own reason unless ONNX Runtime's
CUDA provider really starts on this machine. Run them with ``pytest -q -m gpu plugins/edgeopt-cuda``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from cuda_models import calibration_for, conv_net, relative_error
from edgeopt.plugin import ReferenceRunner, measure, metered

from edgeopt_cuda.compile import compile_plan
from edgeopt_cuda.config import read_config
from edgeopt_cuda.nvml import NvmlMeter, gpu_facts
from edgeopt_cuda.plan import plan_candidates
from edgeopt_cuda.runner import OrtCudaRunner, cache_root_for
from edgeopt_cuda.status import current_status

pytestmark = pytest.mark.gpu
DIGITS = Path(__file__).resolve().parents[3] / "examples" / "digits"


def _runner(compiled, batch: int = 1) -> OrtCudaRunner:  # noqa: ANN001
    config = read_config(compiled.directory, precision=compiled.plan.precision)
    return OrtCudaRunner(compiled.model_path, config=config, cache_root=cache_root_for(compiled.directory), batch=batch)


def _compiled(graph, device, label_word: str, tmp_path: Path, *, tensorrt: bool = False):  # noqa: ANN001, ANN202
    plan = next(p for p in plan_candidates(graph, device, "auto", tensorrt=tensorrt) if label_word in p.label)
    return compile_plan(graph, plan, calibration_for(graph, n=32), tmp_path / "out", status=current_status())


def _worst_error(graph, runner, seeds=(1, 2, 3)) -> float:  # noqa: ANN001
    reference = ReferenceRunner(graph.path)
    errors = []
    for seed in seeds:
        feeds = calibration_for(graph, n=1, seed=seed).batches(1)[0]
        errors.append(relative_error(reference.run(feeds)[0], runner.run(feeds)[0]))
    return max(errors)


def _needs_tensorrt() -> None:
    if not current_status().tensorrt:
        pytest.skip(f"TensorRT EP not usable: {current_status().tensorrt_reason}")


@pytest.mark.parametrize(("word", "bound"), [("TF32 off", 1e-4), ("tf32", 5e-3), ("fp16 converted", 1e-2)])
def test_cuda_ep_runner_matches_the_fp32_reference(conv_graph, h100, tmp_path, word, bound) -> None:
    compiled = _compiled(conv_graph, h100, word, tmp_path)
    assert any(n.startswith("loaded on the GPU") for n in compiled.notes)
    runner = _runner(compiled)
    try:
        assert runner.providers[0] == "CUDAExecutionProvider"
        assert runner.cuda_graph, runner.notes  # a static all-GPU graph must capture
        assert _worst_error(conv_graph, runner) < bound
    finally:
        runner.close()


def test_static_model_runs_at_another_batch(conv_graph, h100, tmp_path) -> None:
    runner = _runner(_compiled(conv_graph, h100, "TF32 off", tmp_path), batch=4)
    single = _runner(_compiled(conv_graph, h100, "TF32 off", tmp_path / "b1"))
    feeds = calibration_for(conv_graph, n=4, seed=9).batches(4)[0]
    (batched,) = runner.run(feeds)
    per_sample = np.concatenate([single.run({"x": feeds["x"][i : i + 1]})[0] for i in range(4)])
    np.testing.assert_allclose(batched, per_sample, rtol=1e-4, atol=1e-6)


def test_harness_times_the_runner_and_resident_runs_work(conv_graph, h100, tmp_path) -> None:
    runner = _runner(_compiled(conv_graph, h100, "TF32 off", tmp_path))
    feeds = calibration_for(conv_graph, n=8, seed=1).batches(1)
    stats = measure(runner, feeds, warmup=5, runs=50)
    assert stats.runs == 50 and 0 < stats.min <= stats.p50
    runner.run_resident()
    runner.close()


def test_nvml_meter_measures_energy_around_timed_runs(conv_graph, h100, tmp_path) -> None:
    try:
        meter = NvmlMeter()
    except Exception as exc:  # e.g. a GPU without an energy counter
        pytest.skip(f"no NVML energy counter: {exc}")
    facts = gpu_facts()
    assert facts is not None and facts.get("power_limit_w", 0) > 0
    runner = _runner(_compiled(conv_graph, h100, "TF32 off", tmp_path))
    feeds = calibration_for(conv_graph, n=8, seed=1).batches(1)
    with metered([meter]) as reading:
        stats = measure(runner, feeds, warmup=0, budget_s=2.0)
    seconds = stats.mean * stats.runs
    assert reading.method == "nvml"
    assert 0 < reading.joules < facts["power_limit_w"] * seconds * 1.5


def test_tensorrt_fp16_and_int8_build_cached_engines(conv_graph, h100, tmp_path) -> None:
    _needs_tensorrt()
    for word, bound in (("trt_fp16_enable", 1e-2), ("minmax symmetric, fp16 fallback", 0.1)):
        compiled = _compiled(conv_graph, h100, word, tmp_path / word[:4], tensorrt=True)
        runner = _runner(compiled)
        try:
            assert runner.providers[0] == "TensorrtExecutionProvider"
            assert _worst_error(conv_graph, runner) < bound
            assert runner.cache is not None and any(runner.cache.engines.iterdir())
        finally:
            runner.close()


def test_tensorrt_dynamic_batch_profile(tmp_path, h100) -> None:
    _needs_tensorrt()
    graph = conv_net(tmp_path / "dyn.onnx", batch="N")
    compiled = _compiled(graph, h100, "trt_fp16_enable", tmp_path, tensorrt=True)
    for batch in (1, 8):
        runner = _runner(compiled, batch=batch)
        (out,) = runner.run({"x": np.random.default_rng(batch).random((batch, 3, 16, 16), dtype=np.float32)})
        assert out.shape == (batch, 10)
        runner.close()


def test_deploy_end_to_end_with_batch_sweep_and_nvml(tmp_path, monkeypatch) -> None:
    import edgeopt as api

    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(tmp_path / "cache"))
    dep = api.deploy(
        str(DIGITS / "digits_cnn.onnx"), target="cuda", device="nvidia-h100", precision="auto",
        calib=str(DIGITS / "calib.npz"), eval=str(DIGITS / "eval.npz"), batch=[1, 8], out=tmp_path / "digits.edgeopt",
    )
    manifest = dep.manifest
    assert "cuda_config.json" in manifest["files"]
    energy = manifest["profile"]["energy"]["method"]
    assert energy == "nvml" or energy.startswith("estimated"), energy
    with api.load(dep.path) as predict:
        x = np.load(DIGITS / "eval.npz")["input"][:1]
        (out,) = predict({"input": x}).values()
        assert out.shape[0] == 1
