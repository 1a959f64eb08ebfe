"""Run calls that native code may crash (ONNX checker, ONNX Runtime) in a child process.

A malformed model can make C++ code segfault or abort, which takes the whole process down with it.
``IsolatedWorker`` keeps one child (``python -m edgeopt.process.worker_main``, over ``edgeopt.process.wire``)
that runs functions named
``"package.module:qualname"``; a child killed by a signal becomes a ``ModelError`` here and the next call
starts a fresh child. ``run_isolated`` is the one-call form. Arguments and results cross as pickles
between this process and the child it started, over its stdin/stdout pipes (never from a file), arrays out of
band without extra copies (``edgeopt.process.wire``).

``EDGEOPT_ISOLATION=0`` runs the calls in this process instead (for debuggers; a crash is then fatal, and
no memory limit applies). ``EDGEOPT_ISOLATION_TIMEOUT_S`` sets the default time limit per call (seconds).

A worker made with ``memory_limit`` (bytes) is watched while a call runs: the resident memory of its whole
process tree (the child and every process it started, e.g. a vendor compiler) is read every
``MEMORY_POLL_S`` seconds, and a tree past the limit is killed, the call raising ``WorkerMemoryExceeded``.
Allocations faster than the poll are caught by a backstop: the child sets ``RLIMIT_DATA`` (heap and private
mappings) of itself to ``memory_limit.backstop_bytes(limit)``, well above the limit, so an allocation burst
fails there (a ``MemoryError``, also reported as ``WorkerMemoryExceeded``, or a crash) instead of taking the
host down.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from edgeopt import settings
from edgeopt.errors import CompileError, EdgeoptError, ModelError
from edgeopt.process.memory_limit import TreeMemory, backstop_bytes, fmt_bytes, kill_descendants
from edgeopt.process.wire import DATA_LIMIT_ENV, FrameReader, frame, rebuild_error, resolve, unframe

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "IsolatedWorker",
    "WorkerCrashed",
    "WorkerMemoryExceeded",
    "WorkerTimeout",
    "isolation_enabled",
    "resolve",
    "run_isolated",
]


DEFAULT_TIMEOUT_S = 600.0
"""Time limit of one call when neither the caller nor ``EDGEOPT_ISOLATION_TIMEOUT_S`` sets one."""


MEMORY_POLL_S = 0.05
"""Seconds between two reads of a memory-limited worker's resident memory."""




_CRASH_HINT = (
    "the file is malformed in a way that crashes native code; edgeopt stopped it in a child process. "
    "Re-export the model from its source framework"
)


def isolation_enabled() -> bool:
    """False when ``EDGEOPT_ISOLATION`` is ``0``/``off``/``false``/``no``: calls then run in this process."""
    return settings.flag("EDGEOPT_ISOLATION", default=True)


def default_timeout_s() -> float:
    """``EDGEOPT_ISOLATION_TIMEOUT_S`` when set to a positive number, else ``DEFAULT_TIMEOUT_S`` (also for ``0``
    and for a value that is not a number of seconds: ``edgeopt plugins doctor`` reports that one)."""
    try:
        value = settings.seconds("EDGEOPT_ISOLATION_TIMEOUT_S", DEFAULT_TIMEOUT_S)
    except EdgeoptError:
        value = None
    return value or DEFAULT_TIMEOUT_S


class _OverLimit(Exception):
    """Raised by the memory watch inside ``_exchange``."""


class WorkerCrashed(ModelError):
    """The worker died during a call (killed by a signal, or exited without a reply); ``detail`` says how."""

    def __init__(self, message: str, *, hint: str | None = None, detail: str = "") -> None:
        super().__init__(message, hint=hint)
        self.detail = detail


class WorkerTimeout(ModelError):
    """A call did not finish within its time limit; the worker was stopped."""


