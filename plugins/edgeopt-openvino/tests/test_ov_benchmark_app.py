"""edgeopt's harness and OpenVINO's benchmark_app agree on the same IR at batch 1 (same threads, hint, shapes)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from ov_models import conv_net, samples_for, slow_conv_net

from edgeopt_openvino.benchmark_app import CrossCheck, benchmark_app_command, cross_check, parse_report
from edgeopt_openvino.compile import compile_plan
from edgeopt_openvino.devices import target_spec
from edgeopt_openvino.plan import plan_candidates

CPU = target_spec("openvino")
REPORT = """[ INFO ] Count:            42893 iterations
[ INFO ] Duration:         3000.08 ms
[ INFO ] Latency:
[ INFO ]    Median:        48.24 us
[ INFO ]    Average:       52.09 us
[ INFO ]    Min:           30.61 us
[ INFO ]    Max:           5.67 ms
"""


def test_parse_report_reads_each_unit() -> None:
    stats = parse_report(REPORT)
    assert stats == pytest.approx({"median": 48.24e-6, "average": 52.09e-6, "min": 30.61e-6, "max": 5.67e-3,
                                   "iterations": 42893, "duration": 3.00008})


def test_benchmark_app_ships_with_the_openvino_wheel() -> None:
    command = benchmark_app_command()
    assert command[0].endswith("benchmark_app") or command[-1] == "openvino.tools.benchmark.main"


def _skip_when_busy() -> None:
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    if load > cpus:
        # With more runnable threads than CPUs, the wall clock around infer() also counts the wait for the
        # calling thread to be scheduled again (measured here: ~1 ms, 10-15% of this model) while
        # benchmark_app's per-request latency does not; the comparison then measures the neighbours.
        pytest.skip(f"load average {load:.1f} on {cpus} CPUs: too busy for a 10% timing comparison")


def test_wall_ratio_pairs_rounds() -> None:
    """Each round's harness mean is divided by the same round's benchmark_app wall clock; the median is kept."""
    check = CrossCheck((1.0,) * 3, (1.0,) * 3, {},
                       harness_mean=(2e-4, 3e-4, 9e-4), benchmark_app_wall=(1e-4, 3e-4, 8e-4))
    assert check.wall_ratio == pytest.approx(1.125)


@pytest.mark.slow  # ~15 s, and a timing comparison: run it on a quiet machine (-m slow)
def test_tiny_model_agrees_with_benchmark_app_wall_clock(tmp_path: Path, avx2) -> None:
    """On a ~50 µs model the per-call Python cost is most of the time: harness and benchmark_app's own wall clock
    per sync iteration (Duration / Count) agree, while its in-request latency is far below both."""
    _skip_when_busy()
    graph = conv_net(tmp_path / "graph" / "tiny.onnx")
    (plan,) = plan_candidates(graph, CPU, avx2, "fp32")
    compiled = compile_plan(graph, plan, CPU, samples_for(graph), tmp_path / "ir")
    check = cross_check(compiled.model_path, samples_for(graph, n=4).batches(1), threads=2, seconds=1.0, rounds=5)
    assert 0.9 <= check.wall_ratio <= 1.1, (
        f"harness mean {check.harness_mean} vs benchmark_app Duration/Count {check.benchmark_app_wall}"
    )


@pytest.mark.slow  # ~15 s, and a timing comparison: run it on a quiet machine (-m slow)
def test_harness_and_benchmark_app_agree_within_10_percent(tmp_path: Path, avx2) -> None:
    _skip_when_busy()
    # ~5 ms per run, so the fixed cost of a Python call (tens of µs, which benchmark_app leaves out) is noise
    graph = slow_conv_net(tmp_path / "graph" / "slow.onnx", layers=6, channels=48)
    (plan,) = plan_candidates(graph, CPU, avx2, "fp32")
    compiled = compile_plan(graph, plan, CPU, samples_for(graph), tmp_path / "ir")
    check = cross_check(compiled.model_path, samples_for(graph, n=4).batches(1), threads=2, seconds=1.0, rounds=5)
    assert check.config["PERFORMANCE_HINT"] == "LATENCY" and check.config["INFERENCE_NUM_THREADS"] == "2"
    assert 0.9 <= check.wall_ratio <= 1.1, f"wall clock: {check.harness_mean} vs {check.benchmark_app_wall}"
    assert 0.9 <= check.ratio <= 1.1, (
        f"harness p50 {check.harness * 1e3:.3f} ms vs benchmark_app median {check.benchmark_app * 1e3:.3f} ms "
        f"(rounds: {check.harness_p50}, {check.benchmark_app_median}; fastest runs ratio {check.min_ratio:.3f})"
    )
