"""Tiny stateful ONNX models for the streaming tests, built with onnx.helper (no export, no download).

``recurrent_cell`` is laid out like a streaming voice-activity detector: an input chunk ``[1, F]``, a recurrent
state ``[2, 1, H]`` (layers first, so it has no batch axis at 0) and a sample-rate scalar the graph compares
with 16000; it returns ``output [1, OUT]`` and the next state ``stateN [2, 1, H]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F, H, OUT = 6, 8, 4
RATE = 16000


def _weights(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "W": (rng.standard_normal((F, H)) * 0.6).astype(np.float32),
        "U": (rng.standard_normal((H, H)) * 0.9).astype(np.float32),
        "V": (rng.standard_normal((H, OUT)) * 0.8).astype(np.float32),
        "b": (rng.standard_normal(H) * 0.1).astype(np.float32),
    }


def recurrent_cell(
    path: Path,
    *,
    ignore_state: bool = False,
    names: tuple[str, str] = ("state", "stateN"),
    with_rate: bool = True,
    seed: int = 0,
) -> Path:
    """Save the cell at ``path``. ``ignore_state``: the same weights, but the state input is never read (the
    previous hidden state is taken as zeros): right on a fresh stream, wrong on every later step.

    h = tanh(x W + h_prev U + b) * g, c = 0.5 c_prev + h, output = h V, stateN = [h; c]; g is 1 when
    ``sr == 16000`` else 0.5.
    """
    state_in, state_out = names
    w = _weights(seed)
    inits = [numpy_helper.from_array(v, k) for k, v in w.items()]
    inits += [
        numpy_helper.from_array(np.array([0], np.int64), "i0"),
        numpy_helper.from_array(np.array([1], np.int64), "i1"),
        numpy_helper.from_array(np.array([2], np.int64), "i2"),
        numpy_helper.from_array(np.array([0], np.int64), "ax0"),
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array(RATE, np.int64), "rate"),
        numpy_helper.from_array(np.zeros((1, H), np.float32), "zeros"),
    ]
    nodes = [
        helper.make_node("Slice", [state_in, "i0", "i1", "ax0"], ["h3"]),
        helper.make_node("Slice", [state_in, "i1", "i2", "ax0"], ["c3"]),
        helper.make_node("Squeeze", ["h3", "ax0"], ["h_read"]),
        helper.make_node("Squeeze", ["c3", "ax0"], ["c_prev"]),
        helper.make_node("Identity", ["zeros" if ignore_state else "h_read"], ["h_prev"]),
        helper.make_node("MatMul", ["x", "W"], ["xw"]),
        helper.make_node("MatMul", ["h_prev", "U"], ["hu"]),
        helper.make_node("Add", ["xw", "hu"], ["s1"]),
        helper.make_node("Add", ["s1", "b"], ["s2"]),
        helper.make_node("Tanh", ["s2"], ["t"]),
    ]
    if with_rate:
        nodes += [
            helper.make_node("Equal", ["sr", "rate"], ["is_rate"]),
            helper.make_node("Where", ["is_rate", "one", "half"], ["gain"]),
            helper.make_node("Mul", ["t", "gain"], ["h"]),
        ]
    else:
        nodes.append(helper.make_node("Identity", ["t"], ["h"]))
    nodes += [
        helper.make_node("Mul", ["c_prev", "half"], ["c_half"]),
        helper.make_node("Add", ["c_half", "h"], ["c"]),
        helper.make_node("MatMul", ["h", "V"], ["output"]),
        helper.make_node("Unsqueeze", ["h", "ax0"], ["h_out"]),
        helper.make_node("Unsqueeze", ["c", "ax0"], ["c_out"]),
        helper.make_node("Concat", ["h_out", "c_out"], [state_out], axis=0),
    ]
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, F]),
        helper.make_tensor_value_info(state_in, TensorProto.FLOAT, [2, 1, H]),
    ]
    if with_rate:
        inputs.append(helper.make_tensor_value_info("sr", TensorProto.INT64, []))
    graph = helper.make_graph(
        nodes, "cell", inputs,
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, OUT]),
         helper.make_tensor_value_info(state_out, TensorProto.FLOAT, [2, 1, H])],
        initializer=inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def stream_data(path: Path, *, steps: int = 24, seed: int = 1, with_rate: bool = True) -> Path:
    """An .npz stream for ``recurrent_cell``: ``x`` (steps, F) chunks with bursts and quiet stretches, ``sr``
    (steps,) at 16000; the state is left out (it starts from zeros)."""
    rng = np.random.default_rng(seed)
    envelope = np.where((np.arange(steps) // 6) % 2 == 0, 1.0, 0.1)[:, None]
    arrays = {"x": (rng.standard_normal((steps, F)) * envelope).astype(np.float32)}
    if with_rate:
        arrays["sr"] = np.full(steps, RATE, np.int64)
    np.savez(path, **arrays)
    return path
