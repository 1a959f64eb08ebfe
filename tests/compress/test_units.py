"""Fast checks of each compression pass on tiny models (no training beyond a step)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edgeopt.compression.cluster import apply_clustering, finalize_clustering, kmeans_1d
from edgeopt.compression.measure import export_single_file
from edgeopt.compression.onnx_encode import encode_weights
from edgeopt.compression.prune import _two_four_mask, apply_pruning, count_params, finalize
from edgeopt.compression.qat import fold_weight_quantize, prepare_qat, set_exporting
from edgeopt.compression.spec import CompressionSpec, parse_prune
from edgeopt.errors import InputSpecError


class TinyResNet(nn.Module):
    """A residual add and a concatenation: structured pruning must keep both consistent."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.a = nn.Conv2d(16, 16, 3, padding=1)
        self.b = nn.Conv2d(16, 16, 3, padding=1)
        self.side = nn.Conv2d(16, 8, 1)
        self.head = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(x + self.b(torch.relu(self.a(x))))
        x = torch.cat([x, self.side(x)], dim=1)
        return self.head(x.mean(dim=(2, 3)))


def _ort(path, x):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]


def test_parse_prune():
    assert parse_prune("structured:0.5").kind == "structured"
    assert parse_prune("2:4").ratio == 0.5
    assert parse_prune("unstructured-global:0.3").ratio == pytest.approx(0.3)
    for bad in ("structured:1.5", "channels:0.5", "structured:x"):
        with pytest.raises(InputSpecError):
            parse_prune(bad)
    with pytest.raises(InputSpecError):
        CompressionSpec(cluster=16, qat=True)


def test_structured_pruning_keeps_residual_and_concat_consistent():
    torch.manual_seed(0)
    model = TinyResNet().eval()
    x = torch.randn(2, 1, 8, 8)
    model, report = apply_pruning(model, parse_prune("structured:0.5"), (x,))
    assert model(x).shape == (2, 10)
    assert report.params_after < 0.45 * report.params_before
    assert model.stem.out_channels == model.b.out_channels == 8  # the residual's two sides pruned alike
    assert model.head.in_features == model.b.out_channels + model.side.out_channels
    assert model.head.out_features == 10


def test_two_four_and_unstructured_masks():
    torch.manual_seed(0)
    w = torch.randn(8, 16, 3, 3)
    mask = _two_four_mask(w)
    groups = mask.permute(0, 2, 3, 1).reshape(-1, 4)
    assert torch.all(groups.sum(1) == 2)
    model = TinyResNet()
    model, report = apply_pruning(model, parse_prune("unstructured:0.6"), (torch.randn(1, 1, 8, 8),))
    finalize(model)
    total, nonzero = count_params(model)
    assert report.params_after == report.params_before and nonzero < 0.5 * total


def test_kmeans_and_compact_onnx_runs_identically(tmp_path):
    values, codes = kmeans_1d(np.random.default_rng(0).standard_normal(1000).astype(np.float32), 16)
    assert len(values) <= 16 and codes.max() < len(values)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 36, 10)).eval()
    apply_clustering(model, 16)
    encodings = finalize_clustering(model)
    assert {len(np.unique(e.values)) <= 16 for e in encodings} == {True}
    x = torch.randn(1, 1, 8, 8)
    export_single_file(model, (x,), tmp_path / "plain.onnx")
    encode_weights(tmp_path / "plain.onnx", tmp_path / "compact.onnx", encodings)
    plain, compact = tmp_path / "plain.onnx", tmp_path / "compact.onnx"
    assert compact.stat().st_size < 0.35 * plain.stat().st_size
    assert "Gather" in {n.op_type for n in onnx.load(str(compact)).graph.node}
    np.testing.assert_allclose(_ort(compact, x.numpy()), model(x).detach().numpy(), rtol=1e-5, atol=1e-5)


def test_qat_export_is_qdq_with_int8_weights(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 36, 10)).eval()
    x = torch.rand(64, 1, 8, 8)
    prepare_qat(model, (x,))
    expected = model(x[:1]).detach().numpy()
    set_exporting(model, True)
    export_single_file(model, (x[:1],), tmp_path / "raw.onnx")
    assert fold_weight_quantize(str(tmp_path / "raw.onnx"), str(tmp_path / "qdq.onnx")) == 2
    graph = onnx.load(str(tmp_path / "qdq.onnx")).graph
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)
    np.testing.assert_allclose(_ort(tmp_path / "qdq.onnx", x[:1].numpy()), expected, atol=0.05)
