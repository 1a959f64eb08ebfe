"""Model family from graph structure (``edgeopt.graph.model_family``) and the transformer fusion pass."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edgeopt.graph.model_family import detect_family
from edgeopt.passes.ort_quantize import quantize_static_int8
from edgeopt.passes.ort_quantize_options import StaticInt8Options
from edgeopt.passes.transformer_fusion import TransformerFusionOptions, fuse_transformer, unfold_gemms
from edgeopt.plugin.manager import get_plugin_manager
from edgeopt.types import Dataset, ImportOptions
from tests.tiny_bert import HEADS, HIDDEN, bert_samples, export_tiny_bert

pytest.importorskip("transformers")

ROOT = Path(__file__).resolve().parents[1]
ZOO = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


@pytest.fixture(scope="module")
def bert(tmp_path_factory) -> Path:
    """The tiny BERT as edgeopt normalizes it (onnxslim without FusionGemm: MatMul + Add pairs kept)."""
    folder = tmp_path_factory.mktemp("bert")
    raw = export_tiny_bert(folder / "bert.onnx")
    graph = get_plugin_manager().import_model(raw, ImportOptions(), folder / "graph")
    return graph.path


@pytest.fixture(scope="module")
def slimmed_bert(bert, tmp_path_factory) -> Path:
    """The tiny BERT as a user who ran onnxslim on it would give it: MatMul + Add folded into Reshape/Gemm/Reshape."""
    import onnxslim

    path = tmp_path_factory.mktemp("slimmed") / "bert-slim.onnx"
    onnx.save(onnxslim.slim(str(bert.parent.parent / "bert.onnx")), str(path))
    return path


def _run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    n = len(next(iter(feeds.values())))
    return np.concatenate([session.run(None, {k: v[i : i + 1] for k, v in feeds.items()})[0] for i in range(n)])


def _renamed(path: Path) -> onnx.ModelProto:
    """The model with every node and tensor name replaced by a meaningless one (inputs/outputs kept)."""
    model = onnx.load(str(path))
    keep = {i.name for i in model.graph.input} | {o.name for o in model.graph.output}
    names: dict[str, str] = {}

    def new(name: str) -> str:
        if not name or name in keep:
            return name
        return names.setdefault(name, f"t{len(names)}")

    for init in model.graph.initializer:
        init.name = new(init.name)
    for vi in model.graph.value_info:
        vi.name = new(vi.name)
    for k, node in enumerate(model.graph.node):
        node.name = f"n{k}"
        node.input[:] = [new(i) for i in node.input]
        node.output[:] = [new(o) for o in node.output]
    onnx.checker.check_model(model)
    return model


def test_transformer_is_detected_from_structure_with_its_geometry(bert) -> None:
    family = detect_family(bert)
    assert family.kind == "transformer"
    assert family.attention_blocks == 2
    assert (family.num_heads, family.hidden_size) == (HEADS, HIDDEN)
    assert detect_family(_renamed(bert)) == family  # names play no part


def test_conv_and_recurrent_and_mlp_families(tmp_path) -> None:
    import torch

    assert detect_family(ROOT / "examples" / "digits" / "digits_cnn.onnx").kind == "cnn"
    assert detect_family(ZOO / "light_squeezenet.onnx").kind == "cnn"

    class Recurrent(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gru = torch.nn.GRU(8, 16, batch_first=True)
            self.head = torch.nn.Linear(16, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(self.gru(x)[0][:, -1])

    torch.onnx.export(Recurrent(), (torch.zeros(1, 5, 8),), str(tmp_path / "gru.onnx"), opset_version=17,
                      dynamo=False)
    assert detect_family(tmp_path / "gru.onnx").kind == "rnn"
    mlp = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    torch.onnx.export(mlp, (torch.zeros(1, 8),), str(tmp_path / "mlp.onnx"), opset_version=17, dynamo=False)
    family = detect_family(tmp_path / "mlp.onnx")
    assert family.kind == "mlp" and family.attention_blocks == 0


def test_fusion_builds_attention_skiplayernorm_biasgelu_and_keeps_outputs(bert, tmp_path) -> None:
    report = fuse_transformer(bert, tmp_path / "fused.onnx")
    ops = Counter(n.op_type for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node)
    assert ops["Attention"] == 2 and report.fused["Attention"] == 2
    assert ops["SkipLayerNormalization"] >= 3 and ops["BiasGelu"] == 2
    assert ops["Softmax"] == 0  # attention is one node now
    assert (report.num_heads, report.hidden_size) == (HEADS, HIDDEN) and report.unfolded_gemms == 0
    feeds = bert_samples(6, seed=3)  # padded masks: the float-min mask path must survive the fusion
    assert feeds["attention_mask"].min() == 0
    np.testing.assert_allclose(_run(tmp_path / "fused.onnx", feeds), _run(bert, feeds), atol=1e-4)


def test_normalization_skips_onnxslims_gemm_fusion_for_encoders_only(bert) -> None:
    """Leaving FusionGemm out (skip_fusion_patterns) keeps an encoder's MatMul + Add for ORT's fusion."""
    assert not any(n.op_type == "Gemm" for n in onnx.load(str(bert)).graph.node)


def test_unfolding_alone_changes_no_output(slimmed_bert, bert, tmp_path) -> None:
    model = onnx.load(str(slimmed_bert))
    gemms = sum(n.op_type == "Gemm" for n in model.graph.node)
    assert gemms > 0
    assert unfold_gemms(model) == gemms
    assert not any(n.op_type == "Gemm" for n in model.graph.node)
    onnx.save(model, str(tmp_path / "unfolded.onnx"))
    feeds = bert_samples(3, seed=4)
    np.testing.assert_allclose(_run(tmp_path / "unfolded.onnx", feeds), _run(slimmed_bert, feeds), atol=1e-5)


def test_a_user_slimmed_encoder_fuses_exactly_as_the_normalized_one(slimmed_bert, bert, tmp_path) -> None:
    """The same fused graph whether the Gemms were never folded (normalization) or folded and unfolded here."""
    ours = fuse_transformer(bert, tmp_path / "ours.onnx")
    theirs = fuse_transformer(slimmed_bert, tmp_path / "theirs.onnx")
    assert theirs.unfolded_gemms > 0 and ours.fused == theirs.fused
    ops = [Counter(n.op_type for n in onnx.load(str(tmp_path / f)).graph.node) for f in ("ours.onnx", "theirs.onnx")]
    assert ops[0] == ops[1]
    feeds = bert_samples(6, seed=3)
    np.testing.assert_array_equal(_run(tmp_path / "ours.onnx", feeds), _run(tmp_path / "theirs.onnx", feeds))


def test_static_int8_on_the_fused_graph_survives_padded_masks(bert, tmp_path) -> None:
    fuse_transformer(bert, tmp_path / "fused.onnx")
    calib = Dataset(bert_samples(32, seed=1))
    options = StaticInt8Options(reduce_range=True, op_types=("MatMul", "Gemm"))
    quantize_static_int8(tmp_path / "fused.onnx", tmp_path / "int8.onnx", calib, options)
    feeds = bert_samples(12, seed=2)
    ref, got = _run(bert, feeds).ravel(), _run(tmp_path / "int8.onnx", feeds).ravel()
    assert float(ref @ got / np.linalg.norm(ref) / np.linalg.norm(got)) > 0.999


def test_fusion_options_are_checked_and_unreadable_heads_refused(tmp_path) -> None:
    from edgeopt.errors import CompileError

    with pytest.raises(CompileError, match="model_type"):
        TransformerFusionOptions(model_type="gpt9")
    with pytest.raises(CompileError, match="unknown transformer-fuse"):
        TransformerFusionOptions.from_params({"heads": 2})
    with tempfile.TemporaryDirectory() as tmp, pytest.raises(CompileError, match="head count"):
        fuse_transformer(ROOT / "examples" / "digits" / "digits_cnn.onnx", Path(tmp) / "x.onnx")


def test_cpu_plans_fuse_transformers_and_keep_masks_out_of_static_int8(bert) -> None:
    from edgeopt.measure.devices import host_profile

    pm = get_plugin_manager()
    graph = pm.import_model(bert, ImportOptions(), bert.parent / "again")
    plans = pm.plan(graph, pm.target("cpu"), host_profile(), "auto")
    assert plans[0].label == "fp32 (ORT transformer fusion)"
    assert all(p.passes[0].name == "transformer-fuse" for p in plans if p.precision != "fp32" or "fusion" in p.label)
    assert any(p.label == "fp32 (ORT extended)" for p in plans)  # the unfused alternative is measured too
    for plan in plans:
        static = [s for s in plan.passes if s.name == "quantize-static"]
        assert all(tuple(s.params["op_types"]) == ("MatMul", "Gemm") for s in static)
    assert {p.precision for p in plans} == {"fp32", "int8", "int8-dynamic"}
