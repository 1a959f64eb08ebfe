"""How much memory a candidate build may use, and how a process tree's memory is read.

A build (``edgeopt.search.build_worker``) runs in a worker process whose tree is watched against a limit in bytes:
``--max-memory`` / ``DeployRequest.max_memory`` when given, else ``DEFAULT_SHARE`` of the memory available
when the search starts (``psutil.virtual_memory().available``), never less than ``MIN_DEFAULT_BYTES`` nor
more than what is available less ``HEADROOM_BYTES`` for the deploy process itself.
"""

from __future__ import annotations

import contextlib
import math
import time

from edgeopt.errors import EdgeoptError, InputSpecError

DEFAULT_SHARE = 0.6
"""Share of the available memory a build may use when no limit is given."""
MIN_DEFAULT_BYTES = 512 << 20
"""The default never goes below this (a worker with ONNX Runtime loaded needs ~150 MiB before any work)."""
HEADROOM_BYTES = 1 << 30
"""The default leaves at least this much of the available memory to the deploy process and the system."""


def fmt_bytes(n: float) -> str:
    """``1.5 GiB``, ``300 MiB``: binary units, as ``--max-memory`` reads them."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{int(n)} B"


def default_memory_limit() -> int:
    """``DEFAULT_SHARE`` of the available memory now, within the bounds the module states."""
    import psutil

    available = psutil.virtual_memory().available
    share = int(available * DEFAULT_SHARE)
    return max(MIN_DEFAULT_BYTES, min(share, available - HEADROOM_BYTES))


def memory_limit_bytes(value: int | str | None) -> int:
    """The build memory limit for ``--max-memory``/``max_memory``: bytes as an int, a size such as ``2GiB``,
    ``1500MB``, ``512M`` (M/G/MiB/GiB binary, MB/GB decimal), or None for ``default_memory_limit()``.

    Raises ``InputSpecError`` for anything else, or for a limit under 1 MiB."""
    if value is None:
        return default_memory_limit()
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InputSpecError(f"--max-memory must be a size such as 2GiB, got {value!r}",
                             hint="give bytes, or a size like 2GiB / 1500MB")
    if isinstance(value, str):
        from edgeopt.settings import parse_size

        try:
            value = parse_size(value, name="--max-memory")
        except EdgeoptError as exc:
            raise InputSpecError(exc.message, hint="give a size like 2GiB, 1500MB or 512M") from None
    if value < 1 << 20:
        raise InputSpecError(f"--max-memory {value} bytes is below 1 MiB; no build fits in that",
                             hint="give a size like 2GiB or 1500MB")
    return int(value)


def tree_rss(pid: int) -> int:
    """Resident bytes of process ``pid`` and all its descendants (0 when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


class TreeMemory:
    """Resident bytes of a process tree, cheap enough to read every few milliseconds: each read sums the RSS of
    the root and of the descendants last listed; listing descendants (a scan of every process on the host,
    ~10 ms) is redone at most every ``relist_s`` seconds."""

    def __init__(self, pid: int, *, relist_s: float = 0.5) -> None:
        import psutil

        self._root = psutil.Process(pid)
        self._relist_s = relist_s
        self._children: list = []
        self._listed = -math.inf

    def rss(self) -> int:
        import psutil

        now = time.monotonic()
        if now - self._listed >= self._relist_s:
            with contextlib.suppress(psutil.Error):
                self._children = self._root.children(recursive=True)
            self._listed = now
        total = 0
        for proc in (self._root, *self._children):
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total


def kill_descendants(pid: int) -> None:
    """SIGKILL every descendant of ``pid`` (the caller kills and reaps ``pid`` itself)."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return
    for child in children:
        with contextlib.suppress(psutil.Error):
            child.kill()


def backstop_bytes(limit: int) -> int:
    """The ``RLIMIT_DATA`` a worker watched at ``limit`` sets on itself: twice the limit plus 1 GiB. Address
    space counts more than resident memory (reserved, untouched allocations), so the backstop sits well above
    the watched limit and only stops an allocation burst faster than the watch's poll."""
    return 2 * limit + (1 << 30)
