"""Read a ``.tflite`` file's main subgraph as plain data: ops in execution order, tensors, constants, FLOPs.

Parsed with the flatbuffer schema that ships in ``ai-edge-litert`` (``schema_py_generated``), so no
interpreter is built and nothing runs: a model that the runtime could not allocate is still described.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_NUMPY = {"FLOAT32": "float32", "FLOAT16": "float16", "FLOAT64": "float64", "INT32": "int32", "UINT8": "uint8",
          "INT64": "int64", "BOOL": "bool", "INT16": "int16", "INT8": "int8", "UINT32": "uint32", "UINT16": "uint16",
          "INT4": "int4", "STRING": "string", "COMPLEX64": "complex64"}
_ACTIVATIONS = {0: "", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


@dataclass(frozen=True)
class TfliteTensor:
    index: int
    name: str
    dtype: str
    """numpy-style name: ``int8``, ``float32``..."""
    shape: tuple[int, ...]
    dynamic: bool
    """Some dimension is ``-1`` in the shape signature."""
    constant: bool
    """Backed by a non-empty buffer (weights, biases, shape operands)."""
    value: np.ndarray | None = field(default=None, compare=False)
    """The data of small integer constants (axes, paddings, strides); None otherwise."""


@dataclass(frozen=True)
class TfliteOp:
    index: int
    name: str
    """Builtin op name (``CONV_2D``) or ``CUSTOM:<code>``."""
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict[str, Any]
    fused_activation: str = ""
    flops: float = 0.0


@dataclass(frozen=True)
class TfliteGraph:
    ops: tuple[TfliteOp, ...]
    tensors: tuple[TfliteTensor, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]

    def tensor(self, index: int) -> TfliteTensor:
        return self.tensors[index]


def _schema() -> Any:
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def _op_name(schema: Any, code: Any) -> str:
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    builtin = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    if names.get(builtin) == "CUSTOM":
        custom = code.customCode.decode() if isinstance(code.customCode, bytes) else str(code.customCode)
        return f"CUSTOM:{custom}"
    return names.get(builtin, f"BUILTIN_{builtin}")


def _flops(name: str, op_inputs: list[TfliteTensor], out: TfliteTensor | None) -> float:
    """Multiply-adds x 2 for conv/FC/matmul from the tensor shapes; one op per output element otherwise."""
    if out is None:
        return 0.0
    out_elems = math.prod(out.shape) if out.shape else 1
    weights = op_inputs[1] if len(op_inputs) > 1 else None
    if name == "CONV_2D" and weights is not None and len(weights.shape) == 4:
        _, kh, kw, cin = weights.shape
        return 2.0 * out_elems * kh * kw * cin
    if name == "DEPTHWISE_CONV_2D" and weights is not None and len(weights.shape) == 4:
        return 2.0 * out_elems * weights.shape[1] * weights.shape[2]
    if name == "FULLY_CONNECTED" and weights is not None and len(weights.shape) == 2:
        return 2.0 * out_elems * weights.shape[1]
    if name == "TRANSPOSE_CONV" and len(op_inputs) > 2 and len(op_inputs[1].shape) == 4:
        _, kh, kw, _ = op_inputs[1].shape
        return 2.0 * math.prod(op_inputs[2].shape) * kh * kw * op_inputs[1].shape[0]
    if name == "BATCH_MATMUL" and op_inputs and len(op_inputs[0].shape) >= 2:
        return 2.0 * out_elems * op_inputs[0].shape[-1]
    return float(out_elems)


def _buffer_bytes(buffer: Any, file: bytes, *, limit: int = 4096) -> bytes | None:
    """A constant buffer's bytes (up to ``limit``; enough to tell it is non-empty), inline or stored after the
    flatbuffer at ``offset``/``size`` (what ai-edge-quantizer writes); None for an empty buffer."""
    if buffer.data is not None and len(buffer.data):
        return bytes(bytearray(buffer.data[:limit])) if len(buffer.data) > limit else bytes(bytearray(buffer.data))
    if buffer.offset > 1 and buffer.size > 0:
        return file[buffer.offset : buffer.offset + min(buffer.size, limit)] if buffer.size > limit else \
            file[buffer.offset : buffer.offset + buffer.size]
    return None


def read_tflite(path: Path) -> TfliteGraph:
    """Parse ``path``; ``ValueError`` when it is not a TFLite flatbuffer."""
    schema = _schema()
    data = Path(path).read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ValueError(f"{Path(path).name} is not a TFLite flatbuffer (no TFL3 identifier)")
    model = schema.ModelT.InitFromPackedBuf(data, 0)
    if not model.subgraphs:
        raise ValueError(f"{Path(path).name} holds no subgraph")
    graph = model.subgraphs[0]
    type_names = {v: k for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    tensors = []
    for i, t in enumerate(graph.tensors):
        dtype = _NUMPY.get(type_names.get(t.type, ""), type_names.get(t.type, "unknown").lower())
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        signature = tuple(int(d) for d in (t.shapeSignature if t.shapeSignature is not None else ()))
        raw = _buffer_bytes(model.buffers[t.buffer], data) if 0 < t.buffer < len(model.buffers) else None
        constant = raw is not None and len(raw) > 0
        value = None
        if constant and dtype in ("int32", "int64") and len(raw) == math.prod(shape) * np.dtype(dtype).itemsize:
            value = np.frombuffer(raw, dtype=dtype).reshape(shape or (-1,))  # small operands only (read whole)
        name = t.name.decode() if isinstance(t.name, bytes) else str(t.name)
        tensors.append(TfliteTensor(i, name, dtype, shape, any(d < 0 for d in signature), constant, value))
    ops = []
    for i, op in enumerate(graph.operators or []):
        name = _op_name(schema, model.operatorCodes[op.opcodeIndex])
        ins = tuple(int(x) for x in (op.inputs if op.inputs is not None else ()) if x >= 0)
        outs = tuple(int(x) for x in (op.outputs if op.outputs is not None else ()) if x >= 0)
        options = dict(vars(op.builtinOptions)) if op.builtinOptions is not None else {}
        activation = _ACTIVATIONS.get(int(options.get("fusedActivationFunction", 0) or 0), "")
        flops = _flops(name, [tensors[x] for x in ins], tensors[outs[0]] if outs else None)
        ops.append(TfliteOp(i, name, ins, outs, options, activation, flops))
    return TfliteGraph(tuple(ops), tuple(tensors), tuple(graph.inputs), tuple(graph.outputs))
