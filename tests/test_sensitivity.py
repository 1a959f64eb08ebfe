"""Per-layer sensitivity (edgeopt.evaluate.sensitivity) and the CPU plugin honouring
Plan.keep_fp32/calibration/granularity."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeopt.errors import CompileError
from edgeopt.evaluate.sensitivity import (
    SensitivityReport,
    activation_sensitivity,
    quantizable_nodes,
    recompile_sensitivity,
    weight_prior,
)
from edgeopt.passes.ort_quantize_options import StaticInt8Options
from edgeopt.search.cache import SearchCache, data_fingerprint, plan_identity
from edgeopt.types import Dataset, Graph, PassSpec, Plan
from tests.test_search import outlier_mlp, predict

compile_plan = pytest.importorskip("edgeopt_cpu.compile").compile_plan


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    d = tmp_path_factory.mktemp("sens")
    model = outlier_mlp(d / "outlier.onnx")
    graph = Graph(model, "fp", "fp", "onnx", 17, (), ())
    x = np.random.default_rng(3).standard_normal((64, 16)).astype(np.float32)
    calib = Dataset({"x": x[:32]})

    def build(name: str, **fields) -> Path:  # noqa: ANN003
        plan = Plan("cpu", "int8", (PassSpec("quantize-static", StaticInt8Options(reduce_range=True).to_params()),),
                    **fields)
        return compile_plan(graph, plan, calib, d / name)

    return {"graph": graph, "model": model, "x": x, "eval": Dataset({"x": x[32:]}), "build": build,
            "naive": build("naive"), "mixed": build("mixed", keep_fp32=("fc2",))}


def test_activation_method_ranks_the_collapsing_layer_first(built) -> None:
    report = activation_sensitivity(built["model"], built["naive"].model_path, built["eval"], batch=1, label="naive")
    assert report.method == "activation-sqnr" and report.samples == 8
    assert report.ranked() == ["fc2", "fc1"]
    fc2, fc1 = report.nodes
    assert fc2.contribution_db < 10 and fc1.contribution_db > fc2.contribution_db + 10  # fc2 destroys the signal
    assert fc1.tensor == "hr"  # fc1's own output was renamed away: compared after the (dropped) Relu
    again = SensitivityReport.from_dict(report.to_dict())
    assert again == report


def test_keep_fp32_reads_float_inputs_and_restores_accuracy(built) -> None:
    mixed = built["mixed"]
    model = onnx.load(str(mixed.model_path))
    fc2 = next(n for n in model.graph.node if n.name == "fc2")
    producer = {o: n for n in model.graph.node for o in n.output}
    assert producer[fc2.input[0]].op_type == "Relu"  # the Relu ORT folded into the QuantizeLinear is back
    assert fc2.input[1] == "W2"  # float weights
    assert any("kept in fp32: fc2" in note for note in mixed.notes)
    assert "fc2" in mixed.passes[0].params["nodes_to_exclude"]
    x, ref = built["x"][32:], predict(built["model"], built["x"][32:]).argmax(1)
    assert np.mean(predict(mixed.model_path, x).argmax(1) == ref) >= 0.95
    assert np.mean(predict(built["naive"].model_path, x).argmax(1) == ref) < 0.7
    report = activation_sensitivity(built["model"], mixed.model_path, built["eval"], batch=1, label="mixed",
                                    keep_fp32=("fc2",))
    by_node = {n.node: n for n in report.nodes}
    assert by_node["fc2"].kept_fp32 and by_node["fc2"].sqnr_db > 20


def test_unknown_keep_fp32_node_is_a_compile_error(built) -> None:
    with pytest.raises(CompileError, match="no_such_node"):
        built["build"]("bad", keep_fp32=("no_such_node",))


def test_calibration_and_granularity_fields_override_the_pass(built) -> None:
    compiled = built["build"]("variant", calibration="percentile", granularity="per-tensor")
    params = compiled.passes[0].params
    assert params["calibrate_method"] == "percentile" and params["per_channel"] is False
    with pytest.raises(CompileError, match="granularity"):
        built["build"]("bad-granularity", granularity="per-row")


def test_weight_prior_and_quantizable_nodes(built) -> None:
    assert quantizable_nodes(built["model"]) == [("fc1", "Gemm"), ("fc2", "Gemm")]
    prior = weight_prior(built["model"])
    assert prior["fc2"] > prior["fc1"] > 0  # fc2's 1e-4 column rounds away; fc1's 1e4 row sets a coarse scale


def test_recompile_method_ranks_by_drop_recovered() -> None:
    drops = {("a",): 5.0, ("b",): 1.0, ("c",): None}
    asked: list[tuple[str, ...]] = []

    def measure(keep: tuple[str, ...]) -> float | None:
        asked.append(keep)
        return drops[keep]

    prior = {"a": 0.3, "b": 0.2, "c": 0.1, "d": 0.05}
    report = recompile_sensitivity(prior, {"a": "Conv"}, measure, base_drop=6.0, label="x", top_k=3)
    assert asked == [("a",), ("b",), ("c",)]  # top_k by prior, never "d"
    assert report.ranked() == ["b", "a", "c", "d"]
    assert report.nodes[0].drop_gain == 5.0 and report.method == "leave-one-fp32"


def test_cache_keys_follow_content_not_labels(tmp_path) -> None:
    a = Plan("cpu", "int8", (PassSpec("quantize-static", {"per_channel": True}),), label="one")
    b = Plan("cpu", "int8", (PassSpec("quantize-static", {"per_channel": True}),), label="two", notes=("n",))
    cache = SearchCache(tmp_path, context={"graph": "g"})
    assert cache.key(a) == cache.key(b)
    assert cache.key(a) != cache.key(Plan(a.target, a.precision, a.passes, keep_fp32=("fc2",)))
    assert cache.key(a) != SearchCache(tmp_path, context={"graph": "h"}).key(a)
    assert plan_identity(a)["keep_fp32"] == []
    x = Dataset({"x": np.ones((2, 3), np.float32)})
    assert data_fingerprint(x) == data_fingerprint(Dataset({"x": np.ones((2, 3), np.float32)}))
    assert data_fingerprint(x) != data_fingerprint(Dataset({"x": np.ones((2, 3), np.float32)}, labels=np.zeros(2)))
    assert data_fingerprint(x) != data_fingerprint(Dataset({"x": np.ones((3, 2), np.float32)}))


class _Quiet:
    def step(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...


def test_non_onnx_candidates_use_leave_one_fp32_recompiles(built, tmp_path) -> None:
    """A candidate whose model is not ONNX is analysed by re-compiling nodes alone in fp32 through the target."""
    from dataclasses import replace

    from edgeopt.evaluate.judge import run_outputs
    from edgeopt.evaluate.reference import ReferenceRunner
    from edgeopt.measure.devices import host_profile
    from edgeopt.plugin.manager import get_plugin_manager
    from edgeopt.search.candidates import Candidate, CandidateContext, judge
    from edgeopt.search.run import analyse

    pm = get_plugin_manager()
    evaluation = Dataset({"x": built["x"][32:]}, labels=predict(built["model"], built["x"][32:]).argmax(1))
    reference = run_outputs(ReferenceRunner(built["model"]), evaluation, batch=1)
    ctx = CandidateContext(pm=pm, graph=built["graph"], target=pm.target("cpu"), device=host_profile(),
                           calibration=Dataset({"x": built["x"][:32]}), evaluation=evaluation,
                           reference_outputs=reference, labels=evaluation.labels, metric="accuracy", max_drop=1.0,
                           batch=1, threads=1, workdir=tmp_path, events=_Quiet())
    naive = built["naive"]
    _, _, metrics = judge(ctx, [predict(naive.model_path, built["x"][32:])])
    as_ir = replace(naive, model_file="model.xml")  # what an OpenVINO-like target would return
    report = analyse(ctx, Candidate(naive.plan, "refused", compiled=as_ir, metrics=metrics))
    assert report.method == "leave-one-fp32" and report.ranked()[0] == "fc2"
    assert report.nodes[0].drop_gain is not None and report.nodes[0].drop_gain > 20
