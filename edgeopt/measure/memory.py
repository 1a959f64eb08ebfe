"""Memory of loading and running a compiled model: sampled in this process (``peak_memory``), or measured in a
fresh process (``measure_memory``).

RSS in a long-lived process is a poor baseline: memory freed by earlier work is reused by the
allocator and hides new allocations. The job is a picklable ``load`` callable and plain feeds, so a
spawned interpreter can rebuild the runner (``edgeopt.plugin.load_runner`` does it through the same
installed plugins) and measure it against a clean baseline.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import resource
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from edgeopt.errors import DataError
from edgeopt.types import Feeds, Runner

FRESH_PROCESS = "fresh-process"


def require_feeds(feeds: Sequence[Feeds]) -> None:
    """``DataError`` when there is no batch of inputs to run the model with."""
    if len(feeds) == 0:
        raise DataError("no feeds to time the model with", hint="give at least one batch of inputs")


@dataclass(frozen=True)
class MemoryStats:
    """Resident memory a model costs: after loading, and at the peak while running (bytes over the
    RSS before loading)."""

    load_bytes: int
    peak_bytes: int
    method: str


def _maxrss_bytes() -> int:
    """Process high-water RSS from getrusage (KiB on Linux, bytes on macOS)."""
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value if sys.platform == "darwin" else value * 1024)


class _RssSampler(threading.Thread):
    """Samples this process's RSS every ``interval_s`` until stopped; keeps the maximum."""

    def __init__(self, interval_s: float = 0.001) -> None:
        super().__init__(name="edgeopt-rss-sampler", daemon=True)
        import psutil

        self._process = psutil.Process(os.getpid())
        self._interval = interval_s
        self._stop_event = threading.Event()
        self.peak = self._process.memory_info().rss

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self._stop_event.wait(self._interval)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, self._process.memory_info().rss)
        return self.peak


def peak_memory(load: Callable[[], Runner], feeds: Sequence[Feeds], *, runs: int = 3) -> MemoryStats:
    """Memory of loading a runner with ``load()`` and running it ``runs`` times on ``feeds``.

    ``load_bytes`` = RSS after loading minus RSS before; ``peak_bytes`` = highest RSS seen while
    loading and running (psutil sampled every ~1 ms, raised to getrusage's high-water mark when that
    grew during the window) minus RSS before. The runner is closed afterwards. Memory freed by earlier
    work and reused by the allocator is not counted, so these are lower bounds.
    """
    import psutil

    require_feeds(feeds)
    process = psutil.Process(os.getpid())
    gc.collect()
    maxrss_before = _maxrss_bytes()
    before = process.memory_info().rss
    sampler = _RssSampler()
    sampler.start()
    runner = None
    try:
        runner = load()
        after_load = process.memory_info().rss
        for i in range(runs):
            runner.run(feeds[i % len(feeds)])
    finally:
        peak = sampler.stop()
        if runner is not None:
            runner.close()
    method = "rss-sampled"
    maxrss_after = _maxrss_bytes()
    if maxrss_after > maxrss_before and maxrss_after > peak:
        peak, method = maxrss_after, "rss-sampled+ru_maxrss"
    peak = max(peak, after_load)  # RSS can drop between the reading after load and the sampler's next tick
    return MemoryStats(load_bytes=max(0, after_load - before), peak_bytes=max(0, peak - before), method=method)


_ALLOCATOR_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
"""glibc: a fixed mmap threshold and eager trimming return freed memory to the OS, so RSS in the
child shows what the measured load allocates instead of reusing what the warm-up load freed."""


def _measure_here(load: Callable[[], Runner], feeds: Sequence[Feeds]) -> MemoryStats:
    warm = load()  # runtime libraries are loaded and initialised before the measured window
    warm.run(feeds[0])
    warm.close()
    gc.collect()
    stats = peak_memory(load, feeds)
    return replace(stats, method=f"{stats.method}:{FRESH_PROCESS}")


def measure_memory(load: Callable[[], Runner], feeds: Sequence[Feeds], *, timeout_s: float = 300.0) -> MemoryStats:
    """Call ``load`` (picklable, e.g. a ``functools.partial`` of a module-level function) in a spawned
    interpreter, once to warm the runtime up and once measured, and measure RSS there while it runs ``feeds``.

    Raises whatever the child raised (EdgeoptErrors pickle across), or ``TimeoutError``.
    """
    context = multiprocessing.get_context("spawn")
    saved = {k: os.environ.get(k) for k in _ALLOCATOR_ENV}
    os.environ.update(_ALLOCATOR_ENV)  # the spawned child inherits them; restored right after it starts
    try:
        pool = context.Pool(1)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    with pool:
        job = pool.apply_async(_measure_here, (load, list(feeds)))
        return job.get(timeout_s)
