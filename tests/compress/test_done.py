"""The issue's acceptance figures on the digits CNN, and the refusals. Fine-tuning runs for ~10-40 s on a
shared 2-core machine, so the figure tests are marked slow."""

from __future__ import annotations

import pytest
import torch

from edgeopt.compression import compress
from edgeopt.errors import ModelError
from edgeopt.pipeline.deploy import run_deploy
from edgeopt.pipeline.request import DeployRequest

ROOT_EXAMPLE = "examples/digits/digits_cnn.onnx"


@pytest.mark.slow
def test_structured_pruning_with_distillation(digits, digits_cnn):
    x_train, x_test, y_train, y_test = digits
    result = compress(digits_cnn, (x_train, y_train), (x_test, y_test), prune="structured:0.5", distill=True,
                      epochs=8, input_shapes=(32, 1, 8, 8), threads=1)
    original, pruned = result.stages[0], result.stages[-1]
    assert original.metric - pruned.metric <= 1.0
    assert pruned.params <= 0.5 * original.params
    assert original.latency["p50_s"] / pruned.latency["p50_s"] >= 1.5


@pytest.mark.slow
def test_clustering_shrinks_the_file(digits, digits_cnn):
    x_train, x_test, y_train, y_test = digits
    result = compress(digits_cnn, (x_train, y_train), (x_test, y_test), cluster=16, distill=True, epochs=3,
                      input_shapes=(1, 1, 8, 8))
    original, clustered = result.stages[0], result.stages[-1]
    assert clustered.size_bytes <= 0.3 * original.size_bytes
    assert original.metric - clustered.metric <= 1.0


@pytest.mark.slow
def test_qat_recovers_where_post_training_int8_misses(digits, digits_cnn):
    x_train, x_test, y_train, y_test = digits
    with torch.no_grad():  # an activation outlier: same fp32 function, but per-tensor int8 ranges break
        digits_cnn.features[0].weight[:4] *= 100
        digits_cnn.features[0].bias[:4] *= 100
        digits_cnn.features[2].weight[:, :4] /= 100
    result = compress(digits_cnn, (x_train, y_train), (x_test, y_test), qat=True, distill=True, epochs=4,
                      max_drop=1.0, input_shapes=(1, 1, 8, 8))
    ptq_line = next(n for n in result.notes if n.startswith("post-training int8"))
    ptq_drop = float(ptq_line.split("drop ")[1].split()[0])
    assert ptq_drop > 1.0  # post-training int8 misses the budget ...
    original, qat = result.stages[0], result.stages[-1]
    assert qat.name == "qat-int8"
    assert original.metric - qat.metric <= 1.0  # ... QAT recovers it


def test_onnx_only_input_refuses_structured_pruning(tmp_path):
    from edgeopt.compression.spec import CompressionSpec, parse_prune

    out = tmp_path / "art"
    request = DeployRequest(source=ROOT_EXAMPLE, out=out,
                            compression=CompressionSpec(prune=parse_prune("structured:0.5"), train="x.npz"))
    with pytest.raises(ModelError, match="structured pruning .* needs retraining") as info:
        run_deploy(request)
    assert "package.module:factory" in info.value.hint
    assert not out.exists()


def test_cpu_plugin_takes_qdq_graph_as_given(tmp_path, digits):
    from edgeopt_cpu.plan import is_prequantized, plan_candidates

    from edgeopt.compression.measure import export_single_file
    from edgeopt.compression.qat import fold_weight_quantize, prepare_qat, set_exporting
    from edgeopt.measure.devices import host_profile
    from edgeopt.types import Graph

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(4 * 36, 10)).eval()
    prepare_qat(model, (torch.from_numpy(digits[0][:64]),))
    set_exporting(model, True)
    export_single_file(model, (torch.from_numpy(digits[0][:1]),), tmp_path / "raw.onnx")
    fold_weight_quantize(str(tmp_path / "raw.onnx"), str(tmp_path / "qdq.onnx"))
    graph = Graph(path=tmp_path / "qdq.onnx", fingerprint="", source_fingerprint="", source_format="onnx", opset=17,
                  inputs=(), outputs=())
    assert is_prequantized(graph)
    plans = plan_candidates(graph, host_profile(), "auto")
    assert [p.passes for p in plans] == [()] and plans[0].precision == "int8"
