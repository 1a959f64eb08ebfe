"""The model under benchmark with its data, shared by the bench scripts (bench/ is a script directory)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Case:
    """One model to benchmark, with its calibration and evaluation inputs (arrays stacked on axis 0)."""

    name: str
    path: Path
    calib: Mapping[str, np.ndarray]
    evaluation: Mapping[str, np.ndarray]
    labels: np.ndarray | None
    data_note: str

    def feeds(self, arrays: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Batch-1 feed dicts, one per sample."""
        n = len(next(iter(arrays.values())))
        return [{k: np.ascontiguousarray(v[i : i + 1]) for k, v in arrays.items()} for i in range(n)]