class WorkerMemoryExceeded(CompileError):
    """The worker's process tree grew past its memory limit during a call; it was stopped.

    ``limit`` and ``peak`` are bytes (``peak``: the largest resident size seen, at or past the limit)."""

    def __init__(self, message: str, *, limit: int, peak: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.limit = limit
        self.peak = peak


def run_isolated(
    fn_qualname: str, *args: Any, timeout_s: float | None = None, what: str = "the ONNX checker/runtime"
) -> Any:
    """Call ``fn_qualname(*args)`` in a fresh child process and return its result.

    Exceptions the function raises are raised here (EdgeoptErrors keep their class, message and hint).
    A child killed by a signal raises ``WorkerCrashed`` (a ``ModelError``: "the model crashed <what> (signal N:
    NAME)"); one still running after ``timeout_s`` is killed and raises ``WorkerTimeout`` (a ``ModelError`` too).
    """
    with IsolatedWorker() as worker:
        return worker.call(fn_qualname, *args, timeout_s=timeout_s, what=what)


class IsolatedWorker:
    """One child process serving calls one at a time; restarted after it dies. Use as a context manager.

    ``preload`` modules are imported by the child while it has nothing else to do, so their import
    time overlaps with the caller's own work. ``memory_limit`` (bytes; None: unwatched) bounds the resident
    memory of the child's process tree during a call (see the module). Counters: ``starts`` (children
    started), ``crashes`` (children that died during a call), ``timeouts`` (calls stopped for taking too
    long), ``memory_kills`` (calls stopped past the memory limit); ``last_peak``: the largest tree RSS seen
    during the last watched call (bytes).
    """

    def __init__(self, *, preload: Sequence[str] = (), memory_limit: int | None = None) -> None:
        self.preload = tuple(preload)
        self.memory_limit = memory_limit
        self.starts = 0
        self.crashes = 0
        self.timeouts = 0
        self.memory_kills = 0
        self.last_peak = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._tree: TreeMemory | None = None
        self._tree_pid = 0

    # ------------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the child now (it also starts on the first call); no-op when it runs or isolation is off."""
        if self._proc is not None or not isolation_enabled():
            return
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        env = dict(os.environ)
        paths = [p for p in sys.path if p] + [env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(paths).rstrip(os.pathsep)
        env.pop(DATA_LIMIT_ENV, None)
        if self.memory_limit is not None:
            env[DATA_LIMIT_ENV] = str(backstop_bytes(self.memory_limit))
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            # -P: the current directory (often the downloaded model's) is not put on the child's sys.path,
            # so an onnx.py planted next to a model is never imported
            [sys.executable, "-P", "-m", "edgeopt.process.worker_main", ",".join(self.preload)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=env,
            close_fds=True,
        )
        self.starts += 1

    @property
    def pid(self) -> int | None:
        """The running child's process id, None when none runs."""
        return self._proc.pid if self._proc is not None else None

    def close(self) -> None:
        """Stop the child (and anything it started). Between calls it holds nothing worth a clean exit, so it
        is simply killed."""
        self._discard()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> IsolatedWorker:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    # ------------------------------------------------------------------------------------------ calls

    def call(
        self, fn_qualname: str, *args: Any, timeout_s: float | None = None, what: str = "the ONNX checker/runtime"
    ) -> Any:
        """Run ``fn_qualname(*args)`` in the child; see ``run_isolated`` for results and errors."""
        if not isolation_enabled():
            return resolve(fn_qualname)(*args)
        timeout = default_timeout_s() if timeout_s is None else timeout_s
        self.start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        request = frame((fn_qualname, args))
        stderr_mark = self._stderr.seek(0, os.SEEK_END) if self._stderr is not None else 0
        self.last_peak = 0
        watch = self._watch if self.memory_limit is not None else None
        try:
            reply = _exchange(proc, request, deadline=time.monotonic() + timeout, watch=watch)
        except TimeoutError:
            self.timeouts += 1
            self._discard()
            raise WorkerTimeout(
                f"{what} did not finish within {timeout:g} s; stopped it",
                hint="the model may be malformed or far too large; "
                "raise EDGEOPT_ISOLATION_TIMEOUT_S if it is just big",
            ) from None
        except _OverLimit:
            self.memory_kills += 1
            self._discard()
            raise self._over_limit(what) from None
        if reply is None:
            status = self._reap()
            self.crashes += 1
            detail = f"{_describe(status)}{self._stderr_tail(stderr_mark)}"
            raise WorkerCrashed(f"the model crashed {what} ({detail})", hint=_CRASH_HINT, detail=detail)
        del request
        kind, payload = unframe(reply)
        if kind == "ok":
            return payload
        exc = rebuild_error(payload)
        if isinstance(exc, MemoryError) and self.memory_limit is not None:  # the RLIMIT_DATA backstop
            self.memory_kills += 1
            self._discard()
            raise self._over_limit(what) from exc
        raise exc

    def _over_limit(self, what: str) -> WorkerMemoryExceeded:
        limit = self.memory_limit or 0
        seen = f"stopped at {fmt_bytes(self.last_peak)}" if self.last_peak > limit else "an allocation failed"
        return WorkerMemoryExceeded(f"{what} needed more than {fmt_bytes(limit)} of memory ({seen})",
                                    limit=limit, peak=self.last_peak)

    def _watch(self) -> None:
        """Raise ``_OverLimit`` when the child's tree is past ``memory_limit`` (records ``last_peak``)."""
        assert self._proc is not None and self.memory_limit is not None
        if self._tree is None or self._tree_pid != self._proc.pid:
            self._tree, self._tree_pid = TreeMemory(self._proc.pid), self._proc.pid
        rss = self._tree.rss()
        self.last_peak = max(self.last_peak, rss)
        if rss > self.memory_limit:
            raise _OverLimit

    def _discard(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            kill_descendants(proc.pid)
            stop_child(proc)

    def _reap(self) -> int:
        """Wait for a child whose pipe closed; return its exit status (negative: killed by that signal)."""
        proc = self._proc
        assert proc is not None
        try:
            status = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # closed its pipe yet lives on: not usable any more
            status = -signal.SIGKILL
        self._discard()
        return status

    def _stderr_tail(self, mark: int) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(mark)
        lines = [x.strip() for x in self._stderr.read()[-4096:].decode("utf-8", "replace").splitlines() if x.strip()]
        return f": {lines[-1][:200]}" if lines else ""


def stop_child(proc: subprocess.Popen) -> None:
    """Kill a worker child, reap it, and close the pipes this process holds to it (never raises OSError)."""
    proc.kill()
    proc.wait()
    for stream in (proc.stdin, proc.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _describe(status: int) -> str:
    if status < 0:
        try:
            name = signal.Signals(-status).name
        except ValueError:
            return f"signal {-status}"
        return f"signal {-status}: {name}"
    return f"exit status {status}"


def _exchange(
    proc: subprocess.Popen[bytes], request: list[memoryview], *, deadline: float,
    watch: Callable[[], None] | None = None,
) -> tuple[bytearray, list[bytearray]] | None:
    """Write the ``request`` frame to the child and read one reply frame; None when the child closed its pipes.
    ``watch`` runs at least every ``MEMORY_POLL_S`` seconds while waiting (it raises to stop the exchange)."""
    out_fd, in_fd = proc.stdout.fileno(), proc.stdin.fileno()  # type: ignore[union-attr]
    os.set_blocking(in_fd, False)
    sel = selectors.DefaultSelector()
    sel.register(out_fd, selectors.EVENT_READ)
    sel.register(in_fd, selectors.EVENT_WRITE)
    pieces, sent, reader = [p for p in request if p.nbytes], 0, FrameReader()
    if not pieces:
        sel.unregister(in_fd)
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if watch is not None:
                watch()
                left = min(left, MEMORY_POLL_S)
            for key, _ in sel.select(timeout=left):
                if key.fd == in_fd:
                    try:
                        sent += os.write(in_fd, pieces[0][sent : sent + (1 << 20)])
                    except BrokenPipeError:
                        return None
                    except BlockingIOError:
                        continue
                    if sent == pieces[0].nbytes:
                        pieces.pop(0)
                        sent = 0
                        if not pieces:
                            sel.unregister(in_fd)
                    continue
                done = reader.read(out_fd)
                if done is None:
                    return None
                if done:
                    return reader.frame()
    finally:
        sel.close()


