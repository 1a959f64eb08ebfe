"""Canonical forms the normalized graph takes, so converters downstream meet one spelling of each construct."""

from __future__ import annotations

from typing import Any


def plain_reshapes(model: Any) -> int:
    """Set ``allowzero=0`` on Reshapes whose constant target shape holds no 0 (the attribute then changes
    nothing, and converters such as onnx2torch refuse ``allowzero=1``); return how many changed."""
    from onnx import numpy_helper

    from edgeopt.graph.inspect import constant_values

    constants = constant_values(model.graph)
    changed = 0
    for node in model.graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2 or node.input[1] not in constants:
            continue
        for attr in node.attribute:
            if attr.name == "allowzero" and attr.i == 1 and 0 not in numpy_helper.to_array(constants[node.input[1]]):
                attr.i = 0
                changed += 1
    return changed
