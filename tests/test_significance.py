"""Statistically honest choices: intervals for latency ratios, "tied" when the timings cannot tell, the tie-break."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.artifact.report import render_markdown
from edgeopt.measure.harness import measure_interleaved, stats_from_samples
from edgeopt.measure.host import host_state
from edgeopt.measure.significance import Contender, choose, ratio_ci
from edgeopt.pipeline.compare import _pick, _why
from edgeopt.pipeline.comparison import Setting, TargetResult
from edgeopt.search.candidates import Candidate
from edgeopt.search.selection import select
from edgeopt.types import Compiled, Metrics, Plan


def _noisy(center: float, n: int = 200, seed: int = 1) -> list[float]:
    rng = np.random.default_rng(seed)
    return (center * (1 + rng.lognormal(-3, 0.5, n))).tolist()


def test_interval_contains_one_for_the_same_distribution_and_excludes_it_for_a_faster_one() -> None:
    same = ratio_ci(_noisy(1e-3, seed=1), _noisy(1e-3, seed=2))
    assert same is not None and same.low < 1 < same.high and not same.distinguishable
    faster = ratio_ci(_noisy(0.8e-3, seed=1), _noisy(1e-3, seed=2))
    assert faster is not None and faster.distinguishable and faster.high < 1
    assert ratio_ci(_noisy(1e-3, seed=1), _noisy(1e-3, seed=2)) == same  # seeded: the same samples, the same CI
    assert ratio_ci([1e-3] * 3, _noisy(1e-3)) is None  # too few runs to say anything


def test_a_tie_is_broken_by_smaller_file_then_quality_then_fp32() -> None:
    a, b = _noisy(1e-3, seed=1), _noisy(1e-3, seed=2)
    by_size = choose([Contender("fp32", a, 4_000_000, 0.0, "fp32"), Contender("int8", b, 1_000_000, 0.01, "int8")])
    assert by_size.is_tie and by_size.chosen == "int8" and by_size.decided_by.startswith("smaller file")
    assert "tied" in by_size.statement() and "smaller file" in by_size.statement()
    by_quality = choose([Contender("x", a, 1000, 0.02, "int8"), Contender("y", b, 1000, 0.01, "int8")])
    assert by_quality.chosen == "y" and by_quality.decided_by.startswith("higher quality")
    by_precision = choose([Contender("bf16", a, 1000, 0.0, "bf16"), Contender("fp32", b, 1000, 0.0, "fp32")])
    assert by_precision.chosen == "fp32" and by_precision.decided_by == "fp32"
    clear = choose([Contender("slow", _noisy(2e-3), 10, 0.0, "fp32"), Contender("fast", b, 10**9, 0.5, "int8")])
    assert not clear.is_tie and clear.chosen == "fast" and "tied" not in clear.statement()


def _candidate(tmp_path: Path, label: str, precision: str, size: int, samples: list[float], drop: float) -> Candidate:
    folder = tmp_path / label
    folder.mkdir()
    (folder / "model.onnx").write_bytes(b"\0" * size)
    plan = Plan("cpu", precision, label=label)
    compiled = Compiled(folder, "model.onnx", ("model.onnx",), plan, "onnxruntime")
    metrics = Metrics("accuracy", 0.9, 0.9 - drop, drop)
    latency = stats_from_samples([int(s * 1e9) for s in samples], batch=1)
    status = "baseline" if precision == "fp32" else "accepted"
    return Candidate(plan, status, compiled=compiled, metrics=metrics, latency=latency)


def test_select_reports_a_tie_with_fp32_and_ships_the_smaller_file(tmp_path: Path) -> None:
    fp32 = _candidate(tmp_path, "fp32", "fp32", 4000, _noisy(1e-3, seed=1), 0.0)
    int8 = _candidate(tmp_path, "int8", "int8", 1000, _noisy(1e-3, seed=2), 0.004)
    chosen = select([fp32, int8], precision="auto", force_precision=False, max_drop=0.01).chosen
    assert chosen.label == "int8" and chosen.choice and set(chosen.choice["tied"]) == {"fp32", "int8"}
    report = render_markdown({"search": {"evaluated": 2}, "decision": chosen.choice})
    assert "tied" in report and "smaller file" in report
    slow = _candidate(tmp_path, "int8-slow", "int8", 1000, _noisy(1.5e-3, seed=3), 0.004)
    picked = select([fp32, slow], precision="int8", force_precision=False, max_drop=0.01)
    assert picked.chosen.label == "fp32" and "slower than fp32" in picked.warnings[0] and "CI" in picked.warnings[0]


def _row(target: str, samples: list[float], size: int, precision: str = "int8") -> TargetResult:
    return TargetResult(target, "ok", label=precision, precision=precision, size_bytes=size, drop=0.0,
                        setting=Setting(threads=None, batch=1),
                        latency=stats_from_samples([int(s * 1e9) for s in samples], batch=1))


def test_target_auto_says_tied_and_names_the_tie_break() -> None:
    rows = [_row("cpu", _noisy(1e-3, seed=1), 5000), _row("openvino", _noisy(1e-3, seed=2), 3000)]
    best, choice = _pick(rows, "latency", None)
    assert best.target == "openvino" and choice is not None and choice.is_tie
    why = _why("latency", best, rows, choice)
    assert "tied" in why and "smaller file" in why
    assert "samples" not in (rows[0].to_dict()["latency"] or {})  # never serialized
    rows = [_row("cpu", _noisy(1e-3, seed=1), 5000), _row("openvino", _noisy(3e-3, seed=2), 3000)]
    best, choice = _pick(rows, "latency", None)
    assert best.target == "cpu" and choice is not None and not choice.is_tie and "tied" not in _why(
        "latency", best, rows, choice)


# ------------------------------------------------------------------------------- real interleaved timing


def _matmul_chain(path: Path, width: int, depth: int) -> Path:
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((width, width)).astype(np.float32) / width, f"w{i}")
             for i in range(depth)]
    nodes = [helper.make_node("MatMul", ["x" if i == 0 else f"h{i}", f"w{i}"], [f"h{i + 1}" if i < depth - 1
                                                                                 else "y"]) for i in range(depth)]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [8, width])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, width])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return path


class _Session:
    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(self, feeds):  # noqa: ANN001, ANN201 - the Runner protocol
        return self.session.run(None, feeds)

    def close(self) -> None:
        pass


def _timed(runners: dict, width: int) -> dict:
    feeds = [{"x": np.random.default_rng(1).standard_normal((8, width)).astype(np.float32)}]
    stats = measure_interleaved(runners, feeds, warmup=10, rounds=60, runs_per_round=1)
    return {name: s.samples for name, s in stats.items()}


def test_two_identical_models_are_tied_and_a_clearly_faster_one_is_not(tmp_path: Path) -> None:
    model = _matmul_chain(tmp_path / "a.onnx", 128, 4)
    twin = tmp_path / "b.onnx"
    twin.write_bytes(model.read_bytes())
    samples = _timed({"a": _Session(model), "b": _Session(twin)}, 128)
    same = choose([Contender("a", samples["a"], 100, 0.0, "fp32"), Contender("b", samples["b"], 50, 0.0, "fp32")])
    assert same.is_tie and same.chosen == "b" and "tied" in same.statement(), same.statement()
    big = _matmul_chain(tmp_path / "big.onnx", 128, 32)  # 8x the work of the small one
    samples = _timed({"small": _Session(model), "big": _Session(big)}, 128)
    clear = choose([Contender("big", samples["big"], 1, 0.0, "fp32"),
                    Contender("small", samples["small"], 10**6, 0.0, "fp32")])
    assert not clear.is_tie and clear.chosen == "small", clear.statement()


def test_host_state_reads_load_and_governor(tmp_path: Path) -> None:
    policy = tmp_path / "cpufreq" / "policy0"
    policy.mkdir(parents=True)
    (policy / "scaling_governor").write_text("powersave\n")
    (tmp_path / "cpufreq" / "policy1").mkdir()
    (tmp_path / "cpufreq" / "policy1" / "scaling_governor").write_text("powersave\n")
    state = host_state(tmp_path)
    assert state["cpu_governor"] == {"powersave": 2} and state["cpus"] >= 1
    assert state["load_average"] is None or len(state["load_average"]) == 3
    assert host_state(tmp_path / "missing")["cpu_governor"] is None


@pytest.mark.parametrize("statistic", ["p50", "p90", "mean"])
def test_every_statistic_gives_an_interval(statistic: str) -> None:
    ci = ratio_ci(_noisy(1e-3, seed=1), _noisy(2e-3, seed=2), statistic=statistic)
    assert ci is not None and ci.high < 1
