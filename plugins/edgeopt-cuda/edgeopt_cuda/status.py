"""Can the ``cuda`` target run here, and if not, exactly what to install or attach.

Three independent things must hold, and every one that fails is named in the reason:

(a) the installed ONNX Runtime has ``CUDAExecutionProvider`` — the CPU package ``onnxruntime`` never
    has it; ``onnxruntime-gpu`` replaces it (same import name, same folder);
(b) an NVIDIA GPU and driver are present — NVML initialises and sees a device, or a device node exists;
(c) the provider really starts — a one-node session is opened in a subprocess: when a CUDA/cuDNN library
    is missing, ONNX Runtime logs the failed ``dlopen`` and silently falls back to the CPU, so the
    session's providers are checked and the missing library is named from ONNX Runtime's log.

TensorRT is checked the same way (c) when ``TensorrtExecutionProvider`` is compiled in; without it the
target still works, without int8.
"""

from __future__ import annotations

import functools
import importlib.metadata as md
import json
import re
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from edgeopt_cuda.probe import MARKER

GPU_WHEEL = "onnxruntime-gpu==1.31.1"
"""The onnxruntime-gpu release the docs and the GPU checks were written against (CUDA 13, cuDNN 9, TensorRT 10)."""
SWAP_COMMAND = f"pip uninstall -y onnxruntime && pip install {GPU_WHEEL}"
DOCS = "docs/gpu.md"
DEVICE_NODES = (Path("/dev/nvidia0"), Path("/dev/nvhost-ctrl-gpu"))
"""``/dev/nvidia0``: the desktop/server driver; ``/dev/nvhost-ctrl-gpu``: Jetson's integrated GPU (no NVML there)."""
PROBE_TIMEOUT_S = 45.0
"""One probe subprocess for CUDA and TensorRT together; the core gives target registration 60 s in all."""
CUDA_EP = "CUDAExecutionProvider"
TRT_EP = "TensorrtExecutionProvider"

_MISSING = re.compile(r"(lib[\w.+-]+?\.so(?:\.\d+)*): cannot open shared object file")
_LOAD_ERROR = re.compile(r"Failed to load library (\S+) with error: (.+)")
_PIP_FOR = (
    ("libcudnn", "nvidia-cudnn-cu13"),
    ("libcublas", "nvidia-cublas"),
    ("libcudart", "nvidia-cuda-runtime"),
    ("libcurand", "nvidia-curand"),
    ("libcufft", "nvidia-cufft"),
    ("libnvrtc", "nvidia-cuda-nvrtc"),
    ("libnvinfer", "'tensorrt-cu13-libs>=10,<11'"),
    ("libnvonnxparser", "'tensorrt-cu13-libs>=10,<11'"),
)


# --- (a) the ONNX Runtime package -----------------------------------------------------------------


def ort_distributions() -> tuple[str, ...]:
    """Installed distributions that provide the ``onnxruntime`` import package (sorted)."""
    return tuple(sorted(set(md.packages_distributions().get("onnxruntime", []))))


def provider_problem(providers: Sequence[str], distributions: Sequence[str], version: str) -> str | None:
    """Why this ONNX Runtime build cannot drive an NVIDIA GPU, with the fix; None when it has the CUDA EP."""
    if CUDA_EP in providers:
        return None
    gpu = [d for d in distributions if d.lower() in ("onnxruntime-gpu", "onnxruntime_gpu")]
    others = [d for d in distributions if d not in gpu]
    if gpu and others:
        return (
            f"{' and '.join([*others, *gpu])} are installed into the same onnxruntime/ folder and the files of "
            f"{others[0]} (no CUDA) won; fix: pip uninstall -y {' '.join([*others, *gpu])} && pip install {GPU_WHEEL}"
        )
    package = others[0] if others else "onnxruntime"
    return (
        f"{package} {version} has no CUDAExecutionProvider (providers: {', '.join(providers) or 'none'}); "
        f"install the GPU build in its place: {SWAP_COMMAND} (offline wheels: see {DOCS})"
    )


