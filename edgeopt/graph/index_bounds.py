"""Integer graph inputs used as indices into a constant table, and the table sizes that bound them.

Synthetic data must stay inside those bounds: a token id past an embedding table's rows makes ONNX Runtime
refuse the run (``Gather``: indices out of data bounds), which says nothing about the model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PASS_THROUGH = ("Cast", "Identity", "Unsqueeze", "Squeeze", "Reshape", "Flatten", "Expand", "Transpose")
"""Ops that move integer values without changing them (their data input is input 0)."""
_INDEX_INPUT = {"Gather": 1, "GatherElements": 1, "OneHot": 0}
"""Op type -> which of its inputs holds the indices (bounded by input 0's size; for ``OneHot``, by its depth)."""


def index_limits(model_path: Path) -> dict[str, int]:
    """For each graph input used (directly or through ``PASS_THROUGH`` ops) as the indices of a ``Gather``
    or ``GatherElements`` on a constant table, or of a ``OneHot`` with a constant depth: the exclusive upper
    bound its values must stay under (the smallest over its uses). Weights are not loaded.
    """
    import onnx

    from edgeopt.graph.inspect import constant_values

    model = onnx.load(str(model_path), load_external_data=False)
    graph = model.graph
    values = constant_values(graph)
    shapes = {name: tuple(tensor.dims) for name, tensor in values.items()}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for position, name in enumerate(node.input):
            consumers.setdefault(name, []).append((node, position))
    limits: dict[str, int] = {}
    for graph_input in graph.input:
        if graph_input.name in shapes:
            continue  # an initializer listed as an input (old exporters): not data
        bound = _bound(graph_input.name, consumers, shapes, values, seen=set())
        if bound is not None:
            limits[graph_input.name] = bound
    return limits


def _bound(name: str, consumers: dict, shapes: dict, values: dict, *, seen: set[str]) -> int | None:
    if name in seen:
        return None
    seen.add(name)
    found: list[int] = []
    for node, position in consumers.get(name, ()):
        if node.op_type in PASS_THROUGH and position == 0:
            bound = _bound(node.output[0], consumers, shapes, values, seen=seen)
        elif _INDEX_INPUT.get(node.op_type) == position:
            bound = _table_size(node, shapes, values)
        else:
            bound = None
        if bound is not None and bound > 0:
            found.append(bound)
    return min(found) if found else None


def _table_size(node: Any, shapes: dict, values: dict) -> int | None:
    """Rows of the indexed constant along the op's axis (``OneHot``: its constant depth)."""
    from onnx import numpy_helper

    if node.op_type == "OneHot":
        depth = values.get(node.input[1]) if len(node.input) > 1 else None
        return int(numpy_helper.to_array(depth).reshape(-1)[0]) if depth is not None else None
    table = shapes.get(node.input[0])
    if not table:
        return None
    axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
    return table[axis] if -len(table) <= axis < len(table) else None
