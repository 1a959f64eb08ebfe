"""Availability and its reasons: (a) no CUDA provider, (b) no GPU/driver, (c) provider falls back to CPU."""

from __future__ import annotations

import types
from pathlib import Path

import pytest

from edgeopt_cuda import status as st
from edgeopt_cuda.status import (
    CUDA_EP,
    SWAP_COMMAND,
    TRT_EP,
    GpuCheck,
    ProbeResult,
    cuda_status,
    detect_gpu,
    missing_library,
    parse_probe,
    pip_package_for,
    probe,
    probe_problem,
    provider_problem,
)

# What ONNX Runtime's C++ logger prints when a provider library cannot be loaded (format of ORT 1.2x).
CUBLAS_LOG = (
    "2026-11-23 12:00:00.0 [E:onnxruntime:Default, provider_bridge_ort.cc:2167 TryGetProviderInfo_CUDA] "
    "/onnxruntime_src/onnxruntime/core/session/provider_bridge_ort.cc:1778 onnxruntime::Provider& "
    "onnxruntime::ProviderLibrary::Get() [ONNXRuntimeError] : 1 : FAIL : Failed to load library "
    "libonnxruntime_providers_cuda.so with error: libcublasLt.so.13: cannot open shared object file: "
    "No such file or directory\n"
    "2026-11-23 12:00:00.0 [W:onnxruntime:Default, onnxruntime_pybind_state.cc:1022 "
    "CreateExecutionProviderInstance] Failed to create CUDAExecutionProvider. Require cuDNN 9.* and CUDA 13.*."
)
CUDNN_LOG = "Could not load library libcudnn_graph.so.9. Error: libcudnn_graph.so.9: cannot open shared object file"
TRT_LOG = (
    "[E:onnxruntime:Default, provider_bridge_ort.cc] Failed to load library libonnxruntime_providers_tensorrt.so "
    "with error: libnvinfer.so.10: cannot open shared object file: No such file or directory"
)


class FakeOrt(types.SimpleNamespace):
    def get_available_providers(self) -> list[str]:
        return list(self.providers)


def _fake_nvml(*, fail: Exception | None = None, count: int = 1) -> types.ModuleType:
    nvml = types.ModuleType("pynvml")

    def init() -> None:
        if fail is not None:
            raise fail

    nvml.nvmlInit = init
    nvml.nvmlDeviceGetCount = lambda: count
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"handle{i}"
    nvml.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"
    nvml.nvmlSystemGetDriverVersion = lambda: "580.65.06"
    return nvml


# --- (a) ------------------------------------------------------------------------------------------


def test_cpu_build_is_told_to_swap_for_the_gpu_build() -> None:
    reason = provider_problem(["AzureExecutionProvider", "CPUExecutionProvider"], ["onnxruntime"], "1.32.0")
    assert reason is not None
    assert reason.startswith("onnxruntime 1.32.0 has no CUDAExecutionProvider")
    assert SWAP_COMMAND in reason
    assert SWAP_COMMAND == "pip uninstall -y onnxruntime && pip install onnxruntime-gpu==1.31.1"


def test_both_packages_in_one_folder_is_named_as_such() -> None:
    reason = provider_problem(["CPUExecutionProvider"], ["onnxruntime", "onnxruntime-gpu"], "1.32.0")
    assert reason is not None and "same onnxruntime/ folder" in reason
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu==1.31.1" in reason


def test_a_build_with_the_cuda_provider_has_no_problem() -> None:
    assert provider_problem([TRT_EP, CUDA_EP, "CPUExecutionProvider"], ["onnxruntime-gpu"], "1.31.1") is None


def test_this_environment_reports_its_real_distribution() -> None:
    import onnxruntime as ort

    found = st.ort_distributions()
    assert found, "onnxruntime is importable, so some distribution provides it"
    if CUDA_EP not in ort.get_available_providers():
        assert f"{found[0]} {ort.__version__} has no CUDAExecutionProvider" in provider_problem(
            ort.get_available_providers(), found, ort.__version__
        )


# --- (b) ------------------------------------------------------------------------------------------


def test_no_nvml_and_no_device_node_means_no_gpu(tmp_path: Path) -> None:
    check = detect_gpu(nvml=_fake_nvml(fail=OSError("NVML Shared Library Not Found")), device_nodes=[tmp_path / "nv0"])
    assert not check.found
    assert "NVML: NVML Shared Library Not Found" in check.detail and str(tmp_path / "nv0") in check.detail


