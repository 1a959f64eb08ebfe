"""Reading and writing ONNX model files: untrusted loading, saving with external data, fingerprints.

``load_onnx`` treats the file as untrusted data (see ``edgeopt.graph.safety``). ``save_model`` writes
``directory/model.onnx``, its weights in ``model.onnx.data`` when they near protobuf's 2 GiB cap, and
``load_model`` reads a normalized ``Graph``'s model back after checking its fingerprint. Every failure is one
``ModelError`` (or ``OutputPathError`` for a write) line.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx.external_data_helper import load_external_data_for_model

from edgeopt.errors import ModelError, OutputPathError
from edgeopt.graph.inspect import tensor_nbytes, weight_tensors
from edgeopt.graph.safety import (
    check_model_file,
    check_untrusted,
    load_external_data,
    refuse_if_archive,
    with_env_limits,
)
from edgeopt.hashing import sha256_file
from edgeopt.types import Graph, ImportOptions

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
LARGE_MODEL_BYTES = int(1.8 * 1024**3)
"""Models larger than this are saved with their weights in ``DATA_FILE`` (protobuf caps at 2 GiB)."""


def first_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message (its type name when empty)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_onnx(path: str | os.PathLike[str], *, options: ImportOptions) -> onnx.ModelProto:
    """Parse an ONNX file as untrusted data.

    Checks declared tensor sizes against ``options.max_tensor_bytes`` before reading any external
    data, refuses non-standard op domains unless ``options.allow_custom_ops``, and reads external
    data only from inside the model's own folder. Archives and files over protobuf's 2 GiB are
    refused unread. Raises ModelError (or a subclass) with one line.
    """
    path = Path(path)
    options = with_env_limits(options)
    if not path.exists():
        raise ModelError(f"model file {path} not found", hint="check the path (and the current directory)")
    if not path.is_file():
        raise ModelError(f"{path} is not a file", hint="give the path of the .onnx file itself")
    check_model_file(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except DecodeError as exc:
        refuse_if_archive(path)
        raise ModelError(f"{path} is not a valid ONNX model (protobuf parse failed: {first_line(exc)})") from exc
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot read {path}: {first_line(exc)}") from exc
    if not model.HasField("graph") or not model.opset_import or not model.graph.node:
        refuse_if_archive(path)
        raise ModelError(f"{path} holds no complete ONNX graph (empty, truncated or not a model file)")
    check_untrusted(model, options=options)
    load_external_data(model, base_dir=path.parent, options=options)
    check_untrusted(model, options=options)
    return model


def is_large(model: onnx.ModelProto) -> bool:
    """Whether the model's weights (declared sizes, a cheap proxy for ByteSize) near the protobuf cap."""
    return sum(tensor_nbytes(t) for t in weight_tensors(model)) > LARGE_MODEL_BYTES


def serialized(model: onnx.ModelProto, workdir: Path, scratch: str = ".probe") -> bytes | str:
    """``model`` as bytes for the isolated worker, or the path of a scratch copy when it is too large for that."""
    return str(save_model(model, workdir / scratch, keep_data=True)) if is_large(model) else model.SerializeToString()


def save_model(model: onnx.ModelProto, directory: Path, *, keep_data: bool = False) -> Path:
    """Write ``directory/model.onnx`` (weights in ``model.onnx.data`` when large); return its path.

    Saving a large model moves its weights out of ``model``; ``keep_data`` reads them back in.
    A full disk (or any OSError) is an OutputPathError naming ``directory``.
    """
    path, data = directory / MODEL_FILE, directory / DATA_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
        data.unlink(missing_ok=True)
        if is_large(model):
            onnx.save_model(
                model,
                str(path),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=DATA_FILE,
                size_threshold=1024,
            )
            if keep_data:
                load_external_data_for_model(model, str(directory))
        else:
            onnx.save_model(model, str(path))
    except OSError as exc:
        raise _write_error(exc, directory) from exc
    return path


def _write_error(exc: OSError, directory: Path) -> OutputPathError:
    hints = {
        errno.ENOSPC: "the disk is full: free some space, or set TMPDIR to a disk with room",
        errno.EDQUOT: "the disk quota is exceeded: free some space, or set TMPDIR to a disk with room",
        errno.EFBIG: "a file size limit (ulimit -f) stops the write: raise it, or free space for large models",
        errno.EROFS: "the filesystem is read-only: set TMPDIR to a writable directory",
        errno.EACCES: "permission denied: set TMPDIR to a directory you can write to",
        errno.EPERM: "permission denied: set TMPDIR to a directory you can write to",
    }
    return OutputPathError(
        f"cannot write the normalized model in {directory}: {exc.strerror or exc}",
        hint=hints.get(exc.errno or 0, "set TMPDIR to a writable directory with free space"),
    )


def fingerprint(path: Path) -> str:
    """sha256 of the model file (and of its external data file when there is one)."""
    data = path.with_name(DATA_FILE)
    return sha256_file(path, data) if data.exists() else sha256_file(path)


def load_model(graph: Graph) -> onnx.ModelProto:
    """The normalized model of ``graph``, after checking its fingerprint (ModelError on mismatch)."""
    path = Path(graph.path)
    if not path.is_file():
        raise ModelError(f"normalized model {path} is missing", hint="import the model again")
    if fingerprint(path) != graph.fingerprint:
        raise ModelError(
            f"normalized model {path} changed since it was imported (sha256 mismatch)",
            hint="import the model again; never edit files in a work directory",
        )
    return onnx.load(str(path), load_external_data=True)
