"""Static input shapes for a model: the user's ``--input-shape`` applied, remaining dynamic dims fixed.

``fix_where_loadable`` fixes the dims in place, checks the sizes constant folding would allocate, and, when ONNX
Runtime (probed in the isolated worker) refuses the fixed model but loads it with its own dims, keeps those and
returns the fixed shapes as what a deploy feeds. Shapes that contradict the model raise ``InputSpecError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import onnx

from edgeopt.errors import InputSpecError
from edgeopt.graph.inspect import tensor_spec
from edgeopt.graph.model_io import serialized
from edgeopt.graph.safety import check_fold_sizes
from edgeopt.process.isolation import IsolatedWorker
from edgeopt.types import ImportOptions, TensorSpec


def _fmt(shape: tuple[object, ...] | list[object]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def fix_input_shapes(model: onnx.ModelProto, options: ImportOptions, notes: list[str]) -> bool:
    """Apply ``options.input_shapes`` and fix remaining dynamic dims; True when any dim changed."""
    inputs = list(model.graph.input)
    names = [vi.name for vi in inputs]
    given = {k: tuple(int(d) for d in v) for k, v in options.input_shapes.items()}
    if "" in given:
        if len(inputs) != 1:
            raise InputSpecError(
                f"the model has {len(inputs)} inputs ({', '.join(names)}); an unnamed input shape is ambiguous",
                hint="give each input's shape by name: --input-shape NAME=1x3x224x224",
            )
        given.setdefault(names[0], given[""])
        del given[""]
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise InputSpecError(f"the model has no input named {unknown[0]!r}; its inputs are {', '.join(names)}")
    changed = False
    for vi in inputs:
        shape = given.get(vi.name)
        if not vi.type.HasField("tensor_type"):
            if shape is not None:
                raise InputSpecError(f"input {vi.name!r} is not a tensor; it cannot take a shape")
            continue
        tensor_type = vi.type.tensor_type
        if shape is not None:
            if any(d < 1 for d in shape):
                raise InputSpecError(f"input {vi.name!r}: every dimension must be >= 1, given {_fmt(shape)}")
            if tensor_type.HasField("shape"):
                expected = tensor_spec(vi).shape
                clash = len(expected) != len(shape) or any(
                    isinstance(e, int) and e > 0 and e != g for e, g in zip(expected, shape, strict=False)
                )
                if clash:
                    raise InputSpecError(
                        f"input {vi.name!r} expects shape {_fmt(expected)} (rank {len(expected)}), "
                        f"given {_fmt(shape)} (rank {len(shape)})"
                    )
            del tensor_type.shape.dim[:]
            for size in shape:
                tensor_type.shape.dim.add().dim_value = size
            changed = True
        elif not tensor_type.HasField("shape"):
            notes.append(f"input {vi.name} declares no shape; pass --input-shape to fix it")
        else:
            for axis, dim in enumerate(tensor_type.shape.dim):
                if dim.HasField("dim_value") and dim.dim_value >= 0:
                    continue
                label = f" {dim.dim_param!r}" if dim.dim_param else ""
                dim.dim_value = options.dynamic_dim_default
                notes.append(
                    f"input {vi.name} dim {axis}{label} was dynamic; fixed to {options.dynamic_dim_default}, "
                    "pass --input-shape to choose"
                )
                changed = True
    if changed:
        del model.graph.value_info[:]  # stale: re-inferred from the fixed inputs
    return changed


def session_problem(model: onnx.ModelProto, workdir: Path, worker: IsolatedWorker) -> str:
    """Why ONNX Runtime cannot create a session for ``model`` (in the isolated worker), or ``""``."""
    source = serialized(model, workdir)
    return worker.call("edgeopt.graph.safety:session_probe", source, "basic", what="ONNX Runtime")


def fix_where_loadable(model: onnx.ModelProto, options: ImportOptions, notes: list[str], *, workdir: Path,
                        worker: IsolatedWorker) -> tuple[str | None, tuple[TensorSpec, ...]]:
    """Fix ``model``'s input dims in place (``fix_input_shapes``) and check the sizes constant folding would
    allocate (``check_fold_sizes``, before ONNX Runtime ever sees the model). Returns ONNX Runtime's complaint
    about the fixed model when it was probed (else None), and the input specs a deploy feeds when they differ
    from the model's (else ``()``).

    Fixed dims can make a graph invalid that is valid with dynamic ones (an ``If`` whose other branch only
    type-checks for other sizes, e.g. a sample-rate switch around an LSTM): when ONNX Runtime refuses the fixed
    model but loads it with its own dims, those are restored, with a note, and the fixed specs are returned as
    what the deploy feeds."""
    own_inputs = [_copy(vi) for vi in model.graph.input]
    own_value_info = [_copy(vi) for vi in model.graph.value_info]
    fixed_notes: list[str] = []
    changed = fix_input_shapes(model, options, fixed_notes)
    check_fold_sizes(model, options=options)  # before ONNX Runtime folds constants, in the worker or in onnxslim
    if not changed:
        notes.extend(fixed_notes)
        return None, ()
    problem = session_problem(model, workdir, worker)
    if not problem:
        notes.extend(fixed_notes)
        return problem, ()
    fed = tuple(tensor_spec(vi) for vi in model.graph.input)
    _set_repeated(model.graph.input, own_inputs)
    _set_repeated(model.graph.value_info, own_value_info)
    if session_problem(model, workdir, worker):
        fix_input_shapes(model, options, [])  # neither loads: keep the fixed dims and report that problem
        notes.extend(fixed_notes)
        return problem, ()
    notes.append(f"ONNX Runtime cannot load the model with its input dims fixed ({problem}); the model keeps "
                 "its own dynamic dims and is fed the fixed shapes")
    return "", fed


def _copy(vi: onnx.ValueInfoProto) -> onnx.ValueInfoProto:
    out = onnx.ValueInfoProto()
    out.CopyFrom(vi)
    return out


def _set_repeated(field: Any, items: list[onnx.ValueInfoProto]) -> None:
    del field[:]
    field.extend(items)
