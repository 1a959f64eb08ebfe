"""Quantization-aware training: fake-quantize weights and activations while fine-tuning, export QDQ.

Weights: per-output-channel symmetric int8 from ``max|w|`` (7-bit by default, like ONNX Runtime's
``reduce_range``, so U8S8 kernels cannot saturate on x86 without VNNI). Activations (the input of every
Conv/Linear): per-tensor uint8, ranges initialised from training batches and then learned (LSQ, Esser et
al. 2020), so an outlier no longer has to set the range as it does for min/max post-training calibration.
The exported graph carries QuantizeLinear/DequantizeLinear pairs with the learned scales and int8 weight
initializers: the QDQ format the target plugins consume as an already-quantized model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx
from onnx import numpy_helper

from edgeopt.compression.prune import _weighted
from edgeopt.graph.inspect import constant_values

if TYPE_CHECKING:
    import torch

WEIGHT_BITS = 7
"""Signed weight bits; 7 keeps every x86 int8 kernel exact (values then fit int8 in the exported QDQ)."""


def _round_ste(x: torch.Tensor) -> torch.Tensor:
    return x + (x.round() - x).detach()


def _wrapper():  # noqa: ANN202 - a torch.nn.Module class, built lazily
    import torch
    import torch.nn.functional as F

    class QuantLayer(torch.nn.Module):
        """A Conv/Linear whose input and weight are fake-quantized; ``exporting`` switches to torch's
        built-in fake-quant ops, which the ONNX exporters write as QuantizeLinear/DequantizeLinear."""

        def __init__(self, layer: torch.nn.Module, weight_bits: int) -> None:
            super().__init__()
            self.layer = layer
            self.qmax_w = 2 ** (weight_bits - 1) - 1
            self.log_scale = torch.nn.Parameter(torch.zeros(()))
            self.register_buffer("zero_point", torch.zeros((), dtype=torch.int32))
            self.register_buffer("observed", torch.zeros(2))
            self.observing = True
            self.exporting = False

        def observe(self, x: torch.Tensor) -> None:
            lo, hi = float(x.min()), float(x.max())
            self.observed[0] = min(float(self.observed[0]), lo)
            self.observed[1] = max(float(self.observed[1]), hi)

        def freeze_observer(self) -> None:
            lo, hi = min(float(self.observed[0]), 0.0), max(float(self.observed[1]), 1e-6)
            scale = (hi - lo) / 255.0
            self.zero_point.fill_(int(round(-lo / scale)))
            with torch.no_grad():
                self.log_scale.fill_(float(np.log(scale)))
            self.observing = False

        def weight_scale(self) -> torch.Tensor:
            w = self.layer.weight.detach()
            return (w.abs().reshape(w.shape[0], -1).amax(1).clamp_min(1e-8) / self.qmax_w)

        def quant_input(self, x: torch.Tensor) -> torch.Tensor:
            if self.observing:
                self.observe(x.detach())
                return x
            scale = self.log_scale.exp()
            zp = int(self.zero_point)
            if self.exporting:
                return torch.fake_quantize_per_tensor_affine(x, float(scale), zp, 0, 255)
            grad_scale = 1.0 / float(np.sqrt(x[0].numel() * 255))
            s = scale * grad_scale + (scale - scale * grad_scale).detach()
            q = torch.clamp(_round_ste(x / s) + zp, 0, 255)
            return (q - zp) * s

        def quant_weight(self) -> torch.Tensor:
            w, scale = self.layer.weight, self.weight_scale()
            if self.exporting:  # constant scales (buffers), so the exported QuantizeLinear folds into int8 weights
                return torch.fake_quantize_per_channel_affine(w, self.export_scale, self.export_zero, 0, -128, 127)
            shape = (-1,) + (1,) * (w.dim() - 1)
            s = scale.reshape(shape)
            return torch.clamp(_round_ste(w / s), -self.qmax_w, self.qmax_w) * s

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.quant_input(x)
            w = self.quant_weight() if not self.observing else self.layer.weight
            if isinstance(self.layer, torch.nn.Linear):
                return F.linear(x, w, self.layer.bias)
            return self.layer._conv_forward(x, w, self.layer.bias)

    return QuantLayer


def _set(model: torch.nn.Module, name: str, value: torch.nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, value)


def prepare_qat(model: torch.nn.Module, calibration: tuple[torch.Tensor, ...], *, weight_bits: int = WEIGHT_BITS,
                ) -> list[str]:
    """Wrap every Conv/Linear of ``model`` in place, observe activation ranges on ``calibration``, then
    switch to fake quantization with learnable activation scales. Returns notes."""
    import torch

    wrapper = _wrapper()
    layers = _weighted(model)
    for name, layer in layers:
        _set(model, name, wrapper(layer, weight_bits))
    model.eval()
    with torch.no_grad():
        for i in range(0, len(calibration[0]), 256):
            model(*(t[i : i + 256] for t in calibration))
    for m in model.modules():
        if isinstance(m, wrapper):
            m.freeze_observer()
    return [f"qat: {len(layers)} layer(s) fake-quantized (int{weight_bits} per-channel weights, uint8 learned-range "
            "activations)"]


def set_exporting(model: torch.nn.Module, exporting: bool) -> None:
    """Switch every fake-quant layer to torch's exportable fake-quant ops (or back to training ones)."""
    import torch

    for m in model.modules():
        if hasattr(m, "exporting") and hasattr(m, "quant_weight"):
            m.exporting = exporting
            scale = m.weight_scale().clone()
            m.register_buffer("export_scale", scale, persistent=False)
            m.register_buffer("export_zero", torch.zeros(len(scale), dtype=torch.int32), persistent=False)


def fold_weight_quantize(src: str, dst: str) -> int:
    """Replace each QuantizeLinear whose inputs are all initializers by its int8/uint8 result (what ORT's own
    quantizer writes), so the file holds 8-bit weights; return how many were folded."""
    model = onnx.load(src)
    graph = model.graph
    inits = constant_values(graph)  # the TorchScript exporter writes scales as Constant nodes
    folded, keep = 0, []
    for node in graph.node:
        if node.op_type != "QuantizeLinear" or not all(i in inits for i in node.input if i):
            keep.append(node)
            continue
        x = numpy_helper.to_array(inits[node.input[0]]).astype(np.float64)
        scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
        zp_arr = numpy_helper.to_array(inits[node.input[2]]) if len(node.input) > 2 and node.input[2] else None
        dtype = zp_arr.dtype if zp_arr is not None else np.dtype(np.uint8)
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * x.ndim
        if scale.ndim == 1 and x.ndim > 0:
            shape[axis % x.ndim] = -1
        zp = (zp_arr.astype(np.float64) if zp_arr is not None else np.zeros(())).reshape(shape if scale.ndim else ())
        info = np.iinfo(dtype)
        q = np.clip(np.rint(x / scale.reshape(shape if scale.ndim else ())) + zp, info.min, info.max).astype(dtype)
        graph.initializer.append(numpy_helper.from_array(q, node.output[0]))
        folded += 1
    used = {i for n in keep for i in n.input} | {o.name for o in graph.output}
    keep = [n for n in keep if n.op_type != "Constant" or n.output[0] in used]
    del graph.node[:]
    graph.node.extend(keep)
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.save(model, dst)
    return folded
