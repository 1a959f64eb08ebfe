"""Importing ONNX Runtime so that its CUDA and TensorRT providers can find their libraries.

onnxruntime-gpu links the CUDA providers against sonames (``libcudart.so.13``, ``libcublasLt.so.13``,
``libcudnn.so.9``, ``libnvinfer.so.10``...) that pip installs inside site-packages, where the dynamic
loader does not look. Two things make them findable without ``LD_LIBRARY_PATH``:

- ``onnxruntime.preload_dlls()`` (onnxruntime-gpu >= 1.21) loads CUDA and cuDNN from the ``nvidia``
  pip packages (CUDA 13: ``nvidia/cu13/lib``; cuDNN: ``nvidia/cudnn/lib``). ``import torch`` before
  onnxruntime does the same when torch was built for the same CUDA major version.
- TensorRT's pip wheels (``tensorrt-cu13-libs``) put ``libnvinfer.so.10`` in ``tensorrt_libs/``;
  :func:`preload_tensorrt` loads them globally so the TensorRT provider's own ``dlopen`` finds them.

Both print nothing to stdout (their messages are captured and returned), so ``--json`` output stays clean.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

TENSORRT_SONAMES = ("libnvinfer.so.10", "libnvinfer_plugin.so.10", "libnvonnxparser.so.10")
"""What the TensorRT provider of onnxruntime-gpu 1.2x-1.31 links (``readelf -d`` on the 1.31.1 wheel): TensorRT 10."""


@dataclass(frozen=True)
class Preload:
    """What importing ONNX Runtime for the GPU loaded, and what it said."""

    messages: tuple[str, ...]
    tensorrt_libs: tuple[str, ...]


def tensorrt_lib_dir() -> Path | None:
    """The folder of the ``tensorrt_libs`` pip package, when it is installed."""
    spec = importlib.util.find_spec("tensorrt_libs")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def preload_tensorrt(directory: Path | None = None) -> tuple[str, ...]:
    """Load the TensorRT 10 libraries found in ``directory`` (default: ``tensorrt_libs``) with RTLD_GLOBAL."""
    directory = directory if directory is not None else tensorrt_lib_dir()
    if directory is None:
        return ()
    loaded = []
    for soname in TENSORRT_SONAMES:
        path = directory / soname
        if path.is_file():
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            loaded.append(soname)
    return tuple(loaded)


@functools.cache
def _preload_cuda() -> tuple[str, ...]:
    import onnxruntime as ort

    printed = io.StringIO()
    messages: list[str] = []
    with contextlib.redirect_stdout(printed):
        if hasattr(ort, "preload_dlls"):
            try:
                ort.preload_dlls()
            except Exception as exc:  # a bad nvidia folder must not stop the import; the reason is kept
                messages.append(f"onnxruntime.preload_dlls failed: {exc}")
    return (*messages, *(line.strip() for line in printed.getvalue().splitlines() if line.strip()))


@functools.cache
def _preload_tensorrt() -> Preload:
    try:
        return Preload((), preload_tensorrt())
    except OSError as exc:
        return Preload((f"loading TensorRT libraries failed: {exc}",), ())


def import_onnxruntime(*, tensorrt: bool = False) -> tuple[ModuleType, Preload]:
    """``onnxruntime`` with CUDA/cuDNN preloaded, and the TensorRT libraries too when ``tensorrt`` (each once
    per process: loading TensorRT maps about a gigabyte, so CUDA-only sessions skip it)."""
    import onnxruntime as ort

    messages = _preload_cuda()
    if not tensorrt:
        return ort, Preload(messages, ())
    trt = _preload_tensorrt()
    return ort, Preload((*messages, *trt.messages), trt.tensorrt_libs)