# --- (b) the GPU and driver -----------------------------------------------------------------------


@dataclass(frozen=True)
class GpuCheck:
    found: bool
    detail: str
    """The GPU's name and driver when found; what was tried otherwise."""


def detect_gpu(*, nvml: ModuleType | None = None, device_nodes: Sequence[Path] = DEVICE_NODES) -> GpuCheck:
    """Is an NVIDIA GPU with a working driver here? NVML first, then device nodes (Jetson has no NVML)."""
    tried = []
    try:
        if nvml is None:
            import pynvml as nvml  # nvidia-ml-py
        nvml.nvmlInit()
        count = nvml.nvmlDeviceGetCount()
        if count > 0:
            name = nvml.nvmlDeviceGetName(nvml.nvmlDeviceGetHandleByIndex(0))
            driver = nvml.nvmlSystemGetDriverVersion()
            return GpuCheck(True, f"{_text(name)} (+{count - 1} more), driver {_text(driver)}")
        tried.append("NVML sees 0 GPUs")
    except ImportError:
        tried.append("nvidia-ml-py is not installed")
    except Exception as exc:  # pynvml.NVMLError_* (library or driver not found, no permission...)
        tried.append(f"NVML: {exc}")
    present = [str(p) for p in device_nodes if p.exists()]
    if present:
        return GpuCheck(True, f"device node {present[0]} ({'; '.join(tried)})")
    tried.append(f"no {' or '.join(str(p) for p in device_nodes)}")
    return GpuCheck(False, "; ".join(tried))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- (c) does the provider start ------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    """What a one-node session on the requested provider really used, and ONNX Runtime's log."""

    requested: str
    providers: tuple[str, ...]
    error: str
    log: str
    """stderr of the probe (ONNX Runtime's C++ log) plus what preloading printed."""

    @property
    def ok(self) -> bool:
        return not self.error and self.requested in self.providers


def missing_library(log: str) -> str | None:
    """The first shared library ONNX Runtime's log says could not be opened, e.g. ``libcudnn.so.9``."""
    for match in _MISSING.finditer(log):
        name = match.group(1)
        if not name.startswith("libonnxruntime_providers"):
            return name
    return None


def pip_package_for(library: str) -> str | None:
    """The pip package (CUDA 13 builds) that ships ``library``; None for the driver's ``libcuda.so``."""
    return next((pkg for prefix, pkg in _PIP_FOR if library.startswith(prefix)), None)


def probe_problem(result: ProbeResult) -> str | None:
    """Why the provider did not start, naming the missing library when ONNX Runtime did; None when it ran."""
    if result.ok:
        return None
    short = result.requested.removesuffix("ExecutionProvider")
    fell_back = f"fell back to {', '.join(result.providers)}" if result.providers else "could not open a session"
    library = missing_library(result.log)
    if library is not None:
        package = pip_package_for(library)
        if package is None:
            fix = "install or repair the NVIDIA driver (libcuda.so.1 comes with it, not from pip)"
        else:
            fix = (
                f"pip install {package}, then `import torch` first or call onnxruntime.preload_dlls() "
                f"(edgeopt does the latter); see {DOCS}"
            )
        return f"{result.requested} is built in but could not start: {library} is missing ({fell_back}); fix: {fix}"
    load = _LOAD_ERROR.search(result.log)
    said = load.group(2).strip() if load else (result.error or _last_error_line(result.log))
    detail = f"; ONNX Runtime said: {said}" if said else ""
    return (
        f"{result.requested} is built in but could not start ({fell_back}){detail}; check the CUDA {short} "
        f"requirements in {DOCS} (onnxruntime.print_debug_info() lists the libraries it loaded)"
    )


def _last_error_line(log: str) -> str:
    lines = [line.strip() for line in log.splitlines() if "[E:" in line or "error" in line.lower()]
    return lines[-1][:300] if lines else ""


