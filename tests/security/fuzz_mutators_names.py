"""Mutations of names, attributes and shapes: the lies a model can tell that still parse as protobuf.

Many of them keep the model valid on purpose (a tensor renamed consistently, an attribute given another
legal value, an input given another plausible shape), so the case goes past the importer into synthetic
data and the reference run, where a name or shape that is valid ONNX but unusual has crashed things
before (a tensor name that is not valid UTF-8 reached ``edgeopt.data.feeds`` as a ``UnicodeDecodeError``).

Python's protobuf refuses to *set* a string field that is not valid UTF-8, so ``bad_utf8_name`` writes
``PLACEHOLDER`` and ``mutate`` swaps it, after serialization, for ``INVALID_UTF8`` (the same length, so
every length prefix stays right).
"""

from __future__ import annotations

import random

import onnx
from onnx import AttributeProto, TensorProto, helper

PLACEHOLDER = "\ue000bad\ue001"
"""9 bytes of UTF-8 that no seed contains: stands for ``INVALID_UTF8`` until the model is serialized."""
INVALID_UTF8 = b"\xff\xfebad\xc0\xaf\x80\x80"
"""9 bytes that are not UTF-8 (a stray 0xff, an overlong '/', continuation bytes without a lead byte)."""
assert len(PLACEHOLDER.encode()) == len(INVALID_UTF8)
ODD_NAMES = (
    "", " ", "a b", "a/b", "../../etc/passwd", "C:\\x", "x\x00y", "x\ny", "\t", "名前", "😀", "\u202eevil",
    "%s%n", "{0}", "<script>", "model.onnx", "input", "output", "labels", ":", "0", "-1", "x" * 300,
)  # fmt: skip
LONG = (1 << 12, 1 << 16, 1 << 20)
"""Lengths of very long names: 4 KiB, 64 KiB, 1 MiB."""
DIMS = (-(2**62), -7, -1, 0, 0, 1, 2, 3, 1000, 2**31, 2**40)
STRING_VALUES = (b"", b"bogus", b"REFLECT", b"linear\x00", b"x" * 5000, INVALID_UTF8, b"constant", b"nearest",
                 b"VALID", b"SAME_LOWER", b"NOTSET", b"DCR", b"asymmetric", b"ceil")  # fmt: skip


def _graphs(model: onnx.ModelProto) -> list[onnx.GraphProto]:
    found, stack = [], [model.graph]
    while stack:
        graph = stack.pop()
        found.append(graph)
        for node in graph.node:
            for attr in node.attribute:
                if attr.type == AttributeProto.GRAPH:
                    stack.append(attr.g)
                stack.extend(attr.graphs)
    return found


def _nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [n for g in _graphs(model) for n in g.node] + [n for f in model.functions for n in f.node]


def _tensor_names(model: onnx.ModelProto) -> list[str]:
    names = {v.name for g in _graphs(model) for v in (*g.input, *g.output, *g.value_info)}
    names |= {t.name for g in _graphs(model) for t in g.initializer}
    names |= {o for n in _nodes(model) for o in (*n.input, *n.output)}
    return sorted(n for n in names if n)


def rename_everywhere(model: onnx.ModelProto, old: str, new: str) -> None:
    """Rename tensor ``old`` to ``new`` in every graph: values, initializers, node inputs and outputs."""
    for graph in _graphs(model):
        for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
            if value.name == old:
                value.name = new
        for node in graph.node:
            for field in (node.input, node.output):
                for i, name in enumerate(field):
                    if name == old:
                        field[i] = new


def _rename(rng: random.Random, model: onnx.ModelProto, new: str) -> None:
    """A tensor renamed to ``new`` everywhere (model stays consistent), or at one use only, or a node, graph,
    attribute or op field set to ``new``."""
    roll = rng.random()
    names = _tensor_names(model)
    if roll < 0.55 and names:
        rename_everywhere(model, rng.choice(names), new)
        return
    nodes = _nodes(model)
    node = rng.choice(nodes)
    if roll < 0.75:
        field = node.output if node.output and rng.random() < 0.5 else node.input
        if field:
            field[rng.randrange(len(field))] = new
    elif roll < 0.85:
        node.name = new
    elif roll < 0.9 and node.attribute:
        rng.choice(list(node.attribute)).name = new
    elif roll < 0.95:
        rng.choice(_graphs(model)).name = new
    elif rng.random() < 0.5:
        node.domain = new
    else:
        rng.choice([node, model.graph, model]).doc_string = new


