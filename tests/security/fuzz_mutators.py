"""Mutations of a valid model: byte-level damage and structural lies a hostile file can tell.

Each mutator takes a ``random.Random`` and either a ModelProto (structural, edited in place) or the
serialized bytes (byte-level, returns new bytes). Every one is deterministic for a given RNG state, so
a failing case is reproduced from its (seed, index) alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

from tests.security.fuzz_mutators_names import (
    ATTRIBUTES,
    INVALID_UTF8,
    NAMES,
    PLACEHOLDER,
    SHAPES,
    _graphs,
    _nodes,
)

HUGE_DIMS = (-1, 0, -(2**40), 2**31, 2**40, 2**62, 2**63 - 1)
OPS = (
    "Relu", "Conv", "Gemm", "MatMul", "Reshape", "Concat", "Gather", "Loop", "Scan", "If", "TopK", "NonZero",
    "Resize", "Einsum", "ConstantOfShape", "Expand", "Tile", "Pad", "Split", "Unique", "ScatterND", "LSTM",
    "QuantizeLinear", "Cast", "Range", "OneHot", "NonMaxSuppression", "Upsample", "Dropout", "Col2Im",
    "NoSuchOp", "",
)  # fmt: skip
ATTR_KINDS = (AttributeProto.INT, AttributeProto.STRING, AttributeProto.GRAPH, AttributeProto.TENSOR)
LOCATIONS = (
    "../outside.bin", "/etc/passwd", "sub/../../outside.bin", "missing.bin", "", "C:\\\\weights.bin",
    "weights.bin\x00.txt", "./weights.bin", "link.bin", "hard.bin", "weights.bin",
)  # fmt: skip


# ------------------------------------------------------------------------------------------- helpers




def _value_infos(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    return [v for g in _graphs(model) for v in (*g.input, *g.output, *g.value_info)]


def _tensors(model: onnx.ModelProto) -> list[TensorProto]:
    found = [t for g in _graphs(model) for t in g.initializer]
    for node in _nodes(model):
        found += [a.t for a in node.attribute if a.type == AttributeProto.TENSOR]
    return found


def _names(model: onnx.ModelProto) -> list[str]:
    names = [v.name for v in _value_infos(model)] + [t.name for t in _tensors(model)]
    return names + [o for n in _nodes(model) for o in (*n.input, *n.output)]


# ------------------------------------------------------------------------------------ structural


def swap_op_types(rng: random.Random, model: onnx.ModelProto) -> None:
    nodes = _nodes(model)
    if len(nodes) >= 2:
        a, b = rng.sample(nodes, 2)
        a.op_type, b.op_type = b.op_type, a.op_type


def random_op_type(rng: random.Random, model: onnx.ModelProto) -> None:
    rng.choice(_nodes(model)).op_type = rng.choice(OPS)


def swap_inputs(rng: random.Random, model: onnx.ModelProto) -> None:
    nodes = [n for n in _nodes(model) if n.input]
    if len(nodes) >= 2:
        a, b = rng.sample(nodes, 2)
        i, j = rng.randrange(len(a.input)), rng.randrange(len(b.input))
        a.input[i], b.input[j] = b.input[j], a.input[i]


def swap_attributes(rng: random.Random, model: onnx.ModelProto) -> None:
    nodes = [n for n in _nodes(model) if n.attribute]
    if len(nodes) >= 2:
        a, b = rng.sample(nodes, 2)
        x, y = onnx.AttributeProto(), onnx.AttributeProto()
        x.CopyFrom(a.attribute[0])
        y.CopyFrom(b.attribute[0])
        a.attribute[0].CopyFrom(y)
        b.attribute[0].CopyFrom(x)


def bad_dim(rng: random.Random, model: onnx.ModelProto) -> None:
    """Set a declared dim (value info or stored tensor) to -1, 0, 2**40, ..."""
    value = rng.choice(HUGE_DIMS)
    tensors = [t for t in _tensors(model) if t.dims]
    if tensors and rng.random() < 0.5:
        t = rng.choice(tensors)
        t.dims[rng.randrange(len(t.dims))] = value
        return
    shaped = [v for v in _value_infos(model) if v.type.tensor_type.shape.dim]
    if shaped:
        dims = rng.choice(shaped).type.tensor_type.shape.dim
        dims[rng.randrange(len(dims))].dim_value = value


def change_data_type(rng: random.Random, model: onnx.ModelProto) -> None:
    new = rng.choice([-1, 0, 2, 7, 8, 9, 10, 11, 16, 17, 23, 25, 99, 2**31 - 1])
    tensors = _tensors(model)
    if tensors and rng.random() < 0.5:
        rng.choice(tensors).data_type = new
        return
    infos = [v for v in _value_infos(model) if v.type.HasField("tensor_type")]
    if infos:
        rng.choice(infos).type.tensor_type.elem_type = new


def duplicate_outputs(rng: random.Random, model: onnx.ModelProto) -> None:
    if rng.random() < 0.5 and model.graph.output:
        model.graph.output.append(rng.choice(model.graph.output))
        return
    nodes = [n for n in _nodes(model) if n.output]
    if len(nodes) >= 2:
        a, b = rng.sample(nodes, 2)
        a.output[0] = b.output[0]


def rename_edge(rng: random.Random, model: onnx.ModelProto) -> None:
    nodes = [n for n in _nodes(model) if n.input or n.output]
    node = rng.choice(nodes)
    field = node.input if node.input and (not node.output or rng.random() < 0.6) else node.output
    field[rng.randrange(len(field))] = rng.choice([*_names(model), "ghost", "", "x"])


def drop_or_duplicate_node(rng: random.Random, model: onnx.ModelProto) -> None:
    graph = rng.choice(_graphs(model))
    if not graph.node:
        return
    i = rng.randrange(len(graph.node))
    if rng.random() < 0.5:
        del graph.node[i]
    else:
        graph.node.append(graph.node[i])


def shuffle_or_cycle(rng: random.Random, model: onnx.ModelProto) -> None:
    graph = model.graph
    if rng.random() < 0.5:
        nodes = list(graph.node)
        rng.shuffle(nodes)
        del graph.node[:]
        graph.node.extend(nodes)
    elif graph.node:
        node = rng.choice(list(graph.node))
        if node.input and node.output:
            node.input[0] = node.output[0]  # a node reading its own output


def bad_attribute(rng: random.Random, model: onnx.ModelProto) -> None:
    nodes = _nodes(model)
    node = rng.choice(nodes)
    roll = rng.random()
    if node.attribute and roll < 0.25:
        del node.attribute[rng.randrange(len(node.attribute))]
    elif node.attribute and roll < 0.7:
        attr = rng.choice(list(node.attribute))
        if attr.ints:
            attr.ints[rng.randrange(len(attr.ints))] = rng.choice([*HUGE_DIMS, -(2**63), 99])
        elif attr.type == AttributeProto.INT:
            attr.i = rng.choice([*HUGE_DIMS, -(2**63), 99])
        elif attr.type == AttributeProto.FLOAT:
            attr.f = rng.choice([float("nan"), float("inf"), -1e38])
        else:
            attr.type = rng.choice(ATTR_KINDS)  # a type that disagrees with the value stored
    else:
        name = rng.choice(["axis", "perm", "kernel_shape", "pads", "strides", "to", "body", "value", "bogus"])
        kind = rng.choice(["int", "ints", "str", "graph"])
        if kind == "int":
            node.attribute.append(helper.make_attribute(name, rng.choice(HUGE_DIMS)))
        elif kind == "ints":
            node.attribute.append(helper.make_attribute(name, [rng.choice(HUGE_DIMS) for _ in range(3)]))
        elif kind == "str":
            node.attribute.append(helper.make_attribute(name, "bogus"))
        else:
            node.attribute.append(helper.make_attribute(name, helper.make_graph([], "empty", [], [])))


def bad_opset(rng: random.Random, model: onnx.ModelProto) -> None:
    roll = rng.random()
    if roll < 0.4:
        rng.choice(list(model.opset_import)).version = rng.choice([-1, 0, 1, 6, 9, 13, 21, 22, 99, 2**62])
    elif roll < 0.6:
        rng.choice(list(model.opset_import)).domain = rng.choice(["com.evil", "ai.onnx", "local", ""])
    elif roll < 0.8:
        model.ir_version = rng.choice([-1, 0, 1, 2, 3, 4, 7, 10, 11, 99])
    else:
        model.opset_import.append(helper.make_opsetid(rng.choice(["", "ai.onnx.ml", "x"]), rng.choice([1, 17, 99])))


def bad_tensor_data(rng: random.Random, model: onnx.ModelProto) -> None:
    tensors = [t for t in _tensors(model) if t.data_location != TensorProto.EXTERNAL]
    if not tensors:
        return
    t = rng.choice(tensors)
    roll = rng.random()
    if roll < 0.3:
        t.raw_data = t.raw_data[: rng.randrange(len(t.raw_data) + 1)] if t.raw_data else b"\x00" * 3
    elif roll < 0.5:
        t.raw_data += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
    elif roll < 0.7:
        t.float_data.extend([1.0, 2.0])  # raw_data and float_data both set
    elif roll < 0.85:
        t.int64_data.extend([2**62, -1])
    else:
        t.string_data.append(b"\xff\xfe")


def external_data(rng: random.Random, model: onnx.ModelProto) -> None:
    """Point a stored tensor at an external file: escapes, missing files, bad offsets and lengths."""
    tensors = _tensors(model)
    if not tensors:
        return
    t = rng.choice(tensors)
    if t.data_location != TensorProto.EXTERNAL:
        t.ClearField("raw_data")
        t.ClearField("float_data")
        t.ClearField("int64_data")
        t.data_location = TensorProto.EXTERNAL
        del t.external_data[:]
        t.external_data.add(key="location", value="weights.bin")
    entries = {e.key: e for e in t.external_data}
    roll = rng.random()
    if roll < 0.5 and "location" in entries:
        entries["location"].value = rng.choice(LOCATIONS)
    elif roll < 0.75:
        key = rng.choice(["offset", "length"])
        value = str(rng.choice([-1, 0, 3, 2**31, 2**40, 2**63 - 1])) if rng.random() < 0.9 else "ten"
        if key in entries:
            entries[key].value = value
        else:
            t.external_data.add(key=key, value=value)
    else:
        t.external_data.add(key=rng.choice(["location", "checksum", "bogus"]), value="../outside.bin")


def odd_values(rng: random.Random, model: onnx.ModelProto) -> None:
    """Valid structure, hostile numbers: NaN, infinities, huge and denormal weights."""
    tensors = [t for t in _tensors(model) if t.data_type == TensorProto.FLOAT and not t.external_data]
    if not tensors:
        return
    t = rng.choice(tensors)
    values = numpy_helper.to_array(t).copy()
    if values.size:
        flat = values.reshape(-1)
        flat[rng.randrange(flat.size)] = rng.choice([float("nan"), float("inf"), -float("inf"), 3e38, 1e-45, 0.0])
        t.CopyFrom(numpy_helper.from_array(values, t.name))


def small_attribute(rng: random.Random, model: onnx.ModelProto) -> None:
    """Change an int attribute to another small value (often still valid: axis, pads, strides, kernel)."""
    attrs = [a for n in _nodes(model) for a in n.attribute if a.type in (AttributeProto.INT, AttributeProto.INTS)]
    if not attrs:
        return
    attr = rng.choice(attrs)
    if attr.type == AttributeProto.INT:
        attr.i = rng.randint(-3, 4)
    elif attr.ints:
        attr.ints[rng.randrange(len(attr.ints))] = rng.randint(-2, 5)


def input_dims(rng: random.Random, model: onnx.ModelProto) -> None:
    """Change a graph input's shape to another plausible one (other sizes, a symbol, another rank)."""
    inputs = [v for v in model.graph.input if v.type.tensor_type.HasField("shape")]
    if not inputs:
        return
    shape = rng.choice(inputs).type.tensor_type.shape
    roll = rng.random()
    if roll < 0.5 and shape.dim:
        shape.dim[rng.randrange(len(shape.dim))].dim_value = rng.randint(1, 7)
    elif roll < 0.7 and shape.dim:
        shape.dim[rng.randrange(len(shape.dim))].dim_param = rng.choice(["N", "batch", "?"])
    elif roll < 0.85 and shape.dim:
        del shape.dim[-1]
    else:
        shape.dim.add().dim_value = rng.randint(1, 4)


