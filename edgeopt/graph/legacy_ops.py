"""Rewrites made before the onnx version converter, for opset semantics it does not carry across.

``PRelu`` before opset 7 applies a 1-D slope of size C along axis 1 (one slope per channel); from opset 7
the slope broadcasts numpy-style, from the last axis. The converter keeps the slope as it is, so a
per-channel PRelu on an N-d input either fails in the runtime or, where C equals the last dimension,
silently computes something else. The slope is reshaped to ``[C, 1, ..., 1]``, which means the same in
both opsets.
"""

from __future__ import annotations

from typing import Any

from edgeopt.errors import UnsupportedModelError

PER_CHANNEL_PRELU_UNTIL = 7
"""First default-domain opset whose PRelu broadcasts its slope numpy-style."""


def per_channel_prelu_slopes(model: Any, opset: int) -> int:
    """Reshape, in place, the 1-D per-channel slopes of ``model``'s PRelu nodes on inputs of rank > 2 when
    ``opset`` (the model's default-domain opset) predates numpy-style broadcasting; return how many changed.

    Raises ``UnsupportedModelError`` for a per-channel slope that is not a constant (an initializer or a
    Constant node), or whose input rank cannot be inferred: its meaning after an upgrade could not be kept.
    """
    from onnx import numpy_helper

    from edgeopt.graph.inspect import constant_values

    if opset >= PER_CHANNEL_PRELU_UNTIL:
        return 0
    prelus = [n for n in model.graph.node if n.op_type == "PRelu" and n.domain in ("", "ai.onnx")]
    if not prelus:
        return 0
    ranks = _ranks(model)
    constants = constant_values(model.graph)
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for name in node.input:
            readers[name] = readers.get(name, 0) + 1
    changed = 0
    for node in prelus:
        slope_name = node.input[1]
        tensor = constants.get(slope_name)
        if tensor is None:
            raise UnsupportedModelError(
                f"PRelu {node.name or node.output[0]!r} (opset {opset}) takes its slope from a computed tensor: "
                f"its per-channel meaning cannot be kept through the upgrade to opset {PER_CHANNEL_PRELU_UNTIL}+",
                hint="export the model again with opset_version=7 or newer",
            )
        slope = numpy_helper.to_array(tensor)
        if slope.ndim != 1 or slope.size == 1:
            continue
        rank = ranks.get(node.input[0])
        if rank is None:
            raise UnsupportedModelError(
                f"PRelu {node.name or node.output[0]!r} (opset {opset}) has a per-channel slope and an input of "
                "unknown rank: its meaning cannot be kept through the upgrade",
                hint="export the model again with opset_version=7 or newer, or give --input-shape",
            )
        if rank <= 2:
            continue  # [N, C]: the last axis is the channel axis, same meaning in both opsets
        per_channel = slope.reshape(slope.size, *([1] * (rank - 2)))
        if readers[slope_name] == 1:  # the initializer or the Constant node's value, edited where it is
            tensor.CopyFrom(numpy_helper.from_array(per_channel, tensor.name))
        else:
            copy_name = f"{slope_name}__per_channel{rank}"
            if copy_name not in constants:
                model.graph.initializer.append(numpy_helper.from_array(per_channel, copy_name))
                constants[copy_name] = model.graph.initializer[-1]
            node.input[1] = copy_name
        changed += 1
    return changed


def _ranks(model: Any) -> dict[str, int]:
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    ranks = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            ranks[vi.name] = len(vi.type.tensor_type.shape.dim)
    return ranks
