"""Stateful (streaming) models and inputs without a batch axis: detection, data, streams, batch sweep, deploy."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeopt
from edgeopt.cli.options import parse_state
from edgeopt.data.datasets import load_dataset, synthetic_dataset
from edgeopt.data.stream import compared_constants, detect_state, fed_whole_inputs, resolve_state, stream_outputs
from edgeopt.errors import DataError, InputSpecError
from edgeopt.evaluate.judge import check_outputs, evaluate, run_outputs
from edgeopt.evaluate.reference import ReferenceRunner
from edgeopt.measure.devices import host_profile
from edgeopt.measure.harness import profile_runner
from edgeopt.plugin.manager import get_plugin_manager
from edgeopt.types import Graph, ImportOptions, StatePair, TensorSpec
from tests.stateful_models import RATE, recurrent_cell, stream_data


def _spec_graph(inputs: list[TensorSpec], outputs: list[TensorSpec]) -> Graph:
    return Graph(Path("none.onnx"), "", "", "onnx", 17, tuple(inputs), tuple(outputs))


def _f(name: str, *shape: int | str) -> TensorSpec:
    return TensorSpec(name, "float32", tuple(shape))


def _imported(model: Path, tmp: Path) -> Graph:
    graph = get_plugin_manager().import_model(model, ImportOptions(), tmp / f"graph-{model.stem}")
    assert graph is not None
    return graph


@pytest.fixture(scope="module")
def cell(tmp_path_factory) -> tuple[Graph, Path]:
    tmp = tmp_path_factory.mktemp("cell")
    return _imported(recurrent_cell(tmp / "cell.onnx"), tmp), tmp


# ------------------------------------------------------------------------------------------- detection


def test_state_detection_rule() -> None:
    silero_like = _spec_graph([_f("input", 1, 576), _f("state", 2, 1, 128), TensorSpec("sr", "int64", ())],
                              [_f("output", 1, 1), _f("stateN", 2, 1, 128)])
    assert detect_state(silero_like) == (StatePair("stateN", "state", 1),)
    lstm = _spec_graph([_f("x", 1, 4), _f("h0", 1, 1, 8), _f("c0", 1, 1, 8)],
                       [_f("y", 1, 8), _f("hn", 1, 1, 8), _f("cn", 1, 1, 8)])
    assert {(p.output, p.input) for p in detect_state(lstm)} == {("hn", "h0"), ("cn", "c0")}
    kv = _spec_graph([_f("ids", 1, 1), _f("past_key_values.0.key", 1, 2, 3, 4)],
                     [_f("logits", 1, 9), _f("present.0.key", 1, 2, 3, 4)])
    assert detect_state(kv) == (StatePair("present.0.key", "past_key_values.0.key", 1),)
    in_out = _spec_graph([_f("hidden_in", 1, 8)], [_f("hidden_out", 1, 8)])
    assert detect_state(in_out) == (StatePair("hidden_out", "hidden_in", 0),)
    # same shape and a related name, but nothing says state: an autoencoder is not a stream
    assert detect_state(_spec_graph([_f("image", 1, 3, 8, 8)], [_f("image_out", 1, 3, 8, 8)])) == ()
    # a state-like name with another shape or dtype is no pair
    assert detect_state(_spec_graph([_f("state", 2, 1, 8)], [_f("stateN", 2, 1, 4)])) == ()
    # two outputs could be the state's: ambiguous, left to --state
    assert detect_state(_spec_graph([_f("state", 1, 8)], [_f("stateN", 1, 8), _f("state_out", 1, 8)])) == ()


def test_declared_state_is_checked_against_the_graph() -> None:
    g = _spec_graph([_f("x", 1, 4), _f("mem_a", 1, 8)], [_f("y", 1, 2), _f("mem_b", 1, 8)])
    assert detect_state(g) == ()  # "mem_a"/"mem_b": no marker pairs them
    assert resolve_state(g, {"mem_b": "mem_a"}) == (StatePair("mem_b", "mem_a", 1),)
    assert resolve_state(g, {}) == ()
    for declared, needle in (({"nope": "mem_a"}, "no output 'nope'"), ({"mem_b": "nope"}, "no input 'nope'"),
                             ({"y": "mem_a"}, "must fit its input")):
        with pytest.raises(InputSpecError, match=needle):
            resolve_state(g, declared)
    assert parse_state(["stateN=state", "hn=h0"]) == {"stateN": "state", "hn": "h0"}
    assert parse_state(["none"]) == {} and parse_state(None) is None
    with pytest.raises(InputSpecError, match="cannot read --state 'stateN'") as caught:
        parse_state(["stateN"])
    assert "OUTPUT=INPUT" in caught.value.hint


def test_inputs_without_a_batch_axis() -> None:
    silero_like = [_f("input", 1, 576), _f("state", 2, 1, 128), TensorSpec("sr", "int64", ())]
    g = _spec_graph(silero_like, [])
    assert fed_whole_inputs(g) == ("state", "sr")
    first_is_state = _spec_graph([silero_like[1], silero_like[0], silero_like[2]], [_f("stateN", 2, 1, 128)])
    assert fed_whole_inputs(first_is_state, resolve_state(first_is_state, {"stateN": "state"})) == ("state", "sr")
    assert fed_whole_inputs(_spec_graph([_f("x", "N", 4), _f("w", 3, 4)], [])) == ()  # a dynamic batch is shared


# ------------------------------------------------------------------------------------------------ data


def test_data_file_with_unbatched_inputs(cell, tmp_path) -> None:
    graph, _ = cell
    assert compared_constants(graph.path) == {"sr": RATE}
    ds = load_dataset(stream_data(tmp_path / "s.npz", steps=10), graph, purpose="evaluation")
    assert ds.state == (StatePair("stateN", "state", 1),) and ds.fed_whole == ("state", "sr")
    assert {k: v.shape for k, v in ds.arrays.items()} == {"x": (10, 6), "state": (10, 2, 1, 8), "sr": (10,)}
    assert not ds.arrays["state"].any()  # left out of the file: the stream starts from zeros
    step = ds.batches(1)[3]
    assert {k: v.shape for k, v in step.items()} == {"x": (1, 6), "state": (2, 1, 8), "sr": ()}
    with pytest.raises(DataError, match="not batchable: stateful input 'state'"):
        ds.batches(4)
    start = np.full((10, 2, 1, 8), 0.25, np.float32)  # a data file's own first state is used
    given = load_dataset({"x": ds.arrays["x"], "state": start, "sr": ds.arrays["sr"]}, graph, purpose="evaluation")
    assert np.array_equal(given.arrays["state"], start)
    with pytest.raises(DataError, match=r"input 'sr' has no batch axis at 0.*expected \(N,\), got \(10, 1, 1\)"):
        load_dataset({"x": ds.arrays["x"], "sr": np.full((10, 1, 1), RATE)}, graph, purpose="evaluation")
    feeds = [{"x": x[None], "sr": np.int64(RATE)} for x in ds.arrays["x"]]  # an iterable of single steps
    from_iter = load_dataset(feeds, graph, purpose="evaluation")
    assert from_iter.arrays["sr"].shape == (10,) and from_iter.state == ds.state
    synthetic = synthetic_dataset(graph, samples=5)
    assert (synthetic.arrays["sr"] == RATE).all() and not synthetic.arrays["state"].any()


def test_stream_feeds_state_back_and_catches_a_candidate_that_ignores_it(cell, tmp_path) -> None:
    graph, tmp = cell
    ds = load_dataset(stream_data(tmp_path / "s.npz", steps=24), graph, purpose="evaluation")
    forgetful = _imported(recurrent_cell(tmp_path / "forgetful.onnx", ignore_state=True), tmp_path)
    ref, cand = ReferenceRunner(graph.path), ReferenceRunner(forgetful.path)
    outputs, fed = stream_outputs(ref.run, ds)
    for k in range(1, 24):  # each step's state input is the previous step's state output
        assert np.array_equal(fed["state"][k], outputs[1][k - 1])
    assert outputs[0].shape == (24, 4) and outputs[1].shape == (24, 2, 1, 8)
    ref_answers, cand_answers = run_outputs(ref, ds, batch=1), run_outputs(cand, ds, batch=1)
    assert len(ref_answers) == 1  # the stream is judged on its answers; the state shows in later answers
    streamed = evaluate(ref_answers, cand_answers, labels=None, synthetic=False)
    assert streamed.drop > 5, streamed  # caught: its answers drift from the first step on
    assert np.allclose(ref_answers[0][0], cand_answers[0][0])  # on a fresh state it is right
    # judged one sample at a time with the data's (zero) state, the same candidate would look perfect
    per_sample = load_dataset(ds, graph, purpose="evaluation", state={})
    blind = evaluate(run_outputs(ref, per_sample, batch=1), run_outputs(cand, per_sample, batch=1), labels=None,
                     synthetic=False)
    assert blind.drop == pytest.approx(0.0, abs=1e-6)
    assert check_outputs(ref_answers, ref_answers) is None


def test_calibration_sees_the_states_the_stream_produces(tmp_path) -> None:
    """Calibration feeds steps one by one: each step's state is the one the fp32 stream fed there, not zeros."""
    from edgeopt.pipeline.request import DeployRequest, LogEvents
    from edgeopt.pipeline.stages import prepare

    model = recurrent_cell(tmp_path / "cell.onnx")
    calib, evaluation = stream_data(tmp_path / "c.npz", steps=12, seed=3), stream_data(tmp_path / "e.npz", seed=4)
    (tmp_path / "work").mkdir()
    prepared = prepare(DeployRequest(source=str(model), calib=str(calib), eval=str(evaluation)),
                       get_plugin_manager(), LogEvents(), tmp_path / "work")
    fed = prepared.calibration.arrays["state"]
    ref, state = ReferenceRunner(model), np.zeros((2, 1, 8), np.float32)
    for k, x in enumerate(np.load(calib)["x"]):
        assert np.allclose(fed[k], state, atol=1e-6), k
        _, state = ref.run({"x": x[None], "state": state, "sr": np.array(RATE)})
    assert np.abs(fed[1:]).min() > 0  # realistic, non-zero states after the first step
    assert prepared.reference_outputs[0].shape == (24, 4)  # the evaluation stream's answers