def test_nvml_finds_the_gpu_and_driver(tmp_path: Path) -> None:
    check = detect_gpu(nvml=_fake_nvml(count=2), device_nodes=[tmp_path / "nv0"])
    assert check.found and check.detail == "NVIDIA H100 80GB HBM3 (+1 more), driver 580.65.06"


def test_a_device_node_counts_without_nvml(tmp_path: Path) -> None:  # Jetson: nvgpu driver, no NVML
    node = tmp_path / "nvhost-ctrl-gpu"
    node.touch()
    check = detect_gpu(nvml=_fake_nvml(fail=RuntimeError("NVML not supported")), device_nodes=[tmp_path / "x", node])
    assert check.found and str(node) in check.detail


def test_nvml_seeing_no_gpu_is_not_a_gpu(tmp_path: Path) -> None:
    assert not detect_gpu(nvml=_fake_nvml(count=0), device_nodes=[tmp_path / "nv0"]).found


# --- (c) ------------------------------------------------------------------------------------------


def test_missing_library_names_the_cuda_library_not_the_provider() -> None:
    assert missing_library(CUBLAS_LOG) == "libcublasLt.so.13"
    assert missing_library(CUDNN_LOG) == "libcudnn_graph.so.9"
    assert missing_library(TRT_LOG) == "libnvinfer.so.10"
    assert missing_library("all fine") is None


def test_pip_packages_for_cuda13_libraries() -> None:
    assert pip_package_for("libcudnn.so.9") == "nvidia-cudnn-cu13"
    assert pip_package_for("libcublasLt.so.13") == "nvidia-cublas"
    assert pip_package_for("libcudart.so.13") == "nvidia-cuda-runtime"
    assert pip_package_for("libnvinfer.so.10") == "'tensorrt-cu13-libs>=10,<11'"
    assert pip_package_for("libcuda.so.1") is None


def test_fallback_with_missing_library_names_it_and_the_fix() -> None:
    result = ProbeResult(CUDA_EP, ("CPUExecutionProvider",), "", CUBLAS_LOG)
    reason = probe_problem(result)
    assert reason is not None
    assert reason.startswith("CUDAExecutionProvider is built in but could not start: libcublasLt.so.13 is missing")
    assert "fell back to CPUExecutionProvider" in reason and "pip install nvidia-cublas" in reason


def test_missing_driver_library_points_at_the_driver() -> None:
    log = (
        "Failed to load library libonnxruntime_providers_cuda.so with error: "
        "libcuda.so.1: cannot open shared object file"
    )
    reason = probe_problem(ProbeResult(CUDA_EP, ("CPUExecutionProvider",), "", log))
    assert reason is not None and "libcuda.so.1 is missing" in reason and "NVIDIA driver" in reason


def test_fallback_without_a_named_library_quotes_onnx_runtime() -> None:
    log = "Failed to load library libonnxruntime_providers_cuda.so with error: undefined symbol: cudnnGetVersion"
    reason = probe_problem(ProbeResult(CUDA_EP, ("CPUExecutionProvider",), "", log))
    assert reason is not None and "ONNX Runtime said: undefined symbol: cudnnGetVersion" in reason
    assert probe_problem(ProbeResult(CUDA_EP, (CUDA_EP, "CPUExecutionProvider"), "", "")) is None


def test_probe_output_is_split_per_provider_and_survives_a_timeout() -> None:
    stdout = (
        '{"messages": ["Failed to load libcudnn.so.9"], "tensorrt_libs": []}\n'
        '{"provider": "CUDAExecutionProvider", "providers": ["CUDAExecutionProvider", "CPUExecutionProvider"], '
        '"error": ""}\n'
    )
    stderr = f"noise\n@@probe {CUDA_EP}\nall good\n@@probe {TRT_EP}\n{TRT_LOG}\n"
    results = parse_probe([CUDA_EP, TRT_EP], stdout, stderr, failure="no answer within 45 s")
    assert results[CUDA_EP].ok and "all good" in results[CUDA_EP].log and "noise" not in results[CUDA_EP].log
    assert not results[TRT_EP].ok and results[TRT_EP].error == "no answer within 45 s"
    assert missing_library(results[TRT_EP].log) == "libnvinfer.so.10"


