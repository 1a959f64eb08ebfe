"""The timing harness: stats, budgets, interleaving, memory, energy and batch choice."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.errors import DataError
from edgeopt.measure.devices import get_profile, roofline_seconds
from edgeopt.measure.energy import ESTIMATE_METHOD, estimate_energy
from edgeopt.measure.harness import Profile, measure, measure_interleaved, profile_runner, stats_from_samples
from edgeopt.measure.memory import peak_memory
from edgeopt.types import EnergyReading, Feeds, Runner

DEVICE = get_profile("x86-avx2-2core")
WIDTH = 36 * 1024


class NumpyRunner:
    """A real (tiny) model in numpy: relu(x @ w). Records feeds and the shared call log."""

    def __init__(self, name: str = "np", log: list[str] | None = None, hidden: int = 64) -> None:
        self.name, self.log = name, log if log is not None else []
        self.w = np.random.default_rng(0).standard_normal((32, hidden)).astype(np.float32)
        self.seen: list[int] = []
        self.closed = False

    def run(self, feeds: Feeds) -> Sequence[np.ndarray]:
        self.log.append(self.name)
        x = feeds["x"]
        self.seen.append(int(x[0, 0]))
        return [np.maximum(x @ self.w, 0)]

    def close(self) -> None:
        self.closed = True


class SleepRunner:
    """Takes ``per_sample_s`` per sample in the batch (plus whatever sleep overshoots)."""

    def __init__(self, per_sample_s: float, batch: int = 1, *, max_batch: int | None = None) -> None:
        if max_batch is not None and batch > max_batch:
            raise ValueError(f"batch {batch} > {max_batch}")
        self.delay, self.calls, self.closed = per_sample_s * batch, 0, False

    def run(self, feeds: Feeds) -> Sequence[np.ndarray]:
        self.calls += 1
        time.sleep(self.delay)
        return [feeds["x"]]

    def close(self) -> None:
        self.closed = True


def feeds(n: int = 3, batch: int = 1) -> list[dict[str, np.ndarray]]:
    return [{"x": np.full((batch, 32), i, dtype=np.float32)} for i in range(n)]


class OrtRunner:
    def __init__(self, model: bytes) -> None:
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])

    def run(self, feeds: Feeds) -> Sequence[np.ndarray]:
        return self.session.run(None, dict(feeds))

    def close(self) -> None:
        del self.session


@pytest.fixture(scope="module")
def tiny_onnx() -> bytes:
    return make_tiny_onnx()


def make_tiny_onnx() -> bytes:
    """relu(x @ W + b) with a 36 MiB weight (above glibc's largest mmap threshold, so loading it must
    map fresh pages rather than reuse memory freed by earlier tests), dynamic batch."""
    rng = np.random.default_rng(1)
    w = numpy_helper.from_array(rng.standard_normal((256, WIDTH)).astype(np.float32), "W")
    b = numpy_helper.from_array(rng.standard_normal((WIDTH,)).astype(np.float32), "B")
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["h"]),
            helper.make_node("Add", ["h", "B"], ["z"]),
            helper.make_node("Relu", ["z"], ["y"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 256])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", WIDTH])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def ort_feeds(batch: int, n: int = 2) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(batch)
    return [{"x": rng.standard_normal((batch, 256)).astype(np.float32)} for _ in range(n)]


# --- measure --------------------------------------------------------------------------------------


def test_stats_are_ordered_and_consistent() -> None:
    runner = NumpyRunner()
    stats = measure(runner, feeds(), warmup=2, runs=50, batch=4)
    assert stats.runs == 50 and stats.batch == 4
    assert 0 < stats.min <= stats.p50 <= stats.p90 <= stats.p99
    assert stats.min <= stats.mean and stats.stdev >= 0
    assert stats.throughput == pytest.approx(4 / stats.mean)
    assert stats.method == "measured:wallclock"


def test_stats_from_known_samples() -> None:
    stats = stats_from_samples([i * 1_000_000 for i in range(1, 101)], batch=2)  # 1..100 ms
    assert stats.min == pytest.approx(0.001) and stats.p50 == pytest.approx(0.0505)
    assert stats.p90 == pytest.approx(0.0901) and stats.p99 == pytest.approx(0.09901)
    assert stats.mean == pytest.approx(0.0505) and stats.throughput == pytest.approx(2 / 0.0505)
    assert stats_from_samples([5_000_000], batch=1).stdev == 0.0


def test_runs_count_is_honoured_and_feeds_cycle() -> None:
    runner = NumpyRunner()
    stats = measure(runner, feeds(3), warmup=4, runs=7, budget_s=0.0)
    assert stats.runs == 7
    assert len(runner.seen) == 4 + 7
    assert runner.seen[4:] == [0, 1, 2, 0, 1, 2, 0]  # timed runs cycle the feeds from the start


def test_budget_is_respected_but_min_runs_kept() -> None:
    runner = SleepRunner(0.005)
    began = time.perf_counter()
    stats = measure(runner, feeds(), warmup=1, budget_s=0.15, min_runs=3)
    elapsed = time.perf_counter() - began
    assert 3 <= stats.runs <= 0.15 / 0.005 + 1
    assert elapsed < 0.15 + 0.005 * 2 + 0.1  # budget + warm-up + the run that crossed it + slack
    tiny = measure(SleepRunner(0.001), feeds(), warmup=0, budget_s=0.0, min_runs=6)
    assert tiny.runs == 6


def test_measure_rejects_bad_arguments() -> None:
    with pytest.raises(DataError):
        measure(NumpyRunner(), [], runs=1)
    with pytest.raises(ValueError):
        measure(NumpyRunner(), feeds(), runs=0)


def test_interleaved_alternates_in_rounds() -> None:
    log: list[str] = []
    runners = {name: NumpyRunner(name, log) for name in "ABC"}
    stats = measure_interleaved(runners, feeds(), warmup=2, rounds=3, runs_per_round=2, budget_s=0.0)
    assert log[:6] == ["A", "A", "B", "B", "C", "C"]  # warm-up, each in turn
    assert log[6:] == ["A", "A", "B", "B", "C", "C", "B", "B", "C", "C", "A", "A", "C", "C", "A", "A", "B", "B"]
    assert set(stats) == {"A", "B", "C"} and all(s.runs == 6 for s in stats.values())


def test_interleaved_ranks_a_slower_candidate_slower_with_own_feeds() -> None:
    runners = {"fast": SleepRunner(0.001), "slow": SleepRunner(0.006)}
    own = {"fast": feeds(2), "slow": feeds(1)}
    stats = measure_interleaved(runners, own, warmup=1, budget_s=0.05, min_rounds=4)
    assert stats["fast"].runs == stats["slow"].runs >= 4
    assert stats["slow"].p50 > stats["fast"].p50 * 2


# --- memory ---------------------------------------------------------------------------------------


def in_fresh_process(case: str) -> dict:
    """Run ``case`` (a function of this module) in a new interpreter and return its JSON result.

    RSS figures are only meaningful against a clean baseline: in the long-lived pytest process,
    memory freed by earlier tests is reused by the allocator and hides new allocations.
    """
    root = Path(__file__).resolve().parents[1]
    code = (
        f"import json, sys; sys.path.insert(0, {str(root)!r}); from tests.test_harness import {case}; "
        f"print(json.dumps({case}()))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=root)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def case_ort_session_memory() -> dict:
    made: list[OrtRunner] = []

    def load() -> Runner:
        made.append(OrtRunner(make_tiny_onnx()))
        return made[-1]

    mem = peak_memory(load, ort_feeds(8))
    return {
        "load": mem.load_bytes,
        "peak": mem.peak_bytes,
        "method": mem.method,
        "closed": not hasattr(made[0], "session"),
    }


def test_peak_memory_of_a_real_onnxruntime_session() -> None:
    mem = in_fresh_process("case_ort_session_memory")
    assert mem["method"].startswith("rss-sampled")
    assert mem["peak"] >= mem["load"] > 30 << 20  # the 36 MiB weight must show
    assert mem["closed"]  # closed afterwards


class Hungry(NumpyRunner):
    def run(self, feeds: Feeds) -> Sequence[np.ndarray]:
        scratch = np.ones(48 << 20, dtype=np.uint8)  # 48 MiB (mmap'd by malloc) touched, then freed
        time.sleep(0.005)
        return [scratch[:1]]


def case_transient_allocation() -> dict:
    mem = peak_memory(Hungry, feeds(), runs=2)
    return {"load": mem.load_bytes, "peak": mem.peak_bytes}


def test_peak_memory_sees_a_transient_allocation() -> None:
    mem = in_fresh_process("case_transient_allocation")
    assert mem["peak"] >= 40 << 20 and mem["load"] < 8 << 20


# --- the full profile -----------------------------------------------------------------------------


def test_profile_of_an_onnxruntime_model_estimates_energy_and_roofline(tiny_onnx: bytes) -> None:
    flops, bytes_moved = 2 * 256 * WIDTH, 4 * (256 * WIDTH + WIDTH)
    profile = profile_runner(
        lambda b: OrtRunner(tiny_onnx),
        ort_feeds,
        batches=(1, 4),
        device=DEVICE,
        runs=10,
        warmup=2,
        size_bytes=len(tiny_onnx),
        flops=flops,
        bytes_moved=bytes_moved,
    )
    assert set(profile.latency_by_batch) == {1, 4} and profile.batch == 1
    assert profile.latency.runs == 10
    assert profile.memory is not None and profile.memory.peak_bytes > 0
    energy = profile.energy_per_inference
    assert energy.method == ESTIMATE_METHOD
    assert energy.joules == pytest.approx(estimate_energy(profile.latency.p50, DEVICE).joules)
    assert profile.roofline_s == pytest.approx(roofline_seconds(flops, bytes_moved, DEVICE, "fp32"))
    data = json.loads(json.dumps(profile.to_dict()))
    assert data["device"] == "x86-avx2-2core" and data["size_bytes"] == len(tiny_onnx)
    assert data["energy"]["method"].startswith("estimated:")
    assert data["roofline"]["method"] == "estimated:roofline"
    assert data["memory"]["method"].startswith("rss-sampled")
    assert all(s["method"] == "measured:wallclock" and s["runs"] == 10 for s in data["latency"].values())


def test_meters_give_measured_energy_per_inference() -> None:
    class FakeMeter:
        name = method = "fake-counter"

        def __init__(self) -> None:
            self.spans: list[float] = []

        def start(self) -> None:
            self._t = time.perf_counter()

        def stop(self) -> EnergyReading:
            self.spans.append(time.perf_counter() - self._t)
            return EnergyReading(joules=6.0, method=self.method)

    meter = FakeMeter()
    profile = profile_runner(
        lambda b: SleepRunner(0.002, b),
        lambda b: feeds(2, b),
        batches=(1, 3),
        device=DEVICE,
        meters=[meter],
        runs=5,
        warmup=1,
        size_bytes=1,
        slo_ms=1000.0,
        measure_memory=False,
    )
    assert profile.batch == 3 and profile.memory is None and profile.roofline_s is None
    assert profile.energy_per_inference == EnergyReading(joules=6.0 / (5 * 3), method="fake-counter")
    assert len(meter.spans) == 2  # read around each batch's timed runs
    assert meter.spans[1] >= 5 * 0.006  # ...which it covered, but not warm-up beyond one run
    assert meter.spans[1] < 7 * 0.006 + 0.05


@pytest.mark.parametrize(("slo_ms", "chosen"), [(60.0, 4), (1.0, 1), (None, 1), (1000.0, 8)])
def test_slo_picks_the_largest_batch_within_it(slo_ms: float | None, chosen: int) -> None:
    profile = profile_runner(
        lambda b: SleepRunner(0.01, b),
        lambda b: feeds(1, b),
        batches=(8, 1, 2, 4),
        device=DEVICE,
        runs=5,
        warmup=1,
        slo_ms=slo_ms,
        size_bytes=10,
        measure_memory=False,
    )
    assert sorted(profile.latency_by_batch) == [1, 2, 4, 8]
    assert profile.batch == chosen and profile.latency.batch == chosen
    assert profile.to_dict()["batch"] == chosen and profile.to_dict()["slo_ms"] == slo_ms


def test_a_batch_the_runner_cannot_do_is_recorded_not_fatal() -> None:
    made: list[SleepRunner] = []

    def make(b: int) -> Runner:
        made.append(SleepRunner(0.001, b, max_batch=2))
        return made[-1]

    profile = profile_runner(
        make,
        lambda b: feeds(1, b),
        batches=(1, 2, 4),
        device=DEVICE,
        runs=3,
        warmup=0,
        size_bytes=1,
        measure_memory=False,
    )
    assert sorted(profile.latency_by_batch) == [1, 2]
    assert "batch 4 > 2" in profile.unsupported_batches[4]
    assert profile.to_dict()["latency"]["4"] == {"error": profile.unsupported_batches[4]}
    assert all(r.closed for r in made)
    with pytest.raises(ValueError):
        profile_runner(
            lambda b: SleepRunner(0.001, b, max_batch=0),
            lambda b: feeds(1, b),
            batches=(1,),
            device=DEVICE,
            runs=1,
            size_bytes=1,
            measure_memory=False,
        )


def test_profile_is_frozen() -> None:
    stats = stats_from_samples([1_000_000], batch=1)
    profile = Profile(
        device="d",
        latency_by_batch={1: stats},
        memory=None,
        size_bytes=1,
        energy_per_inference=EnergyReading(0.0, "x"),
        roofline_s=None,
        batch=1,
    )
    with pytest.raises(AttributeError):
        profile.batch = 2  # type: ignore[misc]


class FallbackRunner(SleepRunner):
    """Made for an accelerator that is absent: runs on this host and says so."""

    on_device = False


@pytest.mark.parametrize(("make", "measured_on"), [
    (lambda b: FallbackRunner(0.001, b), ""),          # the runner says it fell back to the host
    (lambda b: SleepRunner(0.001, b), "this host"),    # the caller knows: a CPU profile of another board
])
def test_a_profile_measured_off_the_device_says_where_and_estimates_energy_for_the_device(make, measured_on) -> None:
    class CountingMeter:
        method, reads = "fake-counter", 0

        def start(self) -> None:
            CountingMeter.reads += 1

        def stop(self) -> EnergyReading:
            return EnergyReading(joules=1.0, method=self.method)

    profile = profile_runner(make, lambda b: feeds(1, b), device=DEVICE, meters=[CountingMeter()], runs=3,
                             warmup=1, size_bytes=1, flops=2e6, bytes_moved=1e5, measure_memory=False,
                             measured_on=measured_on)
    assert profile.measured_on.startswith("this host") and profile.to_dict()["measured_on"] == profile.measured_on
    assert CountingMeter.reads == 0  # a meter here would meter this machine, not the device
    assert profile.energy_per_inference.method == "estimated:device-profile(power x roofline latency on the device)"
    assert profile.energy_per_inference.joules == pytest.approx(estimate_energy(profile.roofline_s, DEVICE).joules)


def test_a_profile_on_the_device_reads_its_meters_and_names_the_device() -> None:
    profile = profile_runner(lambda b: SleepRunner(0.001, b), lambda b: feeds(1, b), device=DEVICE, runs=3,
                             warmup=1, size_bytes=1, measure_memory=False)
    assert profile.measured_on == "" and profile.to_dict()["measured_on"] == DEVICE.name
    assert profile.energy_per_inference.method.startswith("estimated:device-profile(power x latency)")