def test_batch_sweep_says_not_batchable(cell, tmp_path) -> None:
    graph, _ = cell
    ds = load_dataset(stream_data(tmp_path / "s.npz"), graph, purpose="evaluation")
    made = []

    def make(b: int) -> ReferenceRunner:
        made.append(b)
        return ReferenceRunner(graph.path)

    profile = profile_runner(make, lambda b: ds.batches(b)[:4], batches=(1, 8), device=host_profile(), runs=5,
                             size_bytes=1, measure_memory=False, not_batchable=ds.not_batchable)
    assert made == [1]  # no runner is even built for batch 8
    assert profile.unsupported_batches == {8: "not batchable: stateful input 'state'"}
    assert profile.latency.batch == 1 and profile.latency.p50 > 0


# ---------------------------------------------------------------------------------------------- deploy


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "edgeopt", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


def test_stateful_model_deploys_to_cpu_as_a_stream(tmp_path) -> None:
    model = recurrent_cell(tmp_path / "cell.onnx")
    data = stream_data(tmp_path / "s.npz", steps=32)
    deployment = edgeopt.deploy(model, target="cpu", precision="auto", calib=data, eval=data, batch=(1, 8),
                                timing_s=0.05, runs=20, out=tmp_path / "cell.edgeopt", max_drop=2.0)
    m = deployment.manifest
    stream = m["stream"]
    assert stream["state"] == [{"output": "stateN", "input": "state"}] and stream["steps"] == 32
    assert stream["fed_whole"] == ["state", "sr"] and stream["constant_inputs"] == {"sr": RATE}
    assert m["profile"]["latency"]["8"] == {"error": "not batchable: stateful input 'state'"}
    assert m["metrics"]["samples"] == 32 and m["metrics"]["drop"] <= 2.0
    steps = np.load(data)
    with edgeopt.load(deployment.path) as predict:
        assert predict.state == {"stateN": "state"}
        got = [o["output"] for o in predict.stream({"x": x[None], "sr": np.int64(RATE)} for x in steps["x"][:6])]
    ref = ReferenceRunner(model)
    want, state = [], np.zeros((2, 1, 8), np.float32)
    for x in steps["x"][:6]:
        out, state = ref.run({"x": x[None], "state": state, "sr": np.array(RATE)})
        want.append(out)
    assert np.allclose(np.concatenate(got), np.concatenate(want), atol=0.15)
    again = edgeopt.profile(deployment.path, batch=(1, 4), runs=5, timing_s=0.05)
    assert again["latency"]["4"] == {"error": "not batchable: stateful input 'state'"}
    assert again["latency"]["1"]["p50"] > 0


