"""Write small ``.tflite`` flatbuffers with the schema that ships in ai-edge-litert, for tests that must not need
the converter. Only the structure the compatibility report reads is written (op codes, tensors, constant
buffers, a few builtin options); the models are not meant to run."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

TYPES = {"float32": 0, "int32": 2, "uint8": 3, "int64": 4, "int8": 9}


@dataclass
class Spec:
    """One tensor: name, dtype, shape; ``value`` makes it a constant; ``dynamic`` writes -1 in its signature."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    value: np.ndarray | None = None
    dynamic: bool = False


@dataclass
class OpSpec:
    op: str
    inputs: list[str]
    outputs: list[str]
    options: dict = field(default_factory=dict)


def write_tflite(path: Path, tensors: list[Spec], ops: list[OpSpec], inputs: list[str], outputs: list[str]) -> Path:
    """Write the model to ``path`` and return it."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    index = {t.name: i for i, t in enumerate(tensors)}
    buffers = [s.BufferT()]
    tensor_objs = []
    for t in tensors:
        obj = s.TensorT()
        obj.name, obj.type, obj.shape = t.name, TYPES[t.dtype], list(t.shape)
        obj.shapeSignature = [-1, *t.shape[1:]] if t.dynamic else list(t.shape)
        if t.value is not None:
            buf = s.BufferT()
            buf.data = list(np.ascontiguousarray(t.value, dtype=t.dtype).tobytes())
            buffers.append(buf)
            obj.buffer = len(buffers) - 1
        tensor_objs.append(obj)
    codes: list[str] = []
    op_objs = []
    for op in ops:
        if op.op not in codes:
            codes.append(op.op)
        obj = s.OperatorT()
        obj.opcodeIndex = codes.index(op.op)
        obj.inputs = [index[n] for n in op.inputs]
        obj.outputs = [index[n] for n in op.outputs]
        if op.op in ("CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "MAX_POOL_2D"):
            kind = {"CONV_2D": "Conv2D", "DEPTHWISE_CONV_2D": "DepthwiseConv2D"}.get(op.op, "Pool2D")
            options = getattr(s, f"{kind}OptionsT")()
            for key, value in op.options.items():
                setattr(options, key, value)
            obj.builtinOptionsType = getattr(s.BuiltinOptions, f"{kind}Options")
            obj.builtinOptions = options
        op_objs.append(obj)
    code_objs = []
    for name in codes:
        code = s.OperatorCodeT()
        value = getattr(s.BuiltinOperator, name)
        code.builtinCode, code.deprecatedBuiltinCode = value, min(value, 127)
        code_objs.append(code)
    graph = s.SubGraphT()
    graph.tensors, graph.operators = tensor_objs, op_objs
    graph.inputs, graph.outputs = [index[n] for n in inputs], [index[n] for n in outputs]
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, code_objs, [graph], buffers
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    Path(path).write_bytes(bytes(builder.Output()))
    return Path(path)


def int8_conv_net(path: Path, *, tail: str = "FULLY_CONNECTED", dynamic: bool = False) -> Path:
    """int8 [1,8,8,3] → CONV_2D(3→4, 3x3) → RESHAPE [1,256] → ``tail`` → [1,10] (int8, or float for SOFTMAX)."""
    rng = np.random.default_rng(0)
    tensors = [
        Spec("x", "int8", (1, 8, 8, 3), dynamic=dynamic),
        Spec("w", "int8", (4, 3, 3, 3), rng.integers(-5, 5, (4, 3, 3, 3))),
        Spec("b", "int32", (4,), np.zeros(4)),
        Spec("c", "int8", (1, 8, 8, 4)),
        Spec("shape", "int32", (2,), np.array([1, 256])),
        Spec("r", "int8", (1, 256)),
        Spec("fw", "int8", (10, 256), rng.integers(-5, 5, (10, 256))),
        Spec("fb", "int32", (10,), np.zeros(10)),
        Spec("y", "int8", (1, 10)),
    ]
    ops = [OpSpec("CONV_2D", ["x", "w", "b"], ["c"], {"dilationHFactor": 1, "dilationWFactor": 1}),
           OpSpec("RESHAPE", ["c", "shape"], ["r"])]
    if tail == "FULLY_CONNECTED":
        ops.append(OpSpec("FULLY_CONNECTED", ["r", "fw", "fb"], ["y"]))
    else:
        tensors[-1] = Spec("y", "float32", (1, 256))
        ops.append(OpSpec(tail, ["r"], ["y"]))
    return write_tflite(path, tensors, ops, ["x"], ["y"])
