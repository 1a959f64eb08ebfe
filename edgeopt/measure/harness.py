"""The one timing harness every target uses: latency, interleaved comparison, memory, full profile.

Plugins only provide a ``Runner``; every number here is timed by the core with
``time.perf_counter_ns`` after warm-up runs, with the garbage collector paused during timed runs
(as ``timeit`` does). Candidates are compared with :func:`measure_interleaved`, which alternates
them round by round so drift (thermal, frequency, noisy neighbours) hits all of them alike.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeopt.measure.devices import roofline_seconds
from edgeopt.measure.energy import estimate_energy, metered
from edgeopt.measure.host import host_state
from edgeopt.measure.memory import MemoryStats, peak_memory, require_feeds
from edgeopt.types import DeviceProfile, EnergyMeter, EnergyReading, Feeds, LatencyStats, Runner

ROOFLINE_METHOD = "estimated:roofline"


SIZE_METHOD = "file-size"


@dataclass(frozen=True)
class Profile:
    """Everything measured (or estimated, and labelled so) about one compiled model on one device."""

    device: str
    latency_by_batch: Mapping[int, LatencyStats]
    memory: MemoryStats | None
    size_bytes: int
    energy_per_inference: EnergyReading
    """Joules per sample at the chosen batch; measured by meters or estimated (see its method)."""
    roofline_s: float | None
    """Lower bound for one batch-1 inference from the device profile; None without ``flops``."""
    batch: int
    """Chosen batch: the largest whose p90 meets ``slo_ms``, else the smallest measured."""
    slo_ms: float | None = None
    precision: str = "fp32"
    roofline_method: str = ROOFLINE_METHOD
    unsupported_batches: Mapping[int, str] = field(default_factory=dict)
    """Batches the runner could not run, with the error, e.g. a model with a fixed batch dimension."""
    measured_on: str = ""
    """Where latency and memory were measured when that is not ``device`` (e.g. ``this host``: a CPU profile
    of another board, or a runner with ``on_device = False``); "" when measured on ``device`` itself."""
    host_state: Mapping[str, Any] = field(default_factory=dict)
    """The measuring host's load average and CPU frequency governor when timing began
    (``edgeopt.measure.host.host_state``): figures from a busy or power-saving host read slower."""

    @property
    def latency(self) -> LatencyStats:
        """Latency at the chosen batch."""
        return self.latency_by_batch[self.batch]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form; every figure sits next to its method."""
        latency: dict[str, dict[str, Any]] = {str(b): _stats_dict(s) for b, s in self.latency_by_batch.items()}
        latency.update({str(b): {"error": e} for b, e in sorted(self.unsupported_batches.items())})
        return {
            "device": self.device,
            "measured_on": self.measured_on or self.device,
            "precision": self.precision,
            "batch": self.batch,
            "slo_ms": self.slo_ms,
            "latency": dict(sorted(latency.items(), key=lambda kv: int(kv[0]))),
            "memory": None if self.memory is None else {
                "load_bytes": self.memory.load_bytes,
                "peak_bytes": self.memory.peak_bytes,
                "method": self.memory.method,
            },
            "size_bytes": self.size_bytes,
            "size_method": SIZE_METHOD,
            "energy": {
                "joules_per_inference": self.energy_per_inference.joules,
                "method": self.energy_per_inference.method,
            },
            "roofline": {"seconds": self.roofline_s, "method": self.roofline_method, "precision": self.precision},
            "host_state": dict(self.host_state),
        }


def _stats_dict(s: LatencyStats) -> dict[str, Any]:
    return {
        "runs": s.runs, "batch": s.batch, "min": s.min, "p50": s.p50, "p90": s.p90, "p99": s.p99,
        "mean": s.mean, "stdev": s.stdev, "throughput": s.throughput, "method": s.method,
    }


@contextmanager
def _gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def stats_from_samples(samples_ns: Sequence[int], *, batch: int) -> LatencyStats:
    """Summary of per-run wall-clock times (nanoseconds) as seconds; throughput is samples/s."""
    if not samples_ns:
        raise ValueError("no timed runs")
    t = np.asarray(samples_ns, dtype=np.float64) / 1e9
    p50, p90, p99 = np.percentile(t, [50, 90, 99])
    mean = float(t.mean())
    return LatencyStats(
        runs=len(t),
        batch=batch,
        min=float(t.min()),
        p50=float(p50),
        p90=float(p90),
        p99=float(p99),
        mean=mean,
        stdev=float(t.std(ddof=1)) if len(t) > 1 else 0.0,
        throughput=batch / mean if mean > 0 else float("inf"),
        samples=tuple(t.tolist()),
    )


