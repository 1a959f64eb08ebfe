"""Functions the isolation tests run in the worker process (importable by name there)."""

from __future__ import annotations

import ctypes
import os
import time

from edgeopt.errors import UnsafeModelError

CRASH_MARKER = b"please-crash-the-checker"


def segfault() -> None:
    ctypes.string_at(0)  # reads address 0: SIGSEGV, as a buggy C++ parser would


def abort() -> None:
    os.abort()


def exit_hard(status: int) -> None:
    os._exit(status)


def sleep(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"


def pid() -> int:
    return os.getpid()


def echo(value: object) -> object:
    return value


def refuse(message: str, hint: str) -> None:
    raise UnsafeModelError(message, hint=hint)


def fail_plainly(message: str) -> None:
    raise KeyError(message)


def noisy() -> int:
    """Writes to fd 1 and stdout as native libraries do; the reply must not be corrupted."""
    os.write(1, b"native noise on fd 1\n" * 1000)
    print("python noise on stdout" * 1000, flush=True)
    return 42


def install_crashing_checker() -> None:
    """Make ``onnx.checker.check_model`` in this (worker) process segfault on models holding CRASH_MARKER."""
    import onnx.checker

    real = onnx.checker.check_model

    def crashing(model, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003 - same signature as onnx's
        if isinstance(model, bytes) and CRASH_MARKER in model:
            segfault()
        return real(model, *args, **kwargs)

    onnx.checker.check_model = crashing
