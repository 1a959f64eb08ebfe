"""Farm test helpers: a wall-clock guard for every Ray test, and small ONNX models."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

from edgeopt.testing import models


@contextlib.contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Raise ``TimeoutError`` in the main thread after ``seconds`` (no pytest-timeout needed)."""

    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"{what} took longer than {seconds:g} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="session")
def farm_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two small MLPs (ONNX Runtime beats OpenVINO on them by ~3x here, so winners are not a coin toss) and a
    third used only by the fault test, so its build is not in the search cache."""
    root = tmp_path_factory.mktemp("farm-models")
    out = {}
    for name, seed in (("mlp_a", 11), ("mlp_b", 12), ("mlp_c", 13)):
        out[name] = root / f"{name}.onnx"
        onnx.save(models.mlp(seed), out[name])
    return out