def constant_bomb(rng: random.Random, model: onnx.ModelProto) -> None:
    """Add a ConstantOfShape / Expand / Tile whose declared output is enormous, fed into the graph."""
    huge = [rng.choice([2**20, 2**31, 2**40, -5]) for _ in range(rng.randrange(1, 4))]
    name = f"bomb{rng.randrange(1000)}"
    model.graph.initializer.append(helper.make_tensor(name + "_shape", TensorProto.INT64, [len(huge)], huge))
    op = rng.choice(["ConstantOfShape", "Expand", "Tile", "Reshape"])
    if op == "ConstantOfShape":
        node = helper.make_node(op, [name + "_shape"], [name])
    else:
        data = helper.make_tensor(name + "_one", TensorProto.FLOAT, [1] * len(huge), [1.0])
        model.graph.initializer.append(data)
        node = helper.make_node(op, [name + "_one", name + "_shape"], [name])
    model.graph.node.append(node)
    model.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["d"] * len(huge)))


STRUCTURAL: dict[str, Callable[[random.Random, onnx.ModelProto], None]] = {
    f.__name__: f
    for f in (
        swap_op_types,
        random_op_type,
        swap_inputs,
        swap_attributes,
        bad_dim,
        change_data_type,
        duplicate_outputs,
        rename_edge,
        drop_or_duplicate_node,
        shuffle_or_cycle,
        bad_attribute,
        bad_opset,
        bad_tensor_data,
        external_data,
        odd_values,
        small_attribute,
        input_dims,
        constant_bomb,
    )
} | NAMES | ATTRIBUTES | SHAPES
"""Every structural mutator; names, attributes and shapes come from ``fuzz_mutators_names``."""


