"""Fixtures for the cpu plugin's tests; the model builders live in ``cpu_models`` beside this file.

The repository runs pytest with ``--import-mode=importlib``, which puts no test folder on
``sys.path``; this folder is added so test modules can ``import cpu_models`` (a unique name).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from cpu_models import conv_net, cpu_profile, mlp  # noqa: E402
from edgeopt.plugin import DeviceProfile, Graph


@pytest.fixture
def conv_graph(tmp_path: Path) -> Graph:
    (tmp_path / "graph").mkdir()
    return conv_net(tmp_path / "graph" / "model.onnx")


@pytest.fixture
def mlp_graph(tmp_path: Path) -> Graph:
    (tmp_path / "graph").mkdir()
    return mlp(tmp_path / "graph" / "model.onnx")


@pytest.fixture
def avx2() -> DeviceProfile:
    return cpu_profile("avx2-test", ("avx2", "fma", "f16c"))


@pytest.fixture
def vnni() -> DeviceProfile:
    return cpu_profile("vnni-test", ("avx2", "fma", "f16c", "avx512f", "avx512_vnni"), cores=4)
