"""Weight sharing (Deep Compression, Han et al. 2016): per-layer k-means of the weights to a small codebook.

Each Conv/Linear weight becomes ``codebook[indices]``; fine-tuning trains the codebook entries (the
gradient of every weight flows to its centroid) while the assignment stays fixed. The ONNX artifact
stores uint8 indices plus the codebook (see ``edgeopt.compression.onnx_encode``), so it really shrinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edgeopt.compression.prune import _weighted

if TYPE_CHECKING:
    import torch

MIN_WEIGHTS = 64
"""Layers with fewer weights than this stay float: the codebook would cost more than it saves."""


@dataclass(frozen=True)
class Encoding:
    """How one layer's weight is stored compactly: ``values = codebook[indices]`` (cluster) or
    ``values = scale[channel] * signs`` (binarize)."""

    layer: str
    kind: str
    """``codebook`` or ``sign``."""
    values: np.ndarray
    """The float weight as the model holds it (used to find the tensor in the exported graph)."""
    codes: np.ndarray
    """uint8 indices (codebook) or int8 ±1 (sign), shaped like ``values``."""
    table: np.ndarray
    """float32 codebook (codebook) or per-output-channel scales (sign)."""


def kmeans_1d(values: np.ndarray, k: int, *, iterations: int = 30) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on scalars with linear initialisation between min and max (deterministic).

    Returns ``(centroids float32[k'], indices uint8)``, empty clusters dropped (k' <= k)."""
    flat = values.astype(np.float64).ravel()
    centroids = np.linspace(flat.min(), flat.max(), k)
    for _ in range(iterations):
        edges = (centroids[1:] + centroids[:-1]) / 2
        assign = np.searchsorted(edges, flat)
        sums = np.bincount(assign, weights=flat, minlength=len(centroids))
        counts = np.bincount(assign, minlength=len(centroids))
        updated = np.where(counts > 0, sums / np.maximum(counts, 1), centroids)
        if np.allclose(updated, centroids):
            break
        centroids = updated
    edges = (centroids[1:] + centroids[:-1]) / 2
    assign = np.searchsorted(edges, flat)
    used = np.unique(assign)
    remap = np.zeros(len(centroids), dtype=np.int64)
    remap[used] = np.arange(len(used))
    return centroids[used].astype(np.float32), remap[assign].astype(np.uint8).reshape(values.shape)


def _codebook_module():  # noqa: ANN202 - a torch.nn.Module class, built lazily so torch stays optional
    import torch

    class Codebook(torch.nn.Module):
        """Parametrization: the weight is ``centroids[indices]``; only the centroids train."""

        def __init__(self, centroids: np.ndarray, indices: np.ndarray) -> None:
            super().__init__()
            self.centroids = torch.nn.Parameter(torch.from_numpy(centroids.copy()))
            self.register_buffer("indices", torch.from_numpy(indices.astype(np.int64)))

        def forward(self, _original: torch.Tensor) -> torch.Tensor:
            return self.centroids[self.indices]

    return Codebook


def apply_clustering(model: torch.nn.Module, clusters: int) -> list[str]:
    """Replace every Conv/Linear weight (of at least ``MIN_WEIGHTS`` values) by a trainable codebook in place."""
    from torch.nn.utils import parametrize

    codebook = _codebook_module()
    done, kept = 0, []
    for name, module in _weighted(model):
        weight = module.weight.detach().cpu().numpy()
        if weight.size < MIN_WEIGHTS:
            kept.append(name)
            continue
        centroids, indices = kmeans_1d(weight, clusters)
        parametrize.register_parametrization(module, "weight", codebook(centroids, indices), unsafe=True)
        module.parametrizations.weight.original.requires_grad_(False)
        done += 1
    notes = [f"cluster: {done} layer(s) share {clusters} weights each (k-means, linear init)"]
    if kept:
        notes.append(f"cluster: kept float (fewer than {MIN_WEIGHTS} weights): {', '.join(kept)}")
    return notes


def finalize_clustering(model: torch.nn.Module) -> list[Encoding]:
    """Bake the codebooks into plain weights; return one ``Encoding`` per clustered layer for export."""
    from torch.nn.utils import parametrize

    encodings = []
    for name, module in _weighted(model):
        if not parametrize.is_parametrized(module, "weight"):
            continue
        book = module.parametrizations.weight[0]
        if not hasattr(book, "centroids"):
            continue
        table = book.centroids.detach().cpu().numpy().astype(np.float32)
        codes = book.indices.cpu().numpy().astype(np.uint8)
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        encodings.append(Encoding(name, "codebook", table[codes.astype(np.int64)], codes, table))
    return encodings
