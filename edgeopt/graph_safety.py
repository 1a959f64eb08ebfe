"""Treat an ONNX model as untrusted data: op domains, declared tensor sizes, external data paths.

Every check here reads only what the protobuf already holds (dims, attributes, small shape
tensors) so a hostile model is refused before anything large is allocated. External data is read
only from regular files inside the model's own folder.
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import onnx
from onnx import TensorProto, numpy_helper

from edgeopt.errors import ModelError, ResourceLimitError, UnsafeModelError, UnsupportedModelError
from edgeopt.graph_inspect import infer_types, iter_nodes, nbytes, tensor_nbytes
from edgeopt.types import ImportOptions

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
        dims = [int(d) for d in numpy_helper.to_array(shape_tensor).reshape(-1)]
        if any(d < 0 for d in dims):
            raise ModelError(f"ConstantOfShape {node.name or node.output[0]!r} has a negative shape {dims}")
        value = next((a.t for a in node.attribute if a.name == "value"), None)
        elem = value.data_type if value is not None else TensorProto.FLOAT
        _refuse_size(f"ConstantOfShape output {node.output[0]!r}", nbytes(elem, math.prod(dims)), dims, options)


def check_untrusted(model: onnx.ModelProto, *, options: ImportOptions) -> None:
    """Refuse custom op domains (UnsupportedModelError) and oversized tensors (ResourceLimitError)."""
    _check_domains(model, options)
    _check_sizes(model, options)


def _data_path(location: str, base_dir: Path, tensor: str) -> Path:
    """The file ``location`` names, refused unless it resolves inside ``base_dir``."""
    base = base_dir.resolve()
    outside = f"tensor {tensor!r} reads external data from {location!r}, outside the model's folder {base}"
    hint = "external data files must sit inside the model's own folder; copy them there (no links)"
    if not location:
        raise ModelError(f"tensor {tensor!r} is marked external but names no data file")
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
    file and match the tensor's declared size, and the size limit, before reading.
    """
    for tensor in list(external_tensors(model)):
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
    """Refuse (ResourceLimitError) when constant folding would create a tensor over the size limit.

    Follows which tensors are computable from constants alone (initializers, Constant nodes, Shape
    of a static tensor) and checks their inferred sizes, without computing any of them.
    """
    types = infer_types(model)
    constant = {t.name for t in model.graph.initializer}

    def static(name: str) -> bool:
        dims = types.get(name, (0, None))[1]
        return dims is not None and all(isinstance(d, int) for d in dims)

    for node in model.graph.node:
        inputs = [name for name in node.input if name]
        if node.op_type in _RANDOM_OPS or any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute
        ):
            continue
        foldable = (node.op_type in ("Shape", "Size") and bool(inputs) and static(inputs[0])) or all(
            name in constant for name in inputs
        )
        if not foldable:
            continue
        constant.update(node.output)
        for name in node.output:
            elem, dims = types.get(name, (0, None))
            if dims is not None and all(isinstance(d, int) for d in dims):
                _refuse_size(f"folding constants into {name!r}", nbytes(elem, math.prod(dims)), list(dims), options)
