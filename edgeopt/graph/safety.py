"""Treat an ONNX model as untrusted data: op domains, declared tensor sizes, external data paths.

Every check here reads only what the protobuf already holds (dims, attributes, small shape
tensors) so a hostile model is refused before anything large is allocated. External data is read
only from regular files inside the model's own folder. Archives are never unpacked. The probes at
the end (``checker_probe``, ``session_probe``, ``runtime_probe``) are meant to run in
``edgeopt.process.isolation``'s child process, because native code may crash on a malformed model.

Limits: ``ImportOptions.max_tensor_bytes`` per tensor; ``EDGEOPT_MAX_TENSOR_BYTES`` replaces it when
the options keep the default; ``EDGEOPT_MAX_MODEL_BYTES`` caps all external data read for one model.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import onnx
from onnx import TensorProto, numpy_helper

from edgeopt import settings
from edgeopt.errors import ModelError, ResourceLimitError, UnsafeModelError, UnsupportedModelError
from edgeopt.graph.inspect import infer_types, iter_nodes, nbytes, tensor_nbytes
from edgeopt.graph.utf8 import check_text
from edgeopt.types import ImportOptions

MAX_TENSOR_BYTES_ENV = "EDGEOPT_MAX_TENSOR_BYTES"
MAX_MODEL_BYTES_ENV = "EDGEOPT_MAX_MODEL_BYTES"
DEFAULT_MAX_MODEL_BYTES = 16 * 1024**3
"""Cap on all external data of one model (a sparse file can declare terabytes) unless the env var says otherwise."""
PROTOBUF_LIMIT = 2**31 - 1
"""Protobuf cannot parse a message larger than this: bigger models must keep weights in external data."""
ARCHIVE_SUFFIXES = (
    ".zip", ".tar", ".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".tar.zst", ".7z", ".rar", ".gz",
    ".bz2", ".xz", ".zst",
)  # fmt: skip
_ARCHIVE_MAGIC = (
    (0, b"PK\x03\x04", "zip"), (0, b"PK\x05\x06", "zip"), (257, b"ustar", "tar"), (0, b"\x1f\x8b", "gzip"),
    (0, b"BZh", "bzip2"), (0, b"\xfd7zXZ\x00", "xz"), (0, b"7z\xbc\xaf\x27\x1c", "7z"), (0, b"Rar!\x1a\x07", "rar"),
    (0, b"\x28\xb5\x2f\xfd", "zstd"),
)  # fmt: skip
_ARCHIVE_HINT = "edgeopt never unpacks archives; extract it yourself and pass the .onnx file inside"
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
"""Op domains accepted without ``allow_custom_ops``."""
_RANDOM_OPS = frozenset(
    {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli"}
)


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


_DEFAULT_MAX_TENSOR_BYTES = next(f.default for f in dataclasses.fields(ImportOptions) if f.name == "max_tensor_bytes")


def with_env_limits(options: ImportOptions) -> ImportOptions:
    """``options`` with ``max_tensor_bytes`` from ``EDGEOPT_MAX_TENSOR_BYTES`` when it keeps the default.

    A value the caller set explicitly (anything but the dataclass default) wins over the environment.
    """
    if options.max_tensor_bytes != _DEFAULT_MAX_TENSOR_BYTES:
        return options
    limit = settings.size(MAX_TENSOR_BYTES_ENV)
    return options if limit is None else dataclasses.replace(options, max_tensor_bytes=limit)


def max_model_bytes() -> int:
    """Cap on the external data one model may read: ``EDGEOPT_MAX_MODEL_BYTES`` or ``DEFAULT_MAX_MODEL_BYTES``."""
    limit = settings.size(MAX_MODEL_BYTES_ENV)
    return DEFAULT_MAX_MODEL_BYTES if limit is None else limit


def archive_kind(path: Path) -> str | None:
    """``"zip"``, ``"tar"``, ... when the file's first bytes are an archive's or compressor's magic, else None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(512)
    except OSError:
        return None
    return next((kind for at, magic, kind in _ARCHIVE_MAGIC if head[at : at + len(magic)] == magic), None)


def check_model_file(path: Path) -> None:
    """Refuse, before parsing, archives by name (UnsafeModelError) and files protobuf cannot hold (ModelError)."""
    name = path.name.lower()
    if name.endswith(ARCHIVE_SUFFIXES):
        raise UnsafeModelError(f"{path} is an archive; archives are not accepted as models", hint=_ARCHIVE_HINT)
    size = path.stat().st_size
    if size > PROTOBUF_LIMIT:
        raise ModelError(
            f"{path} is {_human(size)}, over the 2 GiB a protobuf (.onnx) file can hold",
            hint="save the model with its weights as external data (onnx.save_model(..., save_as_external_data=True))",
        )


