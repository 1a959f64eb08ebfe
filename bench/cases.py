"""The model under benchmark with its data, shared by the bench scripts (bench/ is a script directory)."""

from __future__ import annotations

import shlex
import sysconfig
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def shown_path(path: str | Path) -> str:
    """``path`` as a reader finds it from a clone: relative to the repository, ``<site-packages>/...`` inside
    an installed package, else as given. Reports never carry the measuring machine's own folders."""
    p = Path(path).resolve()
    for base, shown in ((Path(sysconfig.get_paths()["purelib"]).resolve(), "<site-packages>/"), (ROOT, "")):
        if p.is_relative_to(base):
            return shown + str(p.relative_to(base))
    return str(path)


def clone_command(argv: Sequence[str]) -> str:
    """The command that reruns this script from a clone: ``python bench/<script> <args>`` (paths shown as above)."""
    script, *args = argv
    return shlex.join(["python", shown_path(script), *(shown_path(a) if Path(a).exists() else a for a in args)])


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
