"""The reference every candidate is judged against: the normalized fp32 graph on ONNX Runtime CPU.

It is independent of any target plugin, so a plugin cannot grade its own homework.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np

from edgeopt.data.feeds import feeds_mismatch, ort_signature
from edgeopt.errors import InputSpecError, ModelError
from edgeopt.types import Dataset, Feeds


class ReferenceRunner:
    """fp32 ONNX Runtime session over a model file; ``run(feeds)`` returns outputs in graph order."""

    def __init__(self, model_path: Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 4  # failures come back as exceptions, reported once by the caller
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
        self._inputs = ort_signature(self._session.get_inputs())

    def run(self, feeds: Feeds) -> Sequence[np.ndarray]:
        """Outputs in graph order. ``InputSpecError`` when ``feeds`` do not fit the declared inputs;
        ``ModelError`` when they fit and ONNX Runtime still fails (the graph is at fault, or its values)."""
        try:
            return self._session.run(self._output_names, dict(feeds))
        except Exception as exc:
            problem = feeds_mismatch(self._inputs, feeds)
            if problem:
                raise InputSpecError(problem) from exc
            raise ModelError(
                f"ONNX Runtime fails running the model on inputs of its declared names, types and shapes: "
                f"{_ort_message(exc)}",
                hint="if the data is synthetic, give --calib/--eval with real inputs (values may be out of the "
                "model's range); if real inputs fail too, the graph itself does not run in ONNX Runtime",
            ) from exc

    def close(self) -> None:
        self._session = None  # type: ignore[assignment]


def _ort_message(exc: Exception) -> str:
    """ORT's own message without its ``[ONNXRuntimeError] : N : CODE :`` prefix, on one line."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text.split(" : ", 3)[-1] if text.startswith("[ONNXRuntimeError]") else text


def batch_size_of(graph_inputs: Sequence, default: int = 1, *, skip: Collection[str] = ()) -> int:
    """The static leading dimension shared by the graph's inputs (1 when dynamic or absent); inputs named in
    ``skip`` (those fed whole, without a batch axis: ``edgeopt.data.stream.fed_whole_inputs``) do not count."""
    for spec in graph_inputs:
        if spec.name in skip:
            continue
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
