"""Fixtures for the openvino plugin's tests; the model builders live in ``ov_models`` beside this file.

The repository runs pytest with ``--import-mode=importlib``, which puts no test folder on
``sys.path``; this folder is added so test modules can ``import ov_models`` (a unique name).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from edgeopt.plugin import DeviceProfile, Graph, TargetInfo
from ov_models import conv_net, cpu_profile  # noqa: E402


@pytest.fixture
def conv_graph(tmp_path: Path) -> Graph:
    return conv_net(tmp_path / "graph" / "model.onnx")


@pytest.fixture
def avx2() -> DeviceProfile:
    return cpu_profile("avx2-test", ("avx2", "fma", "f16c"))


@pytest.fixture
def vnni() -> DeviceProfile:
    return cpu_profile("vnni-test", ("avx2", "fma", "f16c", "avx512f", "avx512_vnni"), cores=4)


@pytest.fixture
def in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Builds run in this process (``EDGEOPT_ISOLATION=0``): NNCF is imported once, not per build.
    The conformance suite and the end-to-end test keep the isolated path."""
    monkeypatch.setenv("EDGEOPT_ISOLATION", "0")


@pytest.fixture
def openvino_target() -> TargetInfo:
    return TargetInfo(name="openvino", plugin="openvino", description="test", precisions=("fp32", "fp16", "int8"))