def refuse_if_archive(path: Path) -> None:
    """UnsafeModelError when ``path``'s content is an archive (called after a failed parse, for a clear message)."""
    kind = archive_kind(path)
    if kind is not None:
        raise UnsafeModelError(
            f"{path} is a {kind} archive, not an ONNX model; archives are not accepted", hint=_ARCHIVE_HINT
        )


def _all_graphs(model: onnx.ModelProto) -> Iterator[onnx.GraphProto]:
    """The main graph and every subgraph (If/Loop/Scan bodies), depth first."""
    stack = [model.graph]
    while stack:
        graph = stack.pop()
        yield graph
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == onnx.AttributeProto.GRAPH:
                    stack.append(attr.g)
                elif attr.type == onnx.AttributeProto.GRAPHS:
                    stack.extend(attr.graphs)


def _all_nodes(model: onnx.ModelProto) -> Iterator[onnx.NodeProto]:
    yield from iter_nodes(model.graph)
    for function in model.functions:
        yield from function.node


def _constant_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    """Every tensor stored in the model: initializers, sparse initializers, Constant node values."""
    for graph in _all_graphs(model):
        yield from graph.initializer
        for sparse in graph.sparse_initializer:
            yield sparse.values
            yield sparse.indices
    for node in _all_nodes(model):
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.TENSOR:
                yield attr.t
            elif attr.type == onnx.AttributeProto.SPARSE_TENSOR:
                yield attr.sparse_tensor.values
                yield attr.sparse_tensor.indices


def external_tensors(model: onnx.ModelProto) -> Iterator[TensorProto]:
    """Stored tensors whose data lives in an external file not read yet."""
    return (t for t in _constant_tensors(model) if t.data_location == TensorProto.EXTERNAL)


def _refuse_size(what: str, size: int, dims: object, options: ImportOptions) -> None:
    if size > options.max_tensor_bytes:
        raise ResourceLimitError(
            f"{what} declares {_human(size)} (shape {dims}), over the {_human(options.max_tensor_bytes)} "
            "limit for one tensor"
        )


def _check_domains(model: onnx.ModelProto, options: ImportOptions) -> None:
    if options.allow_custom_ops:
        return
    local_functions = {(f.domain, f.name) for f in model.functions}
    custom = sorted(
        {
            f"{node.domain}::{node.op_type}"
            for node in _all_nodes(model)
            if node.domain not in STANDARD_DOMAINS and (node.domain, node.op_type) not in local_functions
        }
    )
    if custom:
        shown = ", ".join(custom[:5]) + (f" and {len(custom) - 5} more" if len(custom) > 5 else "")
        raise UnsupportedModelError(
            f"the model uses ops outside the standard ONNX domains: {shown}",
            hint="edgeopt runs standard ONNX ops only; set ImportOptions(allow_custom_ops=True) only if "
            "your runtime provides these ops",
        )


def _constant_shape_values(model: onnx.ModelProto) -> dict[str, TensorProto]:
    """Small integer tensors by name (initializers and Constant outputs) that may feed a shape input."""
    found: dict[str, TensorProto] = {}
    for graph in _all_graphs(model):
        for tensor in graph.initializer:
            if tensor.data_type == TensorProto.INT64 and len(tensor.dims) == 1:
                found[tensor.name] = tensor
    for node in _all_nodes(model):
        if node.op_type == "Constant" and node.output:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.data_type == TensorProto.INT64:
                    found[node.output[0]] = attr.t
                elif attr.name == "value_ints":
                    found[node.output[0]] = onnx.helper.make_tensor("", TensorProto.INT64, [len(attr.ints)], attr.ints)
    return found


