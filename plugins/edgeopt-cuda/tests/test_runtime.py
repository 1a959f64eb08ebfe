"""Preloading the GPU libraries: what is loaded from where, and that nothing is printed to stdout."""

from __future__ import annotations

import ctypes.util
import shutil
from pathlib import Path

import pytest

from edgeopt_cuda.runtime import TENSORRT_SONAMES, import_onnxruntime, preload_tensorrt, tensorrt_lib_dir


def test_tensorrt_libraries_are_loaded_by_soname_from_the_folder(tmp_path: Path) -> None:
    libm = ctypes.util.find_library("m")
    folders = (Path("/lib/x86_64-linux-gnu"), Path("/usr/lib64"), Path("/lib64"), Path("/lib/aarch64-linux-gnu"))
    source = next((p for p in folders if (p / str(libm)).exists()), None)
    if libm is None or source is None:
        pytest.skip("no libm to stand in for a TensorRT library")
    shutil.copyfile(source / libm, tmp_path / TENSORRT_SONAMES[0])  # any loadable library under that name
    assert preload_tensorrt(tmp_path) == (TENSORRT_SONAMES[0],)
    assert preload_tensorrt(tmp_path / "missing") == ()


def test_without_the_tensorrt_wheel_nothing_is_loaded() -> None:
    if tensorrt_lib_dir() is not None:
        pytest.skip("tensorrt_libs is installed here")
    assert preload_tensorrt() == ()


def test_import_prints_nothing_and_reports_what_it_loaded(capfd) -> None:
    ort, preload = import_onnxruntime(tensorrt=True)
    assert hasattr(ort, "InferenceSession")
    assert capfd.readouterr().out == ""
    if tensorrt_lib_dir() is None:
        assert preload.tensorrt_libs == ()
