"""``edgeopt compare`` and ``deploy --target auto``: every target's search on the same data, timed together."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import edgeopt
from edgeopt.errors import InputSpecError, TargetError
from edgeopt.measure.devices import host_profile
from edgeopt.measure.harness import measure_interleaved
from edgeopt.pipeline.compare import rank_key, settings_for
from edgeopt.pipeline.comparison import Setting
from edgeopt.pipeline.request import DeployRequest
from edgeopt.plugin.manager import get_plugin_manager
from edgeopt.types import LatencyStats

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
DATA = {"calib": DIGITS / "calib.npz", "eval": DIGITS / "eval.npz"}


def _openvino() -> bool:
    try:
        return get_plugin_manager().target("openvino", require_available=False).available
    except TargetError:
        return False


needs_openvino = pytest.mark.skipif(not _openvino(), reason="the openvino target is not available here")


def _stats(p50: float, p90: float, throughput: float) -> LatencyStats:
    return LatencyStats(runs=10, batch=1, min=p50, p50=p50, p90=p90, p99=p90, mean=p50, stdev=0.0,
                        throughput=throughput)


# ----------------------------------------------------------------------------------------- units


class Counting:
    def __init__(self) -> None:
        self.calls = 0

    def run(self, feeds):  # noqa: ANN001, ANN201 - the Runner protocol
        self.calls += 1
        return []

    def close(self) -> None:
        pass


def test_interleaved_turns_open_with_untimed_settle_runs() -> None:
    a, b = Counting(), Counting()
    stats = measure_interleaved({"a": a, "b": b}, [{}], warmup=2, rounds=3, runs_per_round=4, settle_runs=2)
    assert stats["a"].runs == stats["b"].runs == 12  # only the runs_per_round runs are timed
    assert a.calls == b.calls == 2 + 3 * (2 + 4)


def test_settings_cover_threads_for_latency_and_batches_for_throughput() -> None:
    device = host_profile()
    cores = min(device.cores or 1, edgeopt.measure.host.physical_cores())
    latency = settings_for(device, DeployRequest(source="m", batches=(1, 8)), 1)
    assert {s.batch for s in latency} == {1}
    assert {s.threads for s in latency} == {cores, 1}
    throughput = settings_for(device, DeployRequest(source="m", batches=(4, 8), objective="throughput"), 1)
    assert {s.batch for s in throughput} == {1, 4, 8}
    pinned = settings_for(device, DeployRequest(source="m", threads=3), 1)
    assert pinned == [Setting(3, 1)]
    fixed = settings_for(device, DeployRequest(source="m", batches=(4, 8), objective="throughput"), 2)
    assert {s.batch for s in fixed} == {2}  # a model built for batch 2 is not re-batched


def test_rank_keys_follow_the_objective() -> None:
    fast, wide = _stats(0.001, 0.002, 1000.0), _stats(0.004, 0.005, 2000.0)
    assert min([wide, fast], key=rank_key("latency", None)) is fast
    assert min([fast, wide], key=rank_key("throughput", None)) is wide
    assert min([fast, wide], key=rank_key("throughput", 3.0)) is fast  # wide misses the 3 ms SLO on p90


def test_bad_requests_fail_before_any_work(tmp_path) -> None:
    with pytest.raises(TargetError, match="unknown target"):
        edgeopt.compare(DIGITS / "digits_cnn.onnx", targets=["cpu", "no-such-target"])
    with pytest.raises(InputSpecError, match="objective"):
        edgeopt.compare(DIGITS / "digits_cnn.onnx", objective="fastest")
    with pytest.raises(InputSpecError, match="objective"):
        edgeopt.deploy(DIGITS / "digits_cnn.onnx", target="auto", objective="fastest", out=tmp_path / "x")
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------------------- end to end


@needs_openvino
@pytest.mark.parametrize("precision", ["fp32", pytest.param("auto", marks=pytest.mark.slow)])
def test_compare_digits_times_cpu_and_openvino_together_and_lists_the_rest(precision) -> None:
    comparison = edgeopt.compare(DIGITS / "digits_cnn.onnx", precision=precision, timing_s=0.2, cache=False,
                                 **DATA)
    by = {r.target: r for r in comparison.results}
    timed = [r for r in comparison.results if r.latency is not None]
    assert {"cpu", "openvino"} <= {r.target for r in timed}
    for r in timed:
        assert r.drop is not None and r.drop <= 1.0 and r.metric == "accuracy"
        assert r.size_bytes and r.energy_j and r.energy_method
        assert r.latency.runs >= 5 and r.setting is not None and len(r.settings_tried) >= 1
    winner = by[comparison.winner]
    assert winner.status == "winner" and comparison.results[0] is winner
    assert all(winner.latency.p50 <= r.latency.p50 for r in timed)
    for r in comparison.results:  # every installed target appears; the ones that cannot run say why
        if r.latency is None:
            assert r.status in ("unavailable", "refused", "failed") and r.reason
    assert set(by) == {t.name for t in edgeopt.targets()}
    data = json.loads(json.dumps(comparison.to_dict()))
    assert data["winner"] == comparison.winner and data["timing"]["settle_runs_per_turn"] >= 1


@needs_openvino
def test_cli_compare_prints_the_table_json_and_an_html_plot(tmp_path) -> None:
    args = [sys.executable, "-m", "edgeopt", "compare", str(DIGITS / "digits_cnn.onnx"), "--targets",
            "cpu,openvino", "--precision", "fp32", "--timing-s", "0.2", "--no-cache", "--html",
            str(tmp_path / "cmp.html")]
    table = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "cpu" in table.stdout and "openvino" in table.stdout and "winner" in table.stdout
    page = (tmp_path / "cmp.html").read_text()
    assert "<svg" in page and "openvino" in page
    done = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    data = json.loads(done.stdout)
    assert {r["target"] for r in data["results"] if r["latency"]} == {"cpu", "openvino"}
    assert data["report_html"] == str(tmp_path / "cmp.html")


@needs_openvino
def test_target_auto_deploys_the_winner_and_records_the_alternatives(tmp_path) -> None:
    deployment = edgeopt.deploy(DIGITS / "digits_cnn.onnx", target="auto", targets=["cpu", "openvino"],
                                precision="fp32", timing_s=0.2, cache=False, out=tmp_path / "auto.edgeopt", **DATA)
    m = deployment.manifest
    selection = m["selection"]
    winner = selection["winner"]
    assert m["target"]["name"] == winner
    rows = {r["target"]: r for r in selection["results"]}
    assert {"cpu", "openvino"} <= set(rows)
    timed = [r for r in rows.values() if r["latency"]]
    assert all(rows[winner]["latency"]["p50"] <= r["latency"]["p50"] for r in timed)
    assert m["plan"]["label"] == rows[winner]["label"]
    assert m["plan"]["threads"] == selection["chosen_setting"]["threads"]
    assert winner in selection["why"] and "interleaved" in selection["why"]
    report = (deployment.path / "report.md").read_text()
    assert "Runtimes compared" in report and "openvino" in report
    assert "Runtimes compared" in (deployment.path / "report.html").read_text()
    with edgeopt.load(deployment.path) as predictor:  # the winner loads and runs like any artifact
        import numpy as np

        x = np.load(DIGITS / "eval.npz")
        name = predictor.inputs[0].name
        assert predictor({name: x[name][:1]})


@needs_openvino
@pytest.mark.slow
def test_compare_tiny_bert_fuses_on_cpu_and_int8_survives_padded_masks(tmp_path) -> None:
    pytest.importorskip("transformers")
    import numpy as np

    from tests.tiny_bert import bert_samples, export_tiny_bert

    model = export_tiny_bert(tmp_path / "bert.onnx")
    np.savez(tmp_path / "calib.npz", **bert_samples(32, seed=1))
    np.savez(tmp_path / "eval.npz", **bert_samples(32, seed=2))
    comparison = edgeopt.compare(model, targets=["cpu", "openvino"], calib=tmp_path / "calib.npz",
                                 eval=tmp_path / "eval.npz", max_drop=0.5, timing_s=0.2, cache=False)
    cpu = comparison.result("cpu")
    labels = {c["label"]: c for c in cpu.candidates}
    assert labels["fp32 (ORT transformer fusion)"]["status"] == "accepted"
    statics = [c for c in cpu.candidates if c["precision"] == "int8" and c["status"] == "accepted"]
    assert statics, [c["reason"] for c in cpu.candidates]
    assert comparison.result("openvino").latency is not None and comparison.winner in ("cpu", "openvino")


def test_throughput_objective_searches_batches_and_keeps_the_highest_rate() -> None:
    comparison = edgeopt.compare(DIGITS / "digits_cnn.onnx", targets=["cpu"], precision="fp32",
                                 objective="throughput", batch=(1, 4), timing_s=0.1, cache=False, **DATA)
    cpu = comparison.result("cpu")
    tried = [s for s in cpu.settings_tried if "throughput" in s]
    assert {s["batch"] for s in tried} == {1, 4}
    assert cpu.setting is not None and cpu.latency.batch == cpu.setting.batch
    assert cpu.latency.throughput == max(s["throughput"] for s in tried)
    assert comparison.winner == "cpu" and comparison.objective == "throughput"


def test_auto_leaves_out_targets_that_only_emulate_their_device() -> None:
    from edgeopt.measure.devices import host_profile
    from edgeopt.pipeline.compare import eligible_targets
    from edgeopt.pipeline.request import DeployRequest
    from edgeopt.types import TargetInfo

    infos = {t.name: t for t in (
        TargetInfo("real", "p", "runs here", ("fp32",)),
        TargetInfo("stand-in", "p", "a TPU target", ("int8",), device_kinds=("tpu", "cpu"),
                   emulated="no board attached"),
    )}

    class Manager:
        def targets(self):
            return list(infos.values())

        def target(self, name, require_available=True):
            return infos[name]

    usable, rows = eligible_targets(Manager(), DeployRequest(source="m.onnx", target="auto"), host_profile())
    assert [t.name for t in usable] == ["real"]
    assert rows[0].target == "stand-in" and "no board attached" in rows[0].reason and "--targets" in rows[0].reason
    named = DeployRequest(source="m.onnx", target="auto", targets=("real", "stand-in"))
    assert [t.name for t in eligible_targets(Manager(), named, host_profile())[0]] == ["real", "stand-in"]
