"""Experimental binarization (XNOR-Net style): sign weights with a per-output-channel scale ``mean(|w|)``.

Trained with a straight-through estimator; the first and the last weighted layer stay float, as is usual.
Stored as int8 ±1 plus the scales behind a per-axis DequantizeLinear, which ONNX Runtime runs. Accuracy
on anything but small networks usually drops by far more than a point: the report shows it as measured.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgeopt.compression.cluster import Encoding
from edgeopt.compression.prune import _weighted

if TYPE_CHECKING:
    import torch


def _sign_module():  # noqa: ANN202 - a torch.nn.Module class
    import torch

    class SignScale(torch.nn.Module):
        """Parametrization ``w → mean(|w|, per channel) · sign(w)``; gradients pass straight through."""

        def forward(self, w: torch.Tensor) -> torch.Tensor:
            dims = tuple(range(1, w.dim()))
            scale = w.abs().mean(dim=dims, keepdim=True)
            binary = scale * torch.where(w >= 0, 1.0, -1.0)
            return w + (binary - w).detach()

    return SignScale


def apply_binarization(model: torch.nn.Module) -> list[str]:
    """Binarize every Conv/Linear weight except the first and last layer, in place; return notes."""
    from torch.nn.utils import parametrize

    layers = _weighted(model)
    inner = layers[1:-1]
    for _, module in inner:
        parametrize.register_parametrization(module, "weight", _sign_module()())
    names = [n for n, _ in inner]
    notes = [f"binarize (experimental): {len(names)} layer(s) with sign weights and per-channel scales"]
    if len(layers) - len(inner):
        notes.append(f"binarize: first and last layer kept float ({layers[0][0]}, {layers[-1][0]})")
    return notes


def finalize_binarization(model: torch.nn.Module) -> list[Encoding]:
    """Bake sign·scale into plain weights; return the encodings for export."""
    import torch
    from torch.nn.utils import parametrize

    encodings = []
    for name, module in _weighted(model):
        if not parametrize.is_parametrized(module, "weight"):
            continue
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        w = module.weight.detach().cpu().numpy().astype(np.float32)
        signs = np.where(w >= 0, 1, -1).astype(np.int8)
        scale = np.abs(w).reshape(w.shape[0], -1).mean(axis=1).astype(np.float32)
        values = (scale.reshape((-1,) + (1,) * (w.ndim - 1)) * signs).astype(np.float32)
        with torch.no_grad():
            module.weight.copy_(torch.from_numpy(values))
        encodings.append(Encoding(name, "sign", values, signs, scale))
    return encodings