def measure(
    runner: Runner,
    feeds: Sequence[Feeds],
    *,
    warmup: int = 5,
    runs: int | None = None,
    budget_s: float = 2.0,
    min_runs: int = 10,
    batch: int = 1,
) -> LatencyStats:
    """Time ``runner.run`` over ``feeds`` (cycled): ``warmup`` untimed runs, then timed runs.

    Timed runs stop after exactly ``runs`` when it is given (the budget is then ignored); otherwise
    once ``budget_s`` of timed runs has elapsed and at least ``min_runs`` were done. Warm-up runs do
    not count against the budget.
    """
    require_feeds(feeds)
    if warmup < 0 or (runs is not None and runs < 1) or min_runs < 1 or batch < 1:
        raise ValueError(f"need warmup >= 0, runs >= 1, min_runs >= 1, batch >= 1 (got {warmup}, {runs}, "
                         f"{min_runs}, {batch})")
    n = len(feeds)
    for i in range(warmup):
        runner.run(feeds[i % n])
    budget_ns = int(budget_s * 1e9)
    samples: list[int] = []
    clock = time.perf_counter_ns
    with _gc_paused():
        began = clock()
        while True:
            count = len(samples)
            if runs is not None:
                if count >= runs:
                    break
            elif count >= min_runs and clock() - began >= budget_ns:
                break
            feed = feeds[count % n]
            t0 = clock()
            runner.run(feed)
            samples.append(clock() - t0)
    return stats_from_samples(samples, batch=batch)


def measure_interleaved(
    runners: Mapping[str, Runner],
    feeds: Sequence[Feeds] | Mapping[str, Sequence[Feeds]],
    *,
    warmup: int = 5,
    rounds: int | None = None,
    runs_per_round: int = 1,
    budget_s: float = 2.0,
    min_rounds: int = 5,
    batch: int = 1,
    settle_runs: int = 0,
) -> dict[str, LatencyStats]:
    """Compare runners fairly: warm each up, then time them in rounds, never concurrently.

    The order rotates every round (A,B,C then B,C,A then C,A,B...): a runtime whose threads linger
    after its turn slows whoever comes next, so no runner may always follow the same one.
    ``feeds`` is shared, or a mapping from runner name to its own feeds. Each round times
    ``runs_per_round`` consecutive runs of each runner. Rounds stop after ``rounds`` when given, else
    when ``budget_s`` (all runners together) has elapsed and at least ``min_rounds`` were done.
    ``settle_runs`` untimed runs open each runner's turn: when runners of different runtimes alternate, the
    previous runtime's spinning thread pool goes idle and this one's wakes up before its runs are timed.
    """
    if not runners:
        return {}
    if (rounds is not None and rounds < 1) or runs_per_round < 1 or min_rounds < 1 or warmup < 0:
        raise ValueError("need rounds >= 1, runs_per_round >= 1, min_rounds >= 1, warmup >= 0")
    per: dict[str, Sequence[Feeds]] = (
        {name: feeds[name] for name in runners} if isinstance(feeds, Mapping) else dict.fromkeys(runners, feeds)
    )
    for name in runners:
        require_feeds(per[name])
        for i in range(warmup):
            runners[name].run(per[name][i % len(per[name])])
    samples: dict[str, list[int]] = {name: [] for name in runners}
    order = list(runners)
    budget_ns = int(budget_s * 1e9)
    clock = time.perf_counter_ns
    done = 0
    with _gc_paused():
        began = clock()
        while True:
            if rounds is not None and done >= rounds:
                break
            if rounds is None and done >= min_rounds and clock() - began >= budget_ns:
                break
            shift = done % len(order)
            for name in order[shift:] + order[:shift]:
                runner, own, times = runners[name], per[name], samples[name]
                for i in range(settle_runs):
                    runner.run(own[i % len(own)])
                for _ in range(runs_per_round):
                    feed = own[len(times) % len(own)]
                    t0 = clock()
                    runner.run(feed)
                    times.append(clock() - t0)
            done += 1
    return {name: stats_from_samples(times, batch=batch) for name, times in samples.items()}


def _choose_batch(stats: Mapping[int, LatencyStats], slo_ms: float | None) -> int:
    smallest = min(stats)
    if slo_ms is None:
        return smallest
    meeting = [b for b, s in stats.items() if s.p90 * 1e3 <= slo_ms]
    return max(meeting) if meeting else smallest


