"""The reference every candidate is judged against: the normalized fp32 graph on ONNX Runtime CPU.

It is independent of any target plugin, so a plugin cannot grade its own homework.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from edgeopt.errors import InputSpecError, ModelError
from edgeopt.types import Dataset, Feeds


class ReferenceRunner:
    """fp32 ONNX Runtime session over a model file; ``run(feeds)`` returns outputs in graph order."""

    def __init__(self, model_path: Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
        try:
            self._session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise ModelError(
                f"ONNX Runtime cannot load the normalized model: {str(exc).splitlines()[0]}",
                hint="the model may use an op ONNX Runtime does not implement; run `edgeopt inspect MODEL`",
            ) from exc
        self._output_names = [o.name for o in self._session.get_outputs()]

    def run(self, feeds: Feeds) -> Sequence[np.ndarray]:
        try:
            return self._session.run(self._output_names, dict(feeds))
        except Exception as exc:
            raise InputSpecError(f"the model rejected the inputs: {str(exc).splitlines()[0]}") from exc

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]


def batch_size_of(graph_inputs: Sequence, default: int = 1) -> int:
    """The static leading dimension shared by the graph's inputs (1 when dynamic or absent)."""
    for spec in graph_inputs:
        if spec.shape and isinstance(spec.shape[0], int) and spec.shape[0] > 0:
            return spec.shape[0]
    return default


def usable_samples(dataset: Dataset, batch: int) -> int:
    """How many samples ``dataset.batches(batch)`` covers."""
    n = len(dataset)
    return n if n < batch else (n // batch) * batch


def trim_labels(dataset: Dataset, batch: int) -> np.ndarray | None:
    if dataset.labels is None:
        return None
    return dataset.labels[: usable_samples(dataset, batch)]