def _check_sizes(model: onnx.ModelProto, options: ImportOptions) -> None:
    for tensor in _constant_tensors(model):
        _refuse_size(f"tensor {tensor.name or '(unnamed)'!r}", tensor_nbytes(tensor), list(tensor.dims), options)
    shapes = _constant_shape_values(model)
    for node in _all_nodes(model):
        if node.op_type != "ConstantOfShape" or not node.input or node.input[0] not in shapes:
            continue
        shape_tensor = shapes[node.input[0]]
        if shape_tensor.data_location == TensorProto.EXTERNAL:
            continue  # checked again once external data is read
        try:
            dims = [int(d) for d in numpy_helper.to_array(shape_tensor).reshape(-1)]
        except Exception as exc:  # raw_data that does not fit its dims/type: numpy raises ValueError/TypeError
            raise ModelError(
                f"the shape tensor {shape_tensor.name or node.input[0]!r} of ConstantOfShape "
                f"{node.name or node.output[0]!r} holds malformed data ({_first_line(exc)})"
            ) from exc
        if any(d < 0 for d in dims):
            raise ModelError(f"ConstantOfShape {node.name or node.output[0]!r} has a negative shape {dims}")
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        elem = value.data_type if value is not None else TensorProto.FLOAT
        _refuse_size(f"ConstantOfShape output {node.output[0]!r}", nbytes(elem, math.prod(dims)), dims, options)


def check_untrusted(model: onnx.ModelProto, *, options: ImportOptions) -> None:
    """Refuse names and strings that are not valid UTF-8 (ModelError, ``edgeopt.graph.utf8``), custom op
    domains (UnsupportedModelError) and oversized tensors (ResourceLimitError)."""
    options = with_env_limits(options)
    check_text(model)
    _check_domains(model, options)
    _check_sizes(model, options)


def _data_path(location: str | bytes, base_dir: Path, tensor: str) -> Path:
    """The file ``location`` names, refused unless it resolves inside ``base_dir``."""
    if not isinstance(location, str):  # protobuf hands back bytes when the field is not valid UTF-8
        raise UnsafeModelError(f"tensor {tensor!r} names an external data file that is not valid UTF-8: {location!r}")
    base = base_dir.resolve()
    outside = f"tensor {tensor!r} reads external data from {location!r}, outside the model's folder {base}"
    hint = "external data files must sit inside the model's own folder; copy them there (no links)"
    if not location:
        raise ModelError(f"tensor {tensor!r} is marked external but names no data file")
    if any(ord(c) < 32 for c in location):
        raise UnsafeModelError(f"tensor {tensor!r} names an external data file with control characters: {location!r}")
    parts = re.split(r"[\\/]", location)
    if location.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", location) or Path(location).is_absolute():
        raise UnsafeModelError(outside + " (absolute path)", hint=hint)
    if ".." in parts:
        raise UnsafeModelError(outside + " ('..' in the path)", hint=hint)
    resolved = (base / location).resolve()
    if not resolved.is_relative_to(base):
        raise UnsafeModelError(outside + " (through a symbolic link)", hint=hint)
    if not resolved.exists():
        raise ModelError(f"external data file {location!r} for tensor {tensor!r} not found in {base}")
    return resolved


def load_external_data(model: onnx.ModelProto, *, base_dir: Path, options: ImportOptions) -> None:
    """Read every external tensor of ``model`` in place, from regular files under ``base_dir`` only.

    Refuses (UnsafeModelError) absolute paths, ``..``, links resolving outside ``base_dir`` and hard
    links (``st_nlink > 1``: their other name may be anywhere); checks that offset and length fit the
    file and match the tensor's declared size, and the size limits (per tensor, and all external data
    together against ``max_model_bytes()``), before reading.
    """
    options = with_env_limits(options)
    pending = list(external_tensors(model))
    total, cap = sum(tensor_nbytes(t) for t in pending), max_model_bytes()
    if total > cap:
        raise ResourceLimitError(
            f"the model's external data declares {_human(total)} in {len(pending)} tensors, over the "
            f"{_human(cap)} limit for one model",
            hint=f"raise the limit with {MAX_MODEL_BYTES_ENV} if you trust this model and have the memory",
        )
    for tensor in pending:
        info = {entry.key: entry.value for entry in tensor.external_data}
        path = _data_path(info.get("location", ""), base_dir, tensor.name)
        declared = tensor_nbytes(tensor)
        _refuse_size(f"tensor {tensor.name!r}", declared, list(tensor.dims), options)
        try:
            offset = int(info.get("offset", 0))
            length = int(info["length"]) if "length" in info else None
        except ValueError as exc:
            raise ModelError(f"tensor {tensor.name!r} has a malformed external data offset/length") from exc
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeModelError(f"external data {path.name!r} for tensor {tensor.name!r} is not a regular file")
            if st.st_nlink > 1:
                raise UnsafeModelError(
                    f"external data {path.name!r} for tensor {tensor.name!r} is a hard link; it may point anywhere",
                    hint="replace the hard link with a copy of the file (cp, not ln)",
                )
            size = length if length is not None else st.st_size - offset
            if offset < 0 or size < 0 or offset + size > st.st_size:
                raise ModelError(f"external data for tensor {tensor.name!r} points past the end of {path.name!r}")
            if tensor.data_type != TensorProto.STRING and size != declared:
                raise ModelError(
                    f"external data for tensor {tensor.name!r} has {size} bytes; its shape {list(tensor.dims)} "
                    f"needs {declared}"
                )
            _refuse_size(f"tensor {tensor.name!r}", size, list(tensor.dims), options)
            fh.seek(offset)
            tensor.raw_data = fh.read(size)
        del tensor.external_data[:]
        tensor.data_location = TensorProto.DEFAULT


