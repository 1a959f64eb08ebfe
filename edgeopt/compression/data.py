"""Training and evaluation data for fine-tuning: read with the core loaders, held as torch tensors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgeopt.data.datasets import LABELS_KEY, load_dataset
from edgeopt.errors import DataError
from edgeopt.types import Dataset, Graph

if TYPE_CHECKING:
    import torch

_HINT = "give an .npz with the model's inputs plus 'labels', or an image folder with one sub-folder per class"


@dataclass(frozen=True)
class Split:
    """Samples (inputs in the model's input order) and their labels, as torch tensors."""

    inputs: tuple[torch.Tensor, ...]
    labels: torch.Tensor
    names: tuple[str, ...]
    source: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, index: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
        """The samples at ``index``."""
        return tuple(t[index] for t in self.inputs), self.labels[index]

    def dataset(self) -> Dataset:
        """The same samples as a core ``Dataset`` (numpy, with labels) for ONNX evaluation."""
        arrays = {n: t.numpy() for n, t in zip(self.names, self.inputs, strict=True)}
        return Dataset(arrays, labels=self.labels.numpy(), source=self.source)


def load_split(source: object, graph: Graph, *, purpose: str) -> Split:
    """Read ``source`` (``.npz``, image folder, mapping with ``labels``, ``(x, y)`` tuple, or ``Dataset``) for the
    inputs of ``graph``; labels are required. Raises ``DataError``."""
    import torch

    if isinstance(source, tuple) and len(source) == 2 and not isinstance(source[0], Mapping):
        names = [graph.inputs[0].name] if graph.inputs else ["input"]
        source = {names[0]: np.asarray(source[0]), LABELS_KEY: np.asarray(source[1])}
    dataset = load_dataset(source, graph, purpose=purpose)  # type: ignore[arg-type]
    if dataset.synthetic:
        raise DataError(f"no {purpose} data given", hint=_HINT)
    if dataset.labels is None:
        raise DataError(f"the {purpose} data has no labels; fine-tuning needs them", hint=_HINT)
    labels = np.asarray(dataset.labels)
    if len(labels) != len(dataset):
        raise DataError(f"the {purpose} data has {len(dataset)} samples but {len(labels)} labels", hint=_HINT)
    names = tuple(spec.name for spec in graph.inputs)
    inputs = tuple(torch.from_numpy(np.ascontiguousarray(dataset.arrays[n])) for n in names)
    target = torch.from_numpy(labels.astype(np.int64) if np.issubdtype(labels.dtype, np.integer) else labels)
    return Split(inputs=inputs, labels=target, names=names, source=dataset.source)


def holdout(split: Split, *, fraction: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    """Split off ``fraction`` of ``split`` (shuffled with ``seed``) as evaluation data."""
    import torch

    n = len(split)
    if n < 5:
        raise DataError(f"{n} training samples are too few to hold some out for evaluation", hint=_HINT)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    cut = max(1, int(n * fraction))
    held, kept = order[:cut], order[cut:]

    def part(index: torch.Tensor) -> Split:
        inputs, labels = split.take(index)
        return Split(inputs=inputs, labels=labels, names=split.names, source=split.source)

    return part(kept), part(held)
