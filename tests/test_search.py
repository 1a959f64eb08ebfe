"""``--precision auto`` search: collapse detection, mixed-precision fallback, search budget, cache, metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeopt
from edgeopt.api import deploy
from edgeopt.errors import AccuracyBudgetExceeded, DataError, InputSpecError
from edgeopt.evaluate.task_metrics import FIDELITY_METRICS, METRICS
from edgeopt.pipeline.request import Deployment
from edgeopt.search.candidates import SKIPPED_BUDGET, fallback_label, fallback_sizes

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
CLASSIFICATION = [m for m, info in METRICS.items() if info.kind == "classification"]
REGRESSION = [m for m, info in METRICS.items() if info.kind == "regression"]


def outlier_mlp(path: Path, *, outlier: float = 1e4, seed: int = 0) -> Path:
    """A 16-32-4 ReLU MLP whose hidden unit 0 is ``outlier`` times larger than the others, compensated in the
    next layer, so fp32 is unchanged while 8-bit activations of the hidden layer keep only that unit."""
    rng = np.random.default_rng(seed)
    w1 = rng.standard_normal((32, 16)).astype(np.float32) / 4
    b1 = rng.standard_normal(32).astype(np.float32) * 0.1
    w2 = rng.standard_normal((4, 32)).astype(np.float32)
    w1[0] *= outlier
    b1[0] *= outlier
    w2[:, 0] /= outlier
    nodes = [
        helper.make_node("Gemm", ["x", "W1", "b1"], ["h"], name="fc1", transB=1),
        helper.make_node("Relu", ["h"], ["hr"], name="relu1"),
        helper.make_node("Gemm", ["hr", "W2", "b2"], ["logits"], name="fc2", transB=1),
    ]
    inits = [numpy_helper.from_array(a, n) for a, n in ((w1, "W1"), (b1, "b1"), (w2, "W2"),
                                                          (np.zeros(4, np.float32), "b2"))]
    graph = helper.make_graph(nodes, "outlier_mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def predict(path: Path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"x": x[i : i + 1]})[0] for i in range(len(x))])


@pytest.fixture(scope="module")
def outlier(tmp_path_factory) -> dict:
    """The outlier MLP, calibration data and labelled evaluation data (labels: the fp32 model's own classes)."""
    d = tmp_path_factory.mktemp("outlier")
    model = outlier_mlp(d / "outlier.onnx")
    x = np.random.default_rng(1).standard_normal((192, 16)).astype(np.float32)
    logits = predict(model, x)
    np.savez(d / "calib.npz", x=x[:96])
    np.savez(d / "eval.npz", x=x[96:], labels=logits[96:].argmax(1))
    np.savez(d / "eval_reg.npz", x=x[96:], labels=logits[96:] + 0.01)
    np.savez(d / "eval_nolabels.npz", x=x[96:])
    return {"dir": d, "model": model, "x": x}


def _deploy(outlier: dict, tmp_path: Path, **kwargs) -> Deployment:
    d = outlier["dir"]
    options = {"calib": d / "calib.npz", "eval": d / "eval.npz", "timing_s": 0.1, "cache": False,
               "out": tmp_path / "a.edgeopt", "exhaustive": True}  # int8 of a toy is no faster: screen off
    options.update(kwargs)
    return deploy(str(outlier["model"]), **options)


def test_fallback_sizes_double_then_stop_before_all() -> None:
    assert fallback_sizes(1) == []
    assert fallback_sizes(2) == [1]
    assert fallback_sizes(4) == [1, 2, 3]
    assert fallback_sizes(10) == [1, 2, 4, 8, 9]
    assert fallback_label("int8 x", ["a", "b", "c"]) == "int8 x + fp32 {a, b +1 more}"


def test_auto_detects_collapse_and_recovers_with_mixed_precision(outlier, tmp_path) -> None:
    deployment = _deploy(outlier, tmp_path, max_drop=2.0)  # 2 of 96 evaluation samples
    m = deployment.manifest
    naive = [c for c in m["candidates"] if c["precision"] == "int8" and not c["keep_fp32"]]
    assert naive and all(c["status"] in ("refused", "duplicate") for c in naive)
    assert any("vanished" in c["reason"] or "collapsed" in c["reason"] for c in naive if c["status"] == "refused")
    mixed = [c for c in m["candidates"] if c["keep_fp32"]]
    assert mixed and mixed[-1]["status"] == "accepted" and mixed[-1]["origin"] == "fallback"
    assert mixed[-1]["keep_fp32"] == ["fc2"] and mixed[-1]["drop"] <= 2.0
    assert m["search"]["fallback"]["recovered"] is True
    assert m["search"]["fallback"]["ranking"][0] == "fc2"
    assert m["sensitivity"][0]["node"] == "fc2" and m["sensitivity"][0]["rank"] == 1
    assert m["sensitivity"][0]["contribution_db"] < m["sensitivity"][1]["contribution_db"]
    report = (deployment.path / "report.md").read_text()
    assert "Mixed-precision fallback" in report and "report.html" in report
    assert "<svg" in (deployment.path / "report.html").read_text()


def test_int8_fallback_ships_mixed_precision_that_agrees_with_fp32(outlier, tmp_path) -> None:
    deployment = _deploy(outlier, tmp_path, precision="int8", force_precision=True, max_drop=3.0)
    m = deployment.manifest
    assert m["plan"]["precision"] == "int8" and "fp32 {fc2}" in m["plan"]["label"]
    (static,) = m["plan"]["passes"]
    assert "fc2" in static["params"]["nodes_to_exclude"]
    assert any("kept in fp32: fc2" in note for note in m["plan"]["notes"])
    x = outlier["x"][96:]
    with edgeopt.load(deployment.path) as model:
        got = np.concatenate([model({"x": x[i : i + 1]})["logits"] for i in range(len(x))])
    agreement = np.mean(got.argmax(1) == predict(outlier["model"], x).argmax(1))
    assert agreement >= 0.96


def test_budget_exceeded_names_the_best_configuration(outlier, tmp_path) -> None:
    with pytest.raises(AccuracyBudgetExceeded) as info:
        _deploy(outlier, tmp_path, precision="int8", metric="fidelity:cosine", max_drop=0.0)
    message = str(info.value)
    assert "closest over the budget: " in message and "fp32 {fc2}" in message
    assert "node(s) kept in fp32" in message and "points" in message
    assert info.value.hint.startswith("the closest needs --max-drop ") and "raise --max-drop" in info.value.hint
    assert not (tmp_path / "a.edgeopt").exists()


def test_search_budget_skips_candidates_not_reached(outlier, tmp_path) -> None:
    m = _deploy(outlier, tmp_path, budget_s=1e-6).manifest
    statuses = [c["status"] for c in m["candidates"]]
    assert statuses[0] == "accepted" and m["plan"]["precision"] == "fp32"
    skipped = [c for c in m["candidates"] if c["status"] == "skipped"]
    assert len(skipped) == len(statuses) - 1 and all(c["reason"] == SKIPPED_BUDGET for c in skipped)
    assert m["search"]["skipped"] == [c["label"] for c in skipped] and m["search"]["budget_s"] == 1e-6


def test_cache_reuses_verified_candidates_and_ignores_the_cwd(outlier, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(tmp_path / "cache"))
    int8 = {"precision": "int8", "max_drop": 3.0}
    first = _deploy(outlier, tmp_path, cache=True, out=tmp_path / "one.edgeopt", **int8).manifest
    assert first["search"]["cache"]["hits"] == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    second = _deploy(outlier, tmp_path, cache=True, out=tmp_path / "two.edgeopt", **int8).manifest
    ran = [c for c in second["candidates"] if c["status"] != "skipped"]
    assert all(c["cached"] for c in ran) and second["search"]["cache"]["hits"] == len(ran)
    assert [c["status"] for c in second["candidates"]] == [c["status"] for c in first["candidates"]]
    assert [c["drop"] for c in second["candidates"]] == [c["drop"] for c in first["candidates"]]
    assert all(c["latency_p50_s"] for c in ran if c["status"] != "duplicate")  # timed again
    # a stored file that no longer matches its sha256 is never reused
    stored = sorted((tmp_path / "cache" / "search").glob("*/*/files/model.onnx"))
    blob = bytearray(stored[0].read_bytes())
    blob[len(blob) // 2] ^= 1
    stored[0].write_bytes(bytes(blob))
    third = _deploy(outlier, tmp_path, cache=True, out=tmp_path / "three.edgeopt", **int8).manifest
    assert third["search"]["cache"]["hits"] == len(ran) - 1
    off = _deploy(outlier, tmp_path, cache=False, out=tmp_path / "four.edgeopt", **int8).manifest
    assert off["search"]["cache"]["enabled"] is False and not any(c["cached"] for c in off["candidates"])


def test_custom_metric_callable_through_deploy(outlier, tmp_path) -> None:
    def margin(outputs, labels) -> float:  # noqa: ANN001
        logits = outputs[0]
        return float(np.mean(logits[np.arange(len(labels)), labels]) - np.mean(logits))

    m = _deploy(outlier, tmp_path, precision="fp32", metric=margin, max_drop=0.01).manifest
    assert m["metrics"]["metric"] == "margin" and m["metrics"]["units"] == "custom"
    assert m["metrics"]["reference"] > 0 and abs(m["metrics"]["drop"]) < 0.01


@pytest.mark.parametrize("metric", [*CLASSIFICATION, *REGRESSION, *FIDELITY_METRICS])
def test_every_metric_name_works_end_to_end(outlier, tmp_path, metric) -> None:
    data = {"eval_reg.npz": REGRESSION, "eval_nolabels.npz": FIDELITY_METRICS}
    evaluation = next((name for name, group in data.items() if metric in group), "eval.npz")
    m = _deploy(outlier, tmp_path, precision="fp32", metric=metric, eval=outlier["dir"] / evaluation).manifest
    assert m["metrics"]["metric"] == metric
    assert m["metrics"]["units"] == (METRICS[metric].unit if metric in METRICS else "points")
    assert m["metrics"]["drop"] == pytest.approx(0.0, abs=1e-3)


def test_unknown_metric_and_bad_budget_fail_before_any_work(outlier, tmp_path) -> None:
    with pytest.raises(DataError, match="unknown metric 'acc'") as info:
        _deploy(outlier, tmp_path, metric="acc")
    assert "fidelity:cosine" in info.value.hint
    with pytest.raises(InputSpecError, match="budget-s"):
        _deploy(outlier, tmp_path, budget_s=0)


def test_cli_states_the_metric_unit_and_search(outlier, tmp_path) -> None:
    d = outlier["dir"]
    env = {**os.environ, "EDGEOPT_CACHE_DIR": str(tmp_path / "cache")}
    args = [sys.executable, "-m", "edgeopt", "deploy", str(outlier["model"]), "--calib", str(d / "calib.npz"),
            "--eval", str(d / "eval_reg.npz"), "--metric", "mae", "--max-drop", "0.05", "--precision", "fp32",
            "--timing-s", "0.1", "--out", str(tmp_path / "cli.edgeopt"), "--no-cache"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, env={**env, "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "mae (units)" in result.stdout and "budget --max-drop 0.05 units" in result.stdout
    assert "cache off" in result.stdout


def test_digits_auto_within_half_a_point_and_not_slower_than_fp32(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(tmp_path / "cache"))
    deployment = deploy(
        str(DIGITS / "digits_cnn.onnx"), calib=DIGITS / "calib.npz", eval=DIGITS / "eval.npz", max_drop=0.5,
        timing_s=0.3, out=tmp_path / "digits.edgeopt",
    )
    m = deployment.manifest
    assert m["metrics"]["metric"] == "accuracy" and m["metrics"]["drop"] <= 0.5
    fp32 = next(c for c in m["candidates"] if c["precision"] == "fp32")
    chosen = next(c for c in m["candidates"] if c["label"] == m["plan"]["label"] and c["status"] == "accepted")
    decision = m["decision"]  # the fastest, or tied with it and chosen by the stated tie-break
    assert decision["chosen"] == chosen["label"] and (decision["fastest"] == chosen["label"]
                                                      or chosen["label"] in decision["tied"])
    assert chosen["latency_p50_s"] <= fp32["latency_p50_s"] or chosen["label"] in decision["tied"]
    assert {c["precision"] for c in m["candidates"]} >= {"fp32", "int8", "int8-dynamic"}
    labels = " ".join(c["label"] for c in m["candidates"])
    assert "per-tensor" in labels and "entropy" in labels and "percentile" in labels
    assert m["sensitivity"] and m["search"]["sensitivity"]["method"] == "activation-sqnr"
    again = deploy(
        str(DIGITS / "digits_cnn.onnx"), calib=DIGITS / "calib.npz", eval=DIGITS / "eval.npz", max_drop=0.5,
        timing_s=0.3, out=tmp_path / "digits2.edgeopt",
    ).manifest
    assert again["search"]["cache"]["hits"] == sum(c["status"] != "skipped" for c in again["candidates"])
    assert again["search"]["elapsed_s"] < m["search"]["elapsed_s"]


def _stub_search(monkeypatch, statuses: dict[str, str]):
    """``_run_search`` with evaluation stubbed: each plan label gets the status in ``statuses``."""
    import edgeopt.search.run as search_mod
    from edgeopt.search.candidates import Candidate
    from edgeopt.types import Compiled, Metrics

    built: list[str] = []

    def evaluate_plan(ctx, plan, index, *, origin="plan", force=False, last_build=False):
        built.append(plan.label)
        if last_build:
            ctx.last_builds.append(plan.label)
        status = statuses[plan.label]
        metrics = Metrics("fidelity:cosine", 100.0, 98.0, 2.0 if status == "refused" else 0.0)
        compiled = Compiled(directory=Path("."), model_file="m", files=("m",), plan=plan, runtime="stub")
        return Candidate(plan, status, "", compiled, metrics, origin=origin), None

    class Ranked:
        def ranked(self):
            return []

    class Ctx:
        last_builds: list[str] = []

        def out_of_time(self):
            return False

    monkeypatch.setattr(search_mod, "evaluate_plan", evaluate_plan)
    monkeypatch.setattr(search_mod, "analyse", lambda ctx, base: Ranked())
    return search_mod, Ctx(), built


def test_accuracy_variants_are_skipped_once_a_plan_of_their_precision_is_accepted(monkeypatch) -> None:
    from edgeopt.types import Plan

    search_mod, ctx, built = _stub_search(monkeypatch, {"fp32": "accepted", "int8": "accepted",
                                                        "int8 per-tensor": "accepted", "bf16": "accepted"})
    plans = [(Plan("t", "fp32", label="fp32"), "plan"), (Plan("t", "int8", label="int8"), "plan"),
             (Plan("t", "int8", label="int8 per-tensor", granularity="per-tensor"), "variant"),
             (Plan("t", "bf16", label="bf16"), "plan")]
    found = search_mod._run_search(ctx, plans, "auto", search_mod.Search(), None)
    assert built == ["fp32", "int8", "bf16"]
    skipped = found.candidates[2]
    assert skipped.status == "skipped" and search_mod.SKIPPED_VARIANT in skipped.reason and "(int8)" in skipped.reason


def test_a_stop_after_call_stops_the_build_worker_after_its_last_build(monkeypatch) -> None:
    """``--target auto`` builds each target's fp32 baseline alone: its worker (and a converter it started) is not
    kept while the baseline is evaluated; a full search keeps its worker for the builds that may follow."""
    from edgeopt.types import Plan

    search_mod, ctx, built = _stub_search(monkeypatch, {"fp32": "accepted", "int8": "accepted", "bf16": "accepted"})
    ctx.last_builds = []
    plans = [(Plan("t", "fp32", label="fp32"), "plan"), (Plan("t", "int8", label="int8"), "plan"),
             (Plan("t", "bf16", label="bf16"), "plan")]
    found = search_mod._run_search(ctx, plans, "auto", search_mod.Search(), 1)
    assert built == ["fp32"] and ctx.last_builds == ["fp32"]
    search_mod._run_search(ctx, plans, "auto", found, None)
    assert built == ["fp32", "int8", "bf16"] and ctx.last_builds == ["fp32"]


def test_last_build_stops_the_builder_before_the_candidate_is_loaded(tmp_path) -> None:
    from edgeopt.errors import CompileError
    from edgeopt.search.candidates import evaluate_plan
    from edgeopt.types import Compiled, Plan

    plan = Plan("t", "fp32", label="fp32")
    (tmp_path / "m").write_bytes(b"model")
    calls: list[str] = []

    class Pm:
        def runner(self, *args):
            calls.append("runner")
            raise CompileError("not loadable here")

    class Ctx:
        pm, cache, builder, workdir, batch, threads, target, device = Pm(), None, None, tmp_path, 1, None, None, None
        seen: dict = {}

        class events:  # noqa: N801 - an Events stand-in
            @staticmethod
            def step(message: str) -> None:
                pass

        def out_of_time(self) -> bool:
            return False

        def compile(self, plan, workdir):
            calls.append("compile")
            return Compiled(directory=tmp_path, model_file="m", files=("m",), plan=plan, runtime="stub")

        def close_builds(self) -> None:
            calls.append("close")

    for last, expected in ((True, ["compile", "close", "runner"]), (False, ["compile", "runner"])):
        calls.clear()
        Ctx.seen = {}
        candidate, runner = evaluate_plan(Ctx(), plan, 0, last_build=last)
        assert calls == expected and candidate.status == "failed" and runner is None


def test_fallback_is_tried_for_refused_int8_even_when_bf16_was_accepted(monkeypatch) -> None:
    from edgeopt.types import Plan

    search_mod, ctx, built = _stub_search(monkeypatch, {"fp32": "accepted", "int8": "refused",
                                                        "int8 entropy": "refused", "bf16": "accepted"})
    plans = [(Plan("t", "fp32", label="fp32"), "plan"), (Plan("t", "int8", label="int8"), "plan"),
             (Plan("t", "int8", label="int8 entropy", calibration="entropy"), "variant"),
             (Plan("t", "bf16", label="bf16"), "plan")]
    found = search_mod._run_search(ctx, plans, "auto", search_mod.Search(), None)
    assert built == ["fp32", "int8", "int8 entropy", "bf16"]  # nothing accepted at int8: the variant runs
    assert found.notes == ["no mixed-precision fallback from int8: no node could be ranked"]