def check_fold_sizes(model: onnx.ModelProto, *, options: ImportOptions) -> None:
    """Refuse (ResourceLimitError) when folding constants, or running the model, would create a tensor
    over the size limit.

    Follows which tensors are computable from constants alone (initializers, Constant nodes, Shape
    of a static tensor) and checks their inferred sizes, without computing any of them; then every
    graph input and every other main-graph tensor whose inferred shape is static (an ``Expand`` of the
    input to a huge constant shape allocates when the model first runs; a huge input, when it is fed).
    """
    options = with_env_limits(options)
    types = infer_types(model)
    constant = {t.name for t in model.graph.initializer}
    for value in model.graph.input:  # an input this size is allocated by whoever feeds it (synthetic data too)
        elem, dims = types.get(value.name, (0, None))
        if dims is not None and all(isinstance(d, int) for d in dims):
            _refuse_size(f"input {value.name!r}", nbytes(elem, math.prod(dims)), list(dims), options)

    def static(name: str) -> bool:
        dims = types.get(name, (0, None))[1]
        return dims is not None and all(isinstance(d, int) for d in dims)

    for node in model.graph.node:
        inputs = [name for name in node.input if name]
        skip = node.op_type in _RANDOM_OPS or any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute
        )
        foldable = not skip and (
            (node.op_type in ("Shape", "Size") and bool(inputs) and static(inputs[0]))
            or all(name in constant for name in inputs)
        )
        if foldable:
            constant.update(node.output)
        for name in node.output:
            elem, dims = types.get(name, (0, None))
            if name and dims is not None and all(isinstance(d, int) for d in dims):
                what = f"folding constants into {name!r}" if foldable else f"tensor {name!r} ({node.op_type} output)"
                _refuse_size(what, nbytes(elem, math.prod(dims)), list(dims), options)


# ------------------------------------------------------------------------- probes for the isolated worker


def checker_probe(source: bytes | str, what: str) -> None:
    """Full ``onnx.checker`` pass (strict shape inference included) over model bytes or a model path.

    Meant for ``edgeopt.process.isolation``'s child process. Raises ModelError for any failure.
    """
    try:
        onnx.checker.check_model(source, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ModelError(f"{what} fails the ONNX checker: {_first_line(exc)}") from exc
    except Exception as exc:  # the C++ checker raises bare RuntimeError/ValueError/... on garbage
        raise ModelError(f"the ONNX checker cannot read {what}: {type(exc).__name__}: {_first_line(exc)}") from exc


def session_probe(source: bytes | str, level: str = "all") -> str | None:
    """Create an ONNX Runtime CPU session over model bytes or a path; None when it loads, else why not.

    ``level`` is the graph optimization level (``"basic"`` or ``"all"``); both fold constants, which
    runs kernels on the model's own data. Meant for ``edgeopt.process.isolation``'s child process, where a
    crash costs nothing; an error ONNX Runtime reports is returned, not raised.
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.intra_op_num_threads = 1
    options.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_BASIC if level == "basic" else ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    )
    try:
        ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NotImplemented types
        return _first_line(exc)
    return None


def runtime_probe(path: str, allow_custom_ops: bool) -> str | None:
    """Full checker over the saved model at ``path``, then an ONNX Runtime CPU session over it.

    Meant for ``edgeopt.process.isolation``'s child process: proves the normalized model loads where a crash
    costs nothing. Raises ModelError; with ``allow_custom_ops`` a session failure is returned as a
    note instead (the target's runtime may provide those ops).
    """
    checker_probe(path, "the normalized model")
    problem = session_probe(path)
    if problem is None:
        return None
    message = f"ONNX Runtime cannot load the normalized model: {problem}"
    if allow_custom_ops:
        return message + " (kept: custom ops were allowed)"
    raise ModelError(
        message, hint="the model may use an op ONNX Runtime does not implement; run `edgeopt inspect MODEL`"
    )
