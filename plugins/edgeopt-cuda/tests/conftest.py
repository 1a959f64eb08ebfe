"""Fixtures for the cuda plugin's tests; model builders live in ``cuda_models`` beside this file.

The repository runs pytest with ``--import-mode=importlib``, which puts no test folder on ``sys.path``;
this folder is added so test modules can ``import cuda_models`` (a unique name). Tests marked ``gpu``
are skipped, with the target's own reason, unless ONNX Runtime's CUDA provider really starts here.
Where the plugin is not installed (``pip install -e plugins/edgeopt-cuda``), this folder is not collected
and a warning says so, instead of failing the whole run on import errors.
"""

from __future__ import annotations

import importlib.metadata as md
import sys
import warnings
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

from cuda_models import conv_net, gpu_profile  # noqa: E402
from edgeopt.plugin import DeviceProfile, Graph

try:
    md.distribution("edgeopt-cuda")
except md.PackageNotFoundError:
    collect_ignore_glob = ["test_*.py"]
    warnings.warn(
        "edgeopt-cuda is not installed, so its tests were not collected: pip install -e plugins/edgeopt-cuda",
        stacklevel=1,
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    gpu_items = [item for item in items if "gpu" in item.keywords and "edgeopt-cuda" in str(item.path)]
    if not gpu_items:
        return
    from edgeopt_cuda.status import current_status

    status = current_status()
    if status.available:
        return
    skip = pytest.mark.skip(reason=f"needs a usable CUDA GPU: {status.reason}")
    for item in gpu_items:
        item.add_marker(skip)


@pytest.fixture
def conv_graph(tmp_path: Path) -> Graph:
    (tmp_path / "graph").mkdir()
    return conv_net(tmp_path / "graph" / "model.onnx")


@pytest.fixture
def h100() -> DeviceProfile:
    return gpu_profile()