def test_real_probe_subprocess_detects_the_silent_cpu_fallback() -> None:
    """The real ``python -m edgeopt_cuda.probe``: CPU starts; CUDA, where this ORT lacks it, falls back."""
    import onnxruntime as ort

    results = probe([CUDA_EP, "CPUExecutionProvider"], timeout_s=120)
    assert results["CPUExecutionProvider"].ok
    assert results["CPUExecutionProvider"].providers == ("CPUExecutionProvider",)
    if CUDA_EP not in ort.get_available_providers():
        assert not results[CUDA_EP].ok
        assert results[CUDA_EP].providers == ("CPUExecutionProvider",)
        assert "fell back to CPUExecutionProvider" in probe_problem(results[CUDA_EP])


# --- together -------------------------------------------------------------------------------------


def _never(providers: object) -> dict[str, ProbeResult]:
    raise AssertionError("no probe without a provider and a GPU")


def test_every_failed_check_is_in_the_reason() -> None:
    ort = FakeOrt(providers=["CPUExecutionProvider"], __version__="1.32.0")
    got = cuda_status(ort=ort, distributions=["onnxruntime"], gpu=GpuCheck(False, "NVML: not found"), prober=_never)
    assert not got.available and not got.tensorrt
    a, b = got.reason.split("; no NVIDIA GPU")
    assert SWAP_COMMAND in a
    assert b == "/driver found (NVML: not found)"


def test_gpu_build_without_gpu_says_only_that() -> None:
    ort = FakeOrt(providers=[CUDA_EP, "CPUExecutionProvider"], __version__="1.31.1")
    got = cuda_status(ort=ort, distributions=["onnxruntime-gpu"], gpu=GpuCheck(False, "no /dev/nvidia0"), prober=_never)
    assert got.reason == "no NVIDIA GPU/driver found (no /dev/nvidia0)"


def test_provider_that_falls_back_makes_the_target_unavailable() -> None:
    ort = FakeOrt(providers=[TRT_EP, CUDA_EP, "CPUExecutionProvider"], __version__="1.31.1")

    def prober(providers: list[str]) -> dict[str, ProbeResult]:
        return {p: ProbeResult(p, ("CPUExecutionProvider",), "", CUDNN_LOG) for p in providers}

    got = cuda_status(ort=ort, distributions=["onnxruntime-gpu"], gpu=GpuCheck(True, "H100"), prober=prober)
    assert not got.available and "libcudnn_graph.so.9 is missing" in got.reason and "nvidia-cudnn-cu13" in got.reason


@pytest.mark.parametrize("trt_log", [TRT_LOG, None])
def test_cuda_without_tensorrt_is_available_without_int8(trt_log: str | None) -> None:
    providers = [CUDA_EP, "CPUExecutionProvider"] if trt_log is None else [TRT_EP, CUDA_EP, "CPUExecutionProvider"]
    ort = FakeOrt(providers=providers, __version__="1.31.1")

    def prober(requested: list[str]) -> dict[str, ProbeResult]:
        results = {CUDA_EP: ProbeResult(CUDA_EP, (CUDA_EP, "CPUExecutionProvider"), "", "")}
        if TRT_EP in requested:
            results[TRT_EP] = ProbeResult(TRT_EP, (CUDA_EP, "CPUExecutionProvider"), "", trt_log or "")
        return results

    got = cuda_status(ort=ort, distributions=["onnxruntime-gpu"], gpu=GpuCheck(True, "H100"), prober=prober)
    assert got.available and got.reason == "" and not got.tensorrt
    if trt_log is None:
        assert got.tensorrt_reason == f"this onnxruntime build has no {TRT_EP}"
    else:
        assert "libnvinfer.so.10 is missing" in got.tensorrt_reason and "tensorrt-cu13-libs" in got.tensorrt_reason


def test_everything_working_means_tensorrt_too() -> None:
    ort = FakeOrt(providers=[TRT_EP, CUDA_EP, "CPUExecutionProvider"], __version__="1.31.1")

    def prober(requested: list[str]) -> dict[str, ProbeResult]:
        return {p: ProbeResult(p, (p, "CPUExecutionProvider"), "", "") for p in requested}

    got = cuda_status(ort=ort, distributions=["onnxruntime-gpu"], gpu=GpuCheck(True, "H100"), prober=prober)
    assert got.available and got.tensorrt and got.tensorrt_reason == ""
