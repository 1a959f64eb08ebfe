"""The wire between an ``IsolatedWorker`` and its child: length-framed pickles over the child's stdin/stdout,
functions named ``"package.module:qualname"``, and exceptions carried across (EdgeoptErrors by class name,
message and hint; other exceptions pickled when they round-trip, else as their type and message)."""

from __future__ import annotations

import importlib
import os
import pickle
import struct
import traceback
from collections.abc import Callable
from typing import Any

from edgeopt.errors import EdgeoptError, ModelError

DATA_LIMIT_ENV = "EDGEOPT_WORKER_DATA_LIMIT"
"""How the parent hands the child its ``RLIMIT_DATA`` backstop (bytes)."""
FRAME = struct.Struct(">Q")
"""The length prefix of every message, either way."""


def resolve(fn_qualname: str) -> Callable[..., Any]:
    """The object ``"pkg.mod:Class.method"`` (or ``"pkg.mod.func"``) names, importing its module."""
    module, sep, qual = fn_qualname.partition(":")
    if not sep:
        module, _, qual = fn_qualname.rpartition(".")
    if not module or not qual:
        raise ValueError(f"{fn_qualname!r} is not 'package.module:function'")
    obj: Any = importlib.import_module(module)
    for part in qual.split("."):
        obj = getattr(obj, part)
    return obj


def rebuild_error(payload: dict[str, Any]) -> BaseException:
    """The exception the child raised, rebuilt here (EdgeoptErrors from class name, message and hint)."""
    note = "raised in the isolated worker process:\n" + payload.get("traceback", "")
    exc: BaseException | None = None
    if payload.get("edgeopt"):
        try:
            cls = resolve(payload["cls"])
            if isinstance(cls, type) and issubclass(cls, EdgeoptError):
                exc = cls(payload["message"], hint=payload["hint"])
        except Exception:  # a class this side cannot import or build: keep the message as a ModelError
            exc = None
        if exc is None:
            exc = ModelError(payload["message"], hint=payload["hint"])
    elif payload.get("pickled") is not None:
        try:
            exc = pickle.loads(payload["pickled"])  # noqa: S301 - written by our own child
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        exc = RuntimeError(f"{payload.get('type', 'Exception')}: {payload.get('message', '')}")
    exc.add_note(note)
    return exc


def read_exact(fd: int, n: int) -> bytes | None:
    data = bytearray()
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return None
        data += chunk
    return bytes(data)


def error_payload(exc: BaseException) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    if isinstance(exc, EdgeoptError):
        payload.update(
            edgeopt=True, cls=f"{type(exc).__module__}:{type(exc).__qualname__}", message=exc.message, hint=exc.hint
        )
        return payload
    try:
        payload["pickled"] = pickle.dumps(exc, protocol=pickle.HIGHEST_PROTOCOL)
        pickle.loads(payload["pickled"])  # noqa: S301 - checks that it round-trips
    except Exception:
        payload["pickled"] = None
    return payload
