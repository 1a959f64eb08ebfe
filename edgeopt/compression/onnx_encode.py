"""Store shared or binarized weights compactly inside the ONNX graph itself, so any ONNX Runtime still runs it.

A clustered weight ``W = codebook[indices]`` becomes a uint8 initializer of indices plus a float codebook,
decoded by ``DequantizeLinear(indices, 1, 0) → Cast(int64) → Gather(codebook)``; a binarized weight becomes
int8 signs decoded by a per-axis ``DequantizeLinear`` with the channel scales. ONNX Runtime (and onnxslim)
never constant-fold DequantizeLinear, so the file stays small after edgeopt's normalization and the CPU
target's offline optimization; at session load the decode runs once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeopt.compression.cluster import Encoding
from edgeopt.errors import ModelError


def _match(init: np.ndarray, enc: Encoding) -> tuple[np.ndarray, int] | None:
    """The codes laid out like ``init`` and the channel axis, when ``init`` holds ``enc``'s values."""
    if init.shape == enc.values.shape and np.array_equal(init, enc.values):
        return enc.codes, 0
    if init.ndim == 2 and init.shape == enc.values.T.shape and np.array_equal(init, enc.values.T):
        return enc.codes.T, 1
    return None


def _decode_nodes(name: str, enc: Encoding, codes: np.ndarray, axis: int) -> tuple[list, list]:
    """(initializers, nodes) producing tensor ``name`` from its compact form."""
    if enc.kind == "codebook":
        inits = [
            numpy_helper.from_array(np.ascontiguousarray(codes.astype(np.uint8)), f"{name}__codes"),
            numpy_helper.from_array(enc.table.astype(np.float32), f"{name}__codebook"),
            numpy_helper.from_array(np.array(1.0, np.float32), f"{name}__one"),
            numpy_helper.from_array(np.array(0, np.uint8), f"{name}__zero"),
        ]
        nodes = [
            helper.make_node("DequantizeLinear", [f"{name}__codes", f"{name}__one", f"{name}__zero"],
                             [f"{name}__codes_f"], name=f"{name}__decode_dq"),
            helper.make_node("Cast", [f"{name}__codes_f"], [f"{name}__codes_i"], to=TensorProto.INT64,
                             name=f"{name}__decode_cast"),
            helper.make_node("Gather", [f"{name}__codebook", f"{name}__codes_i"], [name], axis=0,
                             name=f"{name}__decode_gather"),
        ]
        return inits, nodes
    channels = codes.shape[axis]
    inits = [
        numpy_helper.from_array(np.ascontiguousarray(codes.astype(np.int8)), f"{name}__signs"),
        numpy_helper.from_array(enc.table.astype(np.float32).reshape(channels), f"{name}__scale"),
        numpy_helper.from_array(np.zeros(channels, np.int8), f"{name}__zero"),
    ]
    nodes = [helper.make_node("DequantizeLinear", [f"{name}__signs", f"{name}__scale", f"{name}__zero"], [name],
                              axis=axis, name=f"{name}__decode_dq")]
    return inits, nodes


def encode_weights(src: Path, dst: Path, encodings: Sequence[Encoding]) -> list[str]:
    """Write ``src`` to ``dst`` with every weight in ``encodings`` stored compactly; return notes.

    Raises ``ModelError`` when a layer's weight is not found in the graph (the export changed it)."""
    model = onnx.load(str(src))
    graph = model.graph
    pending = list(encodings)
    decode_nodes: list[onnx.NodeProto] = []
    kept: list[TensorProto] = []
    for init in graph.initializer:
        array = numpy_helper.to_array(init) if init.data_type == TensorProto.FLOAT else None
        found = None
        if array is not None:
            for enc in pending:
                match = _match(array, enc)
                if match is not None:
                    found = (enc, *match)
                    break
        if found is None:
            kept.append(init)
            continue
        enc, codes, axis = found
        pending.remove(enc)
        inits, nodes = _decode_nodes(init.name, enc, codes, axis)
        kept.extend(inits)
        decode_nodes.extend(nodes)
    if pending:
        raise ModelError(
            f"compact storage: weight of {', '.join(e.layer for e in pending)} not found in the exported graph",
            hint="the exporter changed the weights (e.g. folded them); export without weight folding",
        )
    del graph.initializer[:]
    graph.initializer.extend(kept)
    names = {t.name for t in kept}
    inputs = [i for i in graph.input if i.name not in {n.output[0] for n in decode_nodes} or i.name in names]
    del graph.input[:]
    graph.input.extend(inputs)
    nodes = [*decode_nodes, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    dst.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst))
    kinds = sorted({e.kind for e in encodings})
    return [f"compact storage: {len(encodings)} weight(s) stored as {' and '.join(kinds)} in the ONNX file"]