def split_log(stderr: str) -> dict[str, str]:
    """The probe's stderr split by its ``@@probe <provider>`` markers (text before the first marker dropped)."""
    logs: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in stderr.splitlines():
        if line.startswith(MARKER):
            current = logs.setdefault(line[len(MARKER) :].strip(), [])
        elif current is not None:
            current.append(line)
    return {provider: "\n".join(lines) for provider, lines in logs.items()}


def parse_probe(requested: Sequence[str], stdout: str, stderr: str, *, failure: str = "") -> dict[str, ProbeResult]:
    """One ``ProbeResult`` per requested provider from the probe's output; a provider the probe never
    reported (it crashed or timed out first) gets ``failure`` as its error."""
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    messages = "\n".join(str(m) for line in lines[:1] for m in line.get("messages", []))
    reported = {str(line["provider"]): line for line in lines if "provider" in line}
    logs = split_log(stderr)
    results = {}
    for provider in requested:
        log = "\n".join(part for part in (messages, logs.get(provider, "")) if part)
        line = reported.get(provider)
        if line is None:
            tail = "\n".join(stderr.strip().splitlines()[-3:])
            results[provider] = ProbeResult(provider, (), failure or "the probe did not report", log or tail)
        else:
            results[provider] = ProbeResult(provider, tuple(line["providers"]), str(line["error"]), log)
    return results


def probe(
    providers: Sequence[str], *, timeout_s: float = PROBE_TIMEOUT_S, python: str = sys.executable
) -> dict[str, ProbeResult]:
    """Open a one-node session on each provider in one subprocess (``edgeopt_cuda.probe``) and report them."""
    command = [python, "-m", "edgeopt_cuda.probe", *providers]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired as exc:
        return parse_probe(
            providers, _decoded(exc.stdout), _decoded(exc.stderr), failure=f"no answer within {timeout_s:.0f} s"
        )
    failure = f"the probe exited with status {done.returncode}" if done.returncode else ""
    return parse_probe(providers, done.stdout, done.stderr, failure=failure)


def _decoded(value: str | bytes | None) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")


# --- together -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CudaStatus:
    """Whether the ``cuda`` target can run, why not, and whether TensorRT (int8) is usable too."""

    available: bool
    reason: str
    tensorrt: bool = False
    tensorrt_reason: str = ""
    gpu: str = ""
    ort_version: str = ""


def cuda_status(
    *,
    ort: ModuleType | None = None,
    distributions: Sequence[str] | None = None,
    gpu: GpuCheck | None = None,
    prober: Callable[[Sequence[str]], dict[str, ProbeResult]] = probe,
) -> CudaStatus:
    """Check (a), (b) and (c) above; every argument defaults to the real thing (tests inject fakes)."""
    if ort is None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            return CudaStatus(False, f"onnxruntime is not importable ({exc}); pip install {GPU_WHEEL} (see {DOCS})")
    providers = tuple(ort.get_available_providers())
    version = str(getattr(ort, "__version__", "?"))
    problems = []
    problem = provider_problem(providers, ort_distributions() if distributions is None else distributions, version)
    if problem:
        problems.append(problem)
    gpu = detect_gpu() if gpu is None else gpu
    if not gpu.found:
        problems.append(f"no NVIDIA GPU/driver found ({gpu.detail})")
    if problems:
        return CudaStatus(False, "; ".join(problems), ort_version=version)
    results = prober([CUDA_EP, TRT_EP] if TRT_EP in providers else [CUDA_EP])
    started = probe_problem(results[CUDA_EP])
    if started:
        return CudaStatus(False, started, gpu=gpu.detail, ort_version=version)
    if TRT_EP in results:
        trt_reason = probe_problem(results[TRT_EP]) or ""
    else:
        trt_reason = f"this onnxruntime build has no {TRT_EP}"
    return CudaStatus(True, "", not trt_reason, trt_reason, gpu.detail, version)


@functools.cache
def current_status() -> CudaStatus:
    """``cuda_status()`` for this process, computed once (the probe takes a few seconds on a GPU host)."""
    return cuda_status()