def test_cli_state_option(tmp_path) -> None:
    """Names that detection cannot pair, declared with --state; a wrong declaration is one error line."""
    recurrent_cell(tmp_path / "mem.onnx", names=("mem_a", "mem_b"), with_rate=False)
    stream_data(tmp_path / "s.npz", steps=16, with_rate=False)
    common = ("deploy", "mem.onnx", "--precision", "fp32", "--calib", "s.npz", "--runs", "5", "--timing-s", "0.05")
    bad = _cli(*common, "--state", "mem_b=nope", cwd=tmp_path)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert [line for line in bad.stderr.splitlines() if line.startswith("error[")] == [
        next(line for line in bad.stderr.splitlines() if line.startswith("error[E200]"))
    ]
    ok = _cli(*common, "--state", "mem_b=mem_a", "--out", "mem.edgeopt", "--json", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    manifest = json.loads((tmp_path / "mem.edgeopt" / "manifest.json").read_text())
    assert manifest["stream"]["state"] == [{"output": "mem_b", "input": "mem_a"}]


@pytest.mark.skipif(not edgeopt.targets() or "openvino" not in {t.name for t in edgeopt.targets() if t.available},
                    reason="the OpenVINO target is not available")
def test_stateful_model_deploys_to_openvino(tmp_path) -> None:
    model = recurrent_cell(tmp_path / "cell.onnx")
    data = stream_data(tmp_path / "s.npz", steps=24)
    deployment = edgeopt.deploy(model, target="openvino", precision="fp32", calib=data, eval=data, batch=(1, 2),
                                timing_s=0.05, runs=10, out=tmp_path / "ov.edgeopt")
    m = deployment.manifest
    assert m["stream"]["state"] == [{"output": "stateN", "input": "state"}]
    assert m["metrics"]["drop"] < 0.01
    assert m["profile"]["latency"]["2"] == {"error": "not batchable: stateful input 'state'"}
