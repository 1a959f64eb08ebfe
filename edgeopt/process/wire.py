"""The wire between an ``IsolatedWorker`` and its child: framed pickles over the child's stdin/stdout, functions
named ``"package.module:qualname"``, and exceptions carried across (EdgeoptErrors by class name, message and
hint; other exceptions pickled when they round-trip, else as their type and message).

Contiguous arrays travel out of band (pickle protocol 5): their bytes are written straight from the arrays and
read straight into the buffers the other side's arrays then use, so neither side holds an extra copy of, e.g.,
the calibration data of a build while the call runs."""

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
FRAME = struct.Struct(">QQ")
"""A frame, either way: this header (pickle length, out-of-band buffer count), each buffer's length (``LENGTH``),
the pickle, then the buffers' bytes."""
LENGTH = struct.Struct(">Q")


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


def frame(obj: Any) -> list[memoryview]:
    """``obj`` as the pieces of one frame (see ``FRAME``): contiguous arrays are not copied, only viewed."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    raws = [b.raw() for b in buffers]
    head = FRAME.pack(len(data), len(raws)) + b"".join(LENGTH.pack(r.nbytes) for r in raws)
    return [memoryview(head), memoryview(data), *raws]


def unframe(received: tuple[bytearray, list[bytearray]]) -> Any:
    """The object a frame carries, its arrays using the received buffers (no copy)."""
    return pickle.loads(received[0], buffers=received[1])  # noqa: S301 - written by our own parent or child


class FrameReader:
    """Reads one frame as it arrives, each part straight into its own buffer: ``(pickle, buffers)`` when done."""

    def __init__(self) -> None:
        self.head = bytearray(FRAME.size)
        self.parts: list[bytearray] = [self.head]
        self.index, self.filled = 0, 0
        self.lengths: bytearray | None = None

    def read(self, fd: int) -> bool | None:
        """Read what ``fd`` has (blocking until something arrives); True once the frame is complete, None at EOF."""
        got = os.readv(fd, [memoryview(self.parts[self.index])[self.filled:]])
        if not got:
            return None
        self.filled += got
        while self.filled == len(self.parts[self.index]):  # parts of length 0 are passed over too
            if self._advance():
                return True
        return False

    def _advance(self) -> bool:
        """The current part is full: add the parts it announces and move on; True when none is left."""
        if self.index == 0:
            size, count = FRAME.unpack(self.head)
            self.lengths = bytearray(LENGTH.size * count)
            self.parts += [self.lengths, bytearray(size)]
        elif self.index == 1:
            assert self.lengths is not None
            self.parts += [bytearray(n) for (n,) in LENGTH.iter_unpack(self.lengths)]
        if self.index + 1 == len(self.parts):
            return True
        self.index, self.filled = self.index + 1, 0
        return False

    def frame(self) -> tuple[bytearray, list[bytearray]]:
        return self.parts[2], self.parts[3:]


def read_frame(fd: int) -> tuple[bytearray, list[bytearray]] | None:
    """One whole frame from ``fd`` (blocking), None when it closes first."""
    reader = FrameReader()
    while True:
        done = reader.read(fd)
        if done is None:
            return None
        if done:
            return reader.frame()


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
