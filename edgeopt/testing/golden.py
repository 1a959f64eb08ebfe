"""The golden models as the suite uses them: imported like a deploy imports, with seeded samples.

``GoldenSet`` writes and imports each model of ``edgeopt.testing.models`` on first access, so a run
that selects a few tests pays only for the models they use.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeopt.evaluate.reference import ReferenceRunner
from edgeopt.plugin.manager import PluginManager
from edgeopt.testing.models import GOLDEN_MODELS, golden_feeds, write_golden
from edgeopt.types import Dataset, Graph, ImportOptions, Runner

SAMPLES = 32
"""Samples per golden model: all calibrate, the first ``CHECKED`` are compared with the reference."""
CHECKED = 9


@dataclass(frozen=True)
class GoldenGraph:
    """A golden model as written (``source``), as a deploy normalizes it (``graph``), and its samples."""

    name: str
    source: Path
    graph: Graph
    data: Dataset
    """``SAMPLES`` seeded standard-normal samples: the calibration set, and the feeds runners are checked on
    (in-distribution, so static quantization is judged on data it was calibrated for)."""


class GoldenSet(Mapping[str, GoldenGraph]):
    """The golden models by name, each written and imported (as ``edgeopt deploy`` imports) on first access."""

    def __init__(self, root: Path, pm: PluginManager) -> None:
        self._root, self._pm = root, pm
        self._built: dict[str, GoldenGraph] = {}

    def __getitem__(self, name: str) -> GoldenGraph:
        if name not in self._built:
            source = write_golden(name, self._root / "source")
            workdir = self._root / "graphs" / name
            workdir.mkdir(parents=True)
            graph = self._pm.import_model(source, ImportOptions(), workdir)
            assert graph is not None, f"no importer took golden model {name!r}"
            data = Dataset(golden_feeds(graph.inputs, batch=SAMPLES, seed=7), synthetic=True, source="edgeopt.testing")
            self._built[name] = GoldenGraph(name, source, graph, data)
        return self._built[name]

    def __iter__(self) -> Iterator[str]:
        return iter(GOLDEN_MODELS)

    def __len__(self) -> int:
        return len(GOLDEN_MODELS)


def run_all(runner: Runner | ReferenceRunner, data: Dataset, *, batch: int) -> list[list[np.ndarray]]:
    """Outputs of ``runner`` on the first ``CHECKED`` samples of ``data``, ``batch`` samples a run."""
    head = Dataset({k: v[:CHECKED] for k, v in data.arrays.items()})
    return [list(runner.run(feeds)) for feeds in head.batches(batch)]