# -------------------------------------------------------------------------------------------- names


def bad_utf8_name(rng: random.Random, model: onnx.ModelProto) -> None:
    """A name (tensor, node, graph, attribute) or doc string that is not valid UTF-8 (see ``PLACEHOLDER``)."""
    _rename(rng, model, PLACEHOLDER)


def empty_name(rng: random.Random, model: onnx.ModelProto) -> None:
    _rename(rng, model, "")


def duplicate_name(rng: random.Random, model: onnx.ModelProto) -> None:
    """Two tensors, two graph inputs, two initializers or two nodes sharing one name."""
    graph = model.graph
    roll = rng.random()
    names = _tensor_names(model)
    if roll < 0.4 and len(names) >= 2:
        a, b = rng.sample(names, 2)
        rename_everywhere(model, a, b)
    elif roll < 0.6 and graph.input:
        graph.input.append(rng.choice(list(graph.input)))
    elif roll < 0.75 and graph.initializer:
        graph.initializer.append(rng.choice(list(graph.initializer)))
    elif roll < 0.85 and graph.input and graph.output:
        rename_everywhere(model, graph.output[0].name, graph.input[0].name)
    else:
        nodes = _nodes(model)
        if len(nodes) >= 2:
            a, b = rng.sample(nodes, 2)
            a.name = b.name = "same"


def long_name(rng: random.Random, model: onnx.ModelProto) -> None:
    _rename(rng, model, rng.choice("xé😀/") * rng.choice(LONG))


def odd_name(rng: random.Random, model: onnx.ModelProto) -> None:
    """Valid UTF-8 that is awkward elsewhere: paths, NUL, newlines, bidi overrides, format strings..."""
    _rename(rng, model, rng.choice(ODD_NAMES))


# ---------------------------------------------------------------------------------------- attributes


def _retyped(attr: AttributeProto, kind: int, rng: random.Random) -> AttributeProto:
    """A well-formed attribute with ``attr``'s name and another type's value."""
    values = {
        AttributeProto.INT: rng.choice([0, 1, -1, 2**40]),
        AttributeProto.INTS: [rng.choice([0, 1, 2, -1]) for _ in range(rng.randrange(0, 5))],
        AttributeProto.FLOAT: rng.choice([0.5, float("nan"), -1.0]),
        AttributeProto.FLOATS: [0.5] * rng.randrange(0, 4),
        AttributeProto.STRING: rng.choice(STRING_VALUES),
        AttributeProto.STRINGS: [rng.choice(STRING_VALUES)],
        AttributeProto.TENSOR: helper.make_tensor("t", TensorProto.FLOAT, [1], [1.0]),
        AttributeProto.GRAPH: helper.make_graph([], "empty", [], []),
    }
    return helper.make_attribute(attr.name, values[kind], attr_type=kind)  # the type of an empty list is given


def attribute_type(rng: random.Random, model: onnx.ModelProto) -> None:
    """An attribute re-declared with a value of another type (ints where an int goes, a string for a graph)."""
    nodes = [n for n in _nodes(model) if n.attribute]
    if not nodes:
        return
    node = rng.choice(nodes)
    i = rng.randrange(len(node.attribute))
    kinds = [AttributeProto.INT, AttributeProto.INTS, AttributeProto.FLOAT, AttributeProto.FLOATS,
             AttributeProto.STRING, AttributeProto.STRINGS, AttributeProto.TENSOR, AttributeProto.GRAPH]
    kind = rng.choice([k for k in kinds if k != node.attribute[i].type])
    node.attribute[i].CopyFrom(_retyped(node.attribute[i], kind, rng))


