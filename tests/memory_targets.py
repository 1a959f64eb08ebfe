"""Functions the memory-limit tests run in an ``IsolatedWorker`` (imported there by name)."""

from __future__ import annotations

import time

import numpy as np

_HOARD: list[np.ndarray] = []


def grow(step_mib: int, steps: int) -> int:
    """Allocate and touch ``steps`` blocks of ``step_mib`` MiB, slowly enough for the watch to see them."""
    for _ in range(steps):
        _HOARD.append(np.ones(step_mib << 20, dtype=np.uint8))
        time.sleep(0.02)
    return len(_HOARD)


def burst(gib: float) -> int:
    """One allocation of ``gib`` GiB at once (faster than any poll)."""
    return int(np.ones(int(gib * (1 << 30)), dtype=np.uint8)[0])


def small() -> str:
    return "ok"
