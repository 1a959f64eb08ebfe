"""What the converter routes share, run in the converter toolchain (onnx only, no edgeopt).

``RouteFailure`` is how a route says it could not build a model; ``prepare_for_onnx2torch`` rewrites what
onnx2torch 1.5 refuses or misreads into equivalent ONNX, without changing what any node computes;
``first_node`` finds the node a converter's message names.
"""

from __future__ import annotations


def sibling(name: str):  # noqa: ANN201 - a module
    """The module ``name`` beside this file: ``edgeopt_edgetpu.<name>`` when imported as part of the package,
    else the one the worker loaded by path (``convert_worker.load_siblings`` registers them by plain name)."""
    import importlib

    return importlib.import_module(f"{__package__}.{name}" if __package__ else name)


class RouteFailure(Exception):
    """A route could not build the model: the ``stage`` that failed, the converter's message (first line), the
    first failing ONNX ``node`` and its ``op`` when known, and a ``kind`` (``unsupported-op``,
    ``data-dependent-shape``, ``mismatch``, ``unavailable`` or empty)."""

    def __init__(self, stage: str, message: str, *, node: str = "", op: str = "", kind: str = "") -> None:
        super().__init__(message)
        self.stage, self.node, self.op, self.kind = stage, node, op, kind

    def to_dict(self, route: str) -> dict:
        return {"route": route, "stage": self.stage, "error": str(self), "node": self.node, "op": self.op,
                "kind": self.kind}

ONNX2TORCH_OPSET = 17
"""The newest default-domain opset onnx2torch 1.5 converts completely (it lacks e.g. ReduceMean-18)."""
_REDUCE_OPS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
               "ReduceLogSumExp", "ReduceSumSquare")


def prepare_for_onnx2torch(model):  # noqa: ANN001, ANN201 - onnx.ModelProto
    """Make the graph convertible by onnx2torch without changing what any node computes.

    Reshape's ``allowzero=1`` (which onnx2torch refuses) is dropped where the constant shape has no 0;
    trailing empty inputs (omitted optionals, e.g. ``Clip(x, min, "")``, which onnx2torch looks up as a
    tensor named ``""``) are removed.
    For opset >= 18: Reduce ops whose ``axes`` input is an initializer get it back as an attribute (and
    lose ``noop_with_empty_axes=0``, the old behaviour); then, only if every node's schema is the same
    at 17 as at the graph's opset, the graph is declared opset 17. Returns ``(model, note or None)``;
    the model on disk is never changed.
    """
    import onnx
    from onnx import defs, helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:  # allowzero=1 (torch's exporter) means nothing when no dim of the shape is 0
        if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in inits:
            allow = next((a for a in node.attribute if a.name == "allowzero"), None)
            if allow is not None and allow.i == 1 and 0 not in numpy_helper.to_array(inits[node.input[1]]).tolist():
                node.attribute.remove(allow)
    for node in model.graph.node:  # a trailing "" is an omitted optional input; onnx2torch reads it as a name
        while len(node.input) and not node.input[-1]:
            del node.input[-1]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset <= ONNX2TORCH_OPSET:
        return model, None
    for node in model.graph.node:
        noop = next((a.i for a in node.attribute if a.name == "noop_with_empty_axes"), 0)
        if node.op_type not in _REDUCE_OPS or noop:
            continue
        if len(node.input) > 1 and node.input[1] in inits:
            axes = [int(a) for a in numpy_helper.to_array(inits[node.input[1]]).reshape(-1)]
            del node.input[1]
            node.attribute.append(helper.make_attribute("axes", axes))
        elif len(node.input) > 1 and node.input[1]:
            continue  # computed axes: leave it, the schema check below keeps the opset
        kept = [a for a in node.attribute if a.name != "noop_with_empty_axes"]
        del node.attribute[:]
        node.attribute.extend(kept)

    def since(op: str, version: int) -> int:
        return defs.get_schema(op, version).since_version

    def unchanged(node) -> bool:  # noqa: ANN001
        if node.domain not in ("", "ai.onnx"):
            return True
        if node.op_type in _REDUCE_OPS:
            return (len(node.input) < 2 or not node.input[1]) and not any(
                a.name == "noop_with_empty_axes" for a in node.attribute)
        return since(node.op_type, opset) == since(node.op_type, ONNX2TORCH_OPSET)

    changed = sorted({n.op_type for n in model.graph.node if not unchanged(n)})
    if changed:
        return model, f"graph kept at opset {opset} for onnx2torch: {', '.join(changed)} changed after opset 17"
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = ONNX2TORCH_OPSET
    return model, f"graph expressed at opset {ONNX2TORCH_OPSET} for onnx2torch (from {opset}; no node changes meaning)"



def first_node(model, *, op_type: str = "", name: str = "") -> tuple[str, str] | None:  # noqa: ANN001
    """``(node name, op type)`` of the first node of ``op_type`` or the node called ``name`` (onnx2torch module
    paths write the name's dots as slashes), or None."""
    for node in model.graph.node:
        if (op_type and node.op_type == op_type) or (name and name in (node.name, node.name.replace(".", "/"))):
            return node.name, node.op_type
    return None