# ------------------------------------------------------------------------------------------- bytes


def bit_flips(rng: random.Random, data: bytes) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 3, 8])):
        i = rng.randrange(len(buf))
        buf[i] ^= 1 << rng.randrange(8)
    return bytes(buf)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(len(data))]


def insert_bytes(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data) + 1)
    junk = bytes(rng.choice([0x00, 0xFF, 0x7F, 0x80, rng.randrange(256)]) for _ in range(rng.randint(1, 16)))
    return data[:i] + junk + data[i:]


def delete_bytes(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    return data[:i] + data[i + rng.randint(1, 32) :]


def duplicate_chunk(rng: random.Random, data: bytes) -> bytes:
    i = rng.randrange(len(data))
    chunk = data[i : i + rng.randint(1, 128)]
    j = rng.randrange(len(data) + 1)
    return data[:j] + chunk + data[j:]


def huge_varint(rng: random.Random, data: bytes) -> bytes:
    """Overwrite a byte run with 0xff..: lengths and varints that claim gigabytes."""
    i = rng.randrange(len(data))
    return data[:i] + b"\xff" * rng.randint(1, 9) + b"\x01" + data[i + 1 :]


BYTES: dict[str, Callable[[random.Random, bytes], bytes]] = {
    f.__name__: f for f in (bit_flips, truncate, insert_bytes, delete_bytes, duplicate_chunk, huge_varint)
}


def mutate(
    rng: random.Random, model: onnx.ModelProto, *, only: tuple[str, ...] = ()
) -> tuple[bytes, list[str]]:
    """One to three mutations (structural ones, then maybe byte-level damage); returns bytes and their names.
    ``only`` limits the structural mutators to those names (and turns byte-level damage off)."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    applied: list[str] = []
    names = sorted(only or STRUCTURAL)
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        if only or rng.random() < 0.75:
            name = rng.choice(names)
            try:
                STRUCTURAL[name](rng, work)
            except (ValueError, TypeError, IndexError):  # it does not apply to an already mutated model
                continue
            applied.append(name)
    data = work.SerializeToString().replace(PLACEHOLDER.encode(), INVALID_UTF8)
    if only:
        return data, applied
    if not applied or rng.random() < 0.2:
        name = rng.choice(sorted(BYTES))
        data = BYTES[name](rng, data) if data else data
        applied.append(name)
    return data, applied