def profile_runner(
    make_runner: Callable[[int], Runner],
    feeds_for_batch: Callable[[int], Sequence[Feeds]],
    *,
    batches: Sequence[int] = (1,),
    device: DeviceProfile,
    meters: Sequence[EnergyMeter] = (),
    runs: int | None = None,
    budget_s: float = 2.0,
    warmup: int = 5,
    slo_ms: float | None = None,
    size_bytes: int,
    flops: float | None = None,
    bytes_moved: float | None = None,
    precision: str = "fp32",
    measure_memory: bool = True,
    measured_on: str = "",
    not_batchable: str = "",
) -> Profile:
    """Profile one model: latency per batch, memory at the smallest batch, energy, roofline.

    ``make_runner(b)`` loads a runner for batch ``b`` and ``feeds_for_batch(b)`` gives its inputs.
    The smallest batch must work; a larger batch whose runner fails to load or to warm up (at least
    one run) is recorded in ``unsupported_batches``. Energy is measured by ``meters`` around the
    timed runs of the chosen batch and divided by samples; without meters it is estimated from the
    device profile at p50 latency per sample. ``flops`` and ``bytes_moved`` are per batch-1 inference.

    ``measured_on`` names where the runners run when that is not ``device`` (a runner can also say so with
    ``on_device = False``, see ``edgeopt.types.Runner``): meters are then not read (they would meter this
    machine) and energy is estimated from the device profile's power at its roofline latency.

    ``not_batchable`` (why, e.g. ``stateful input 'state'``; see ``edgeopt.types.Dataset.not_batchable``): the
    model is timed per call at batch 1 only, and every other batch asked for is recorded in
    ``unsupported_batches`` as ``not batchable: <why>`` without loading a runner for it.
    """
    wanted = sorted(set(batches))
    if not wanted or wanted[0] < 1:
        raise ValueError(f"batches must be positive integers, got {list(batches)}")
    unsupported: dict[int, str] = {}
    if not_batchable:
        unsupported = {b: f"not batchable: {not_batchable}" for b in wanted if b != 1}
        wanted = [1]
    memory = peak_memory(lambda: make_runner(wanted[0]), feeds_for_batch(wanted[0])) if measure_memory else None
    state = host_state()  # before the timed runs: the load they add is not the host's

    latency: dict[int, LatencyStats] = {}
    energy_by_batch: dict[int, EnergyReading] = {}
    for b in wanted:
        runner = None
        try:
            try:  # loading and the warm-up runs show whether the runner can do this batch at all
                runner = make_runner(b)
                if getattr(runner, "on_device", True) is False and not measured_on:
                    measured_on = f"this host (not {device.name}: the runner fell back to it)"
                feeds = feeds_for_batch(b)
                for i in range(max(warmup, 1)):
                    runner.run(feeds[i % len(feeds)])
            except Exception as exc:
                if b == wanted[0]:
                    raise
                unsupported[b] = f"{type(exc).__name__}: {exc}"
                continue
            with metered(() if measured_on else meters) as reading:
                stats = measure(runner, feeds, warmup=0, runs=runs, budget_s=budget_s, batch=b)
        finally:
            if runner is not None:
                runner.close()
        latency[b] = stats
        if reading.readings:
            energy_by_batch[b] = EnergyReading(joules=reading.joules / (stats.runs * b), method=reading.method)

    chosen = _choose_batch(latency, slo_ms)
    stats = latency[chosen]
    roofline = None
    if flops is not None:
        roofline = roofline_seconds(float(flops), float(bytes_moved or 0.0), device, precision)
    energy = energy_by_batch.get(chosen) or estimate_energy(stats.p50 / chosen, device)
    if measured_on and chosen not in energy_by_batch:
        if roofline is not None:
            energy = EnergyReading(estimate_energy(roofline, device).joules,
                                   method="estimated:device-profile(power x roofline latency on the device)")
        else:
            energy = EnergyReading(energy.joules, method=f"estimated:device-profile(power x latency on {measured_on})")
    return Profile(
        device=device.name,
        latency_by_batch=latency,
        memory=memory,
        size_bytes=int(size_bytes),
        energy_per_inference=energy,
        roofline_s=roofline,
        batch=chosen,
        slo_ms=slo_ms,
        precision=precision,
        unsupported_batches=unsupported,
        measured_on=measured_on,
        host_state=state,
    )
