"""Every name and string of an untrusted ONNX model must be valid UTF-8.

Protobuf does not check UTF-8 when it parses an ONNX file (``onnx.proto`` is proto2): a string field that is
not valid UTF-8 comes back as ``bytes`` in Python, and C++ code that hands it to Python later (ONNX Runtime's
``NodeArg.name``, OpenVINO's tensor names) raises ``UnicodeDecodeError`` far from the import. The ONNX spec
also declares the ``bytes`` fields ``AttributeProto.s``/``strings`` and ``TensorProto.string_data`` to be
UTF-8 text. ``check_text`` walks the whole message tree once and refuses the first field that is not.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from edgeopt.errors import ModelError, UnsafeModelError

_TEXT_BYTES = frozenset({("onnx.AttributeProto", "s"), ("onnx.AttributeProto", "strings"),
                         ("onnx.TensorProto", "string_data")})
"""``bytes`` fields the ONNX spec defines as UTF-8 text."""
_MESSAGE, _TEXT, _UTF8_BYTES = 0, 1, 2


@functools.cache
def _fields(descriptor: Descriptor) -> tuple[tuple[str, int, bool], ...]:
    """``(name, kind, repeated)`` of the fields of a message type that are messages or text."""
    found = []
    for fd in descriptor.fields:
        repeated = fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == FieldDescriptor.LABEL_REPEATED
        if fd.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            found.append((fd.name, _MESSAGE, repeated))
        elif fd.type == FieldDescriptor.TYPE_STRING:
            found.append((fd.name, _TEXT, repeated))
        elif fd.type == FieldDescriptor.TYPE_BYTES and (descriptor.full_name, fd.name) in _TEXT_BYTES:
            found.append((fd.name, _UTF8_BYTES, repeated))
    return tuple(found)


def _valid(kind: int, value: object) -> bool:
    if kind == _TEXT:
        return isinstance(value, str)  # protobuf returns bytes when a string field is not valid UTF-8
    try:
        bytes(value).decode("utf-8")  # type: ignore[call-overload]
    except UnicodeDecodeError:
        return False
    return True


def invalid_text(message: Message) -> Iterator[tuple[str, bytes]]:
    """``(field path, raw value)`` of every text field of ``message`` (recursively) that is not valid UTF-8,
    e.g. ``("graph.node[3].output[0]", b"\\xff")``."""
    stack: list[tuple[Message, tuple[str, ...]]] = [(message, ())]
    while stack:
        msg, path = stack.pop()
        for name, kind, repeated in _fields(msg.DESCRIPTOR):
            if kind == _MESSAGE:
                if repeated:
                    stack.extend((sub, (*path, f"{name}[{i}]")) for i, sub in enumerate(getattr(msg, name)))
                elif msg.HasField(name):
                    stack.append((getattr(msg, name), (*path, name)))
                continue
            values = getattr(msg, name) if repeated else (getattr(msg, name),)
            for i, value in enumerate(values):
                if not _valid(kind, value):
                    raw = value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")
                    yield ".".join((*path, f"{name}[{i}]" if repeated else name)), raw


def check_text(message: Message, *, what: str = "the model") -> None:
    """Refuse (ModelError) ``message`` when any name or string in it is not valid UTF-8; names the first.
    An external data reference that is not valid UTF-8 is an UnsafeModelError, like every other bad one."""
    for path, raw in invalid_text(message):
        shown = raw[:40] + (b"..." if len(raw) > 40 else b"")
        if ".external_data[" in path:
            raise UnsafeModelError(f"{what} names an external data file that is not valid UTF-8 at {path} ({shown!r})",
                                   hint="external data must be named by a UTF-8 path inside the model's folder")
        raise ModelError(
            f"{what} holds text that is not valid UTF-8 at {path} ({shown!r}); ONNX names and strings must be UTF-8",
            hint="export the model again; a name or string attribute in the file is corrupt",
        )