def attribute_value(rng: random.Random, model: onnx.ModelProto) -> None:
    """Another value of the attribute's own type: unknown or invalid-UTF-8 strings, lists of the wrong length,
    extreme numbers."""
    attrs = [a for n in _nodes(model) for a in n.attribute]
    if not attrs:
        return
    attr = rng.choice(attrs)
    if attr.type == AttributeProto.STRING:
        attr.s = rng.choice(STRING_VALUES)
    elif attr.type == AttributeProto.STRINGS:
        attr.strings.append(rng.choice(STRING_VALUES))
    elif attr.type == AttributeProto.INTS:
        if attr.ints and rng.random() < 0.4:
            del attr.ints[rng.randrange(len(attr.ints)):]
        else:
            attr.ints.extend(rng.choice(DIMS) for _ in range(rng.randrange(1, 4)))
    elif attr.type == AttributeProto.INT:
        attr.i = rng.choice(DIMS)
    elif attr.type == AttributeProto.FLOAT:
        attr.f = rng.choice([0.0, -0.0, 1e-45, 3e38, float("inf"), float("nan")])
    elif attr.type == AttributeProto.FLOATS:
        attr.floats.extend([float("nan")] * rng.randrange(1, 3))
    elif attr.type == AttributeProto.TENSOR:
        attr.t.dims.append(rng.choice(DIMS))


def attribute_missing(rng: random.Random, model: onnx.ModelProto) -> None:
    """A (maybe required) attribute removed, all of a node's attributes removed, or one left without a name."""
    nodes = [n for n in _nodes(model) if n.attribute]
    if not nodes:
        return
    node = rng.choice(nodes)
    roll = rng.random()
    if roll < 0.5:
        del node.attribute[rng.randrange(len(node.attribute))]
    elif roll < 0.75:
        del node.attribute[:]
    else:
        rng.choice(list(node.attribute)).name = ""


# -------------------------------------------------------------------------------------------- shapes


def _shaped(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    graph = model.graph
    return [v for v in (*graph.input, *graph.output, *graph.value_info) if v.type.HasField("tensor_type")]


def shape_dims(rng: random.Random, model: onnx.ModelProto) -> None:
    """A declared dim of an input, output or value info set negative, zero or huge, or made symbolic/empty."""
    values = [v for v in _shaped(model) if v.type.tensor_type.shape.dim]
    if not values:
        return
    dims = rng.choice(values).type.tensor_type.shape.dim
    dim = dims[rng.randrange(len(dims))]
    if rng.random() < 0.8:
        dim.dim_value = rng.choice(DIMS)
    else:
        dim.dim_param = rng.choice(["", "N", " ", "-1", "0"])


def shape_rank(rng: random.Random, model: onnx.ModelProto) -> None:
    """An input, output or value info gains or loses dims, becomes a scalar, or loses its shape entirely."""
    values = _shaped(model)
    if not values:
        return
    tensor_type = rng.choice(values).type.tensor_type
    roll = rng.random()
    if roll < 0.3:
        tensor_type.shape.dim.add().dim_value = rng.choice([1, 1, 2, 0])
    elif roll < 0.5:
        tensor_type.shape.dim.insert(0, onnx.TensorShapeProto.Dimension(dim_value=rng.choice([1, 2])))
    elif roll < 0.7 and tensor_type.shape.dim:
        del tensor_type.shape.dim[rng.randrange(len(tensor_type.shape.dim))]
    elif roll < 0.85:
        del tensor_type.shape.dim[:]  # a scalar
    else:
        tensor_type.ClearField("shape")  # rank unknown


def zero_size(rng: random.Random, model: onnx.ModelProto) -> None:
    """A zero-size tensor: an input dim of 0, or an initializer with a 0 dim and no data."""
    inputs = [v for v in model.graph.input if v.type.tensor_type.shape.dim]
    inits = [t for t in model.graph.initializer if t.dims and t.data_location != TensorProto.EXTERNAL]
    if inputs and (not inits or rng.random() < 0.6):
        dims = rng.choice(inputs).type.tensor_type.shape.dim
        dims[rng.randrange(len(dims))].dim_value = 0
    elif inits:
        t = rng.choice(inits)
        t.dims[rng.randrange(len(t.dims))] = 0
        for field in ("raw_data", "float_data", "int64_data", "int32_data", "double_data"):
            t.ClearField(field)


NAMES = {f.__name__: f for f in (bad_utf8_name, empty_name, duplicate_name, long_name, odd_name)}
ATTRIBUTES = {f.__name__: f for f in (attribute_type, attribute_value, attribute_missing)}
SHAPES = {f.__name__: f for f in (shape_dims, shape_rank, zero_size)}
