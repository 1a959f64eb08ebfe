"""Opset housekeeping of a model: which ai.onnx opset it uses, tidy opset imports, upgrade to a target opset.

``upgrade_opset`` converts with ``onnx.version_converter`` and raises ``UnsupportedModelError`` naming the op that
does not convert; per-channel PRelu slopes are reshaped first so they keep their meaning (a note says so).
"""

from __future__ import annotations

import onnx
from onnx import version_converter

from edgeopt.errors import UnsupportedModelError
from edgeopt.graph.inspect import real_inputs
from edgeopt.graph.legacy_ops import per_channel_prelu_slopes
from edgeopt.graph.model_io import first_line

DEFAULT_DOMAINS = ("", "ai.onnx")
"""The domain names of the default (ai.onnx) operator set."""


def onnx_opset(model: onnx.ModelProto) -> int | None:
    versions = [o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS]
    return max(versions) if versions else None


def tidy_imports(model: onnx.ModelProto) -> None:
    """Drop initializers from graph.input, merge duplicate opset imports, raise IR to what they need."""
    inputs = real_inputs(model.graph)
    if len(inputs) != len(model.graph.input):
        del model.graph.input[:]
        model.graph.input.extend(inputs)
    versions: dict[str, int] = {}
    for entry in model.opset_import:
        domain = "" if entry.domain == "ai.onnx" else entry.domain
        versions[domain] = max(versions.get(domain, 0), entry.version)
    del model.opset_import[:]
    model.opset_import.extend(onnx.helper.make_opsetid(d, v) for d, v in versions.items())
    needed = onnx.helper.find_min_ir_version_for(list(model.opset_import), ignore_unknown=True)
    model.ir_version = max(model.ir_version, needed, 4)


def _failing_op(model: onnx.ModelProto, target: int, exc: BaseException) -> str:
    ops = sorted({n.op_type for n in model.graph.node if n.domain in DEFAULT_DOMAINS}, key=len, reverse=True)
    removed = []
    for op in ops:
        try:
            onnx.defs.get_schema(op, target, "")
        except onnx.defs.SchemaError:
            removed.append(op)
    if removed:
        return f"op {', '.join(sorted(removed))} does not exist in opset {target}"
    named = next((op for op in ops if op in str(exc)), None)
    return f"op {named} failed to convert" if named else first_line(exc)


def upgrade_opset(model: onnx.ModelProto, target: int, notes: list[str]) -> onnx.ModelProto:
    current = onnx_opset(model)
    if current is None:  # e.g. a pure ai.onnx.ml model: import the default domain at the target
        model.opset_import.append(onnx.helper.make_opsetid("", target))
        return model
    if current >= target:
        return model
    if prelus := per_channel_prelu_slopes(model, current):
        notes.append(f"{prelus} per-channel PRelu slope(s) reshaped to keep their opset-{current} meaning")
    try:
        converted = version_converter.convert_version(model, target)
    except Exception as exc:  # the C++ converter raises bare RuntimeError/IndexError
        raise UnsupportedModelError(
            f"cannot upgrade the model from opset {current} to {target}: {_failing_op(model, target, exc)}",
            hint=f"export the model again with opset_version={target} or newer",
        ) from exc
    tidy_imports(converted)
    return converted
