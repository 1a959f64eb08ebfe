"""Memory of loading and running a compiled model, measured in a fresh process.

RSS in a long-lived process is a poor baseline: memory freed by earlier work is reused by the
allocator and hides new allocations. The job is a picklable ``load`` callable and plain feeds, so a
spawned interpreter can rebuild the runner (``edgeopt.plugin.load_runner`` does it through the same
installed plugins) and measure it against a clean baseline.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import replace

from edgeopt.measure.harness import MemoryStats, peak_memory
from edgeopt.types import Feeds, Runner

FRESH_PROCESS = "fresh-process"

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
