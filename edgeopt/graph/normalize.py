"""Load ONNX models safely and normalize them into a Graph; fingerprints; inspection re-exported.

``load_onnx`` treats the file as untrusted data (see ``edgeopt.graph.safety``). ``normalize`` turns
any ModelProto into the Graph invariants of ``edgeopt.types.Graph``: initializers out of the graph
inputs, full ``onnx.checker`` pass, ai.onnx opset >= ``options.opset``, static input shapes,
simplified (onnxslim), shapes inferred, written to ``workdir/model.onnx`` and fingerprinted.

Native code can crash on a malformed model, so three steps run in one ``edgeopt.process.isolation`` worker
process per ``normalize``: the checker pass over the caller's model, an ONNX Runtime session over the
model onnxslim is about to fold (onnxslim runs ORT in this process), and the final probe (checker
plus a session) over the written model. The steps in this process only see a checked model.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import onnx
from google.protobuf.message import DecodeError
from onnx import shape_inference, version_converter
from onnx.external_data_helper import load_external_data_for_model

from edgeopt.errors import InputSpecError, ModelError, OutputPathError, UnsupportedModelError
from edgeopt.graph.canonical import plain_reshapes
from edgeopt.graph.inspect import (
    GraphSummary,
    inspect_model,
    real_inputs,
    tensor_nbytes,
    tensor_spec,
    weight_tensors,
)
from edgeopt.graph.legacy_ops import per_channel_prelu_slopes
from edgeopt.graph.safety import (
    check_fold_sizes,
    check_model_file,
    check_untrusted,
    external_tensors,
    load_external_data,
    refuse_if_archive,
    with_env_limits,
)
from edgeopt.hashing import sha256_file
from edgeopt.process.isolation import IsolatedWorker
from edgeopt.types import Graph, ImportOptions, TensorSpec

__all__ = [
    "DATA_FILE",
    "MODEL_FILE",
    "GraphSummary",
    "inspect_model",
    "load_model",
    "load_onnx",
    "normalize",
]

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
LARGE_MODEL_BYTES = int(1.8 * 1024**3)
"""Models larger than this are saved with their weights in ``DATA_FILE`` (protobuf caps at 2 GiB)."""
_DEFAULT_DOMAINS = ("", "ai.onnx")




def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_onnx(path: str | os.PathLike[str], *, options: ImportOptions) -> onnx.ModelProto:
    """Parse an ONNX file as untrusted data.

    Checks declared tensor sizes against ``options.max_tensor_bytes`` before reading any external
    data, refuses non-standard op domains unless ``options.allow_custom_ops``, and reads external
    data only from inside the model's own folder. Archives and files over protobuf's 2 GiB are
    refused unread. Raises ModelError (or a subclass) with one line.
    """
    path = Path(path)
    options = with_env_limits(options)
    if not path.exists():
        raise ModelError(f"model file {path} not found", hint="check the path (and the current directory)")
    if not path.is_file():
        raise ModelError(f"{path} is not a file", hint="give the path of the .onnx file itself")
    check_model_file(path)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except DecodeError as exc:
        refuse_if_archive(path)
        raise ModelError(f"{path} is not a valid ONNX model (protobuf parse failed: {_first_line(exc)})") from exc
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelError(f"cannot read {path}: {_first_line(exc)}") from exc
    if not model.HasField("graph") or not model.opset_import or not model.graph.node:
        refuse_if_archive(path)
        raise ModelError(f"{path} holds no complete ONNX graph (empty, truncated or not a model file)")
    check_untrusted(model, options=options)
    load_external_data(model, base_dir=path.parent, options=options)
    check_untrusted(model, options=options)
    return model


def _onnx_opset(model: onnx.ModelProto) -> int | None:
    versions = [o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS]
    return max(versions) if versions else None


def _tidy_imports(model: onnx.ModelProto) -> None:
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


def _is_large(model: onnx.ModelProto) -> bool:
    """Whether the model's weights (declared sizes, a cheap proxy for ByteSize) near the protobuf cap."""
    return sum(tensor_nbytes(t) for t in weight_tensors(model)) > LARGE_MODEL_BYTES


def _check(model: onnx.ModelProto, *, workdir: Path, what: str, worker: IsolatedWorker | None = None) -> None:
    """Full ``onnx.checker`` pass, in ``worker`` when given; large models are checked from a scratch copy."""
    if worker is not None:
        worker.call(
            "edgeopt.graph.safety:checker_probe", _serialized(model, workdir, ".check"), what, what="the ONNX checker"
        )
        return
    try:
        if _is_large(model):
            path = _save(model, workdir / ".check", keep_data=True)
            onnx.checker.check_model(str(path), full_check=True)
        else:
            onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ModelError(f"{what} fails the ONNX checker: {_first_line(exc)}") from exc


def _serialized(model: onnx.ModelProto, workdir: Path, scratch: str = ".probe") -> bytes | str:
    """``model`` as bytes for the isolated worker, or the path of a scratch copy when it is too large for that."""
    return str(_save(model, workdir / scratch, keep_data=True)) if _is_large(model) else model.SerializeToString()


def _failing_op(model: onnx.ModelProto, target: int, exc: BaseException) -> str:
    ops = sorted({n.op_type for n in model.graph.node if n.domain in _DEFAULT_DOMAINS}, key=len, reverse=True)
    removed = []
    for op in ops:
        try:
            onnx.defs.get_schema(op, target, "")
        except onnx.defs.SchemaError:
            removed.append(op)
    if removed:
        return f"op {', '.join(sorted(removed))} does not exist in opset {target}"
    named = next((op for op in ops if op in str(exc)), None)
    return f"op {named} failed to convert" if named else _first_line(exc)


def _upgrade_opset(model: onnx.ModelProto, target: int, notes: list[str]) -> onnx.ModelProto:
    current = _onnx_opset(model)
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
    _tidy_imports(converted)
    return converted


def _fmt(shape: tuple[object, ...] | list[object]) -> str:
    return "x".join(str(d) for d in shape) if shape else "scalar"


def _fix_input_shapes(model: onnx.ModelProto, options: ImportOptions, notes: list[str]) -> bool:
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


def _session_problem(model: onnx.ModelProto, workdir: Path, worker: IsolatedWorker) -> str:
    """Why ONNX Runtime cannot create a session for ``model`` (in the isolated worker), or ``""``."""
    source = _serialized(model, workdir)
    return worker.call("edgeopt.graph.safety:session_probe", source, "basic", what="ONNX Runtime")


def _fix_where_loadable(model: onnx.ModelProto, options: ImportOptions, notes: list[str], *, workdir: Path,
                        worker: IsolatedWorker) -> tuple[str | None, tuple[TensorSpec, ...]]:
    """Fix ``model``'s input dims in place (``_fix_input_shapes``) and check the sizes constant folding would
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
    changed = _fix_input_shapes(model, options, fixed_notes)
    check_fold_sizes(model, options=options)  # before ONNX Runtime folds constants, in the worker or in onnxslim
    if not changed:
        notes.extend(fixed_notes)
        return None, ()
    problem = _session_problem(model, workdir, worker)
    if not problem:
        notes.extend(fixed_notes)
        return problem, ()
    fed = tuple(tensor_spec(vi) for vi in model.graph.input)
    _set_repeated(model.graph.input, own_inputs)
    _set_repeated(model.graph.value_info, own_value_info)
    if _session_problem(model, workdir, worker):
        _fix_input_shapes(model, options, [])  # neither loads: keep the fixed dims and report that problem
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


@contextlib.contextmanager
def _tempdir_in(directory: Path) -> Iterator[None]:
    """Point ``tempfile`` at ``directory`` for the duration (onnxslim spills large models to temp files)."""
    directory.mkdir(parents=True, exist_ok=True)
    previous = tempfile.tempdir
    tempfile.tempdir = str(directory)
    try:
        yield
    finally:
        tempfile.tempdir = previous
        shutil.rmtree(directory, ignore_errors=True)


TRANSFORMER_SLIM_SKIP = ("FusionGemm",)
"""onnxslim fusions left out for transformer-family graphs (see ``_simplify``)."""


def _simplify(model: onnx.ModelProto, *, options: ImportOptions, workdir: Path, notes: list[str]) -> onnx.ModelProto:
    """onnxslim (constant folding, fusions); falls back to ``model`` with a note when it fails.

    ``check_fold_sizes`` must have passed on ``model``.
    """
    try:
        import onnxslim

        from edgeopt.graph.model_family import detect_family

        # an encoder keeps its MatMul + Add pairs: ORT's transformer fusion matches those, not the Reshape -> Gemm
        # -> Reshape onnxslim's FusionGemm folds them into (edgeopt.passes.transformer_fusion)
        skip = list(TRANSFORMER_SLIM_SKIP) if detect_family(model).kind == "transformer" else None
        with _tempdir_in(workdir / ".slim"):
            slimmed = onnxslim.slim(model, size_threshold=options.max_tensor_bytes, skip_fusion_patterns=skip)
        if not isinstance(slimmed, onnx.ModelProto):
            raise TypeError(f"onnxslim returned {type(slimmed).__name__}")
        before = ([vi.name for vi in model.graph.input], [vi.name for vi in model.graph.output])
        after = ([vi.name for vi in slimmed.graph.input], [vi.name for vi in slimmed.graph.output])
        if before != after:
            raise ValueError(f"graph inputs/outputs changed from {before} to {after}")
        _check(slimmed, workdir=workdir, what="the simplified model")
    except Exception as exc:  # any simplifier failure keeps the checked, unsimplified graph
        notes.append(f"onnxslim could not simplify the graph ({_first_line(exc)}); kept it unsimplified")
        return model
    _tidy_imports(slimmed)
    return slimmed


def _infer_shapes(model: onnx.ModelProto, *, workdir: Path, notes: list[str]) -> onnx.ModelProto:
    try:
        if _is_large(model):
            path = _save(model, workdir / ".infer", keep_data=True)
            shape_inference.infer_shapes_path(str(path), str(path), strict_mode=False, data_prop=True)
            return onnx.load(str(path))
        return shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError) as exc:
        notes.append(f"shape inference stopped early ({_first_line(exc)}); some shapes are unknown")
        return model


def _save(model: onnx.ModelProto, directory: Path, *, keep_data: bool = False) -> Path:
    """Write ``directory/model.onnx`` (weights in ``model.onnx.data`` when large); return its path.

    Saving a large model moves its weights out of ``model``; ``keep_data`` reads them back in.
    A full disk (or any OSError) is an OutputPathError naming ``directory``.
    """
    path, data = directory / MODEL_FILE, directory / DATA_FILE
    try:
        directory.mkdir(parents=True, exist_ok=True)
        data.unlink(missing_ok=True)
        if _is_large(model):
            onnx.save_model(
                model,
                str(path),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=DATA_FILE,
                size_threshold=1024,
            )
            if keep_data:
                load_external_data_for_model(model, str(directory))
        else:
            onnx.save_model(model, str(path))
    except OSError as exc:
        raise _write_error(exc, directory) from exc
    return path


def _write_error(exc: OSError, directory: Path) -> OutputPathError:
    hints = {
        errno.ENOSPC: "the disk is full: free some space, or set TMPDIR to a disk with room",
        errno.EDQUOT: "the disk quota is exceeded: free some space, or set TMPDIR to a disk with room",
        errno.EFBIG: "a file size limit (ulimit -f) stops the write: raise it, or free space for large models",
        errno.EROFS: "the filesystem is read-only: set TMPDIR to a writable directory",
        errno.EACCES: "permission denied: set TMPDIR to a directory you can write to",
        errno.EPERM: "permission denied: set TMPDIR to a directory you can write to",
    }
    return OutputPathError(
        f"cannot write the normalized model in {directory}: {exc.strerror or exc}",
        hint=hints.get(exc.errno or 0, "set TMPDIR to a writable directory with free space"),
    )


def _fingerprint(path: Path) -> str:
    data = path.with_name(DATA_FILE)
    return sha256_file(path, data) if data.exists() else sha256_file(path)


def normalize(
    model: onnx.ModelProto,
    *,
    source_fingerprint: str,
    source_format: str,
    options: ImportOptions,
    workdir: Path,
    base_dir: Path | None = None,
    worker: IsolatedWorker | None = None,
) -> Graph:
    """Check, upgrade, fix input shapes, simplify, infer shapes; write ``workdir/model.onnx``.

    ``model`` is not modified. External data not yet loaded is read (safely) from ``base_dir``.
    Writes only under ``workdir``. Raises ModelError (checker, conversion, a crash of the checker or
    ONNX Runtime in the isolated worker), InputSpecError (shapes that contradict the model),
    ResourceLimitError and UnsupportedModelError (see ``load_onnx``). ``worker`` is the isolated
    process for the native checks (a fresh one, closed on return, when None).
    """
    if worker is None:
        with IsolatedWorker(preload=("onnx", "onnxruntime")) as own:
            return normalize(
                model,
                source_fingerprint=source_fingerprint,
                source_format=source_format,
                options=options,
                workdir=workdir,
                base_dir=base_dir,
                worker=own,
            )
    options = with_env_limits(options)
    workdir = Path(workdir)
    work = onnx.ModelProto()
    work.CopyFrom(model)
    notes: list[str] = []
    check_untrusted(work, options=options)
    if any(True for _ in external_tensors(work)):
        if base_dir is None:
            raise ModelError(
                "the model refers to external data files but no folder to read them from was given",
                hint="load it with edgeopt.graph.normalize.load_onnx, which reads external data safely",
            )
        load_external_data(work, base_dir=Path(base_dir), options=options)
        check_untrusted(work, options=options)
    source_opset = _onnx_opset(work)
    _tidy_imports(work)
    _check(work, workdir=workdir, what="the model", worker=worker)
    work = _upgrade_opset(work, options.opset, notes)
    problem, fed = _fix_where_loadable(work, options, notes, workdir=workdir, worker=worker)
    if options.simplify:
        # onnxslim folds constants by running ONNX Runtime in this process: let ORT meet the model in
        # the worker first (session creation folds constants too)
        if problem is None:
            problem = _session_problem(work, workdir, worker)
        if problem:
            notes.append(f"ONNX Runtime cannot load the model ({problem}); kept it unsimplified")
        else:
            work = _simplify(work, options=options, workdir=workdir, notes=notes)
    plain_reshapes(work)
    _name_nodes(work)
    work = _infer_shapes(work, workdir=workdir, notes=notes)
    path = _save(work, workdir)
    for scratch in (".check", ".infer", ".probe"):
        shutil.rmtree(workdir / scratch, ignore_errors=True)
    note = worker.call(
        "edgeopt.graph.safety:runtime_probe", str(path), options.allow_custom_ops, what="the ONNX checker/runtime"
    )
    if note:
        notes.append(note)
    return Graph(
        path=path,
        fingerprint=_fingerprint(path),
        source_fingerprint=source_fingerprint,
        source_format=source_format,
        opset=_onnx_opset(work) or options.opset,
        inputs=fed or tuple(tensor_spec(vi) for vi in work.graph.input),
        outputs=tuple(tensor_spec(vi) for vi in work.graph.output),
        source_opset=source_opset,
        notes=tuple(notes),
    )


def load_model(graph: Graph) -> onnx.ModelProto:
    """The normalized model of ``graph``, after checking its fingerprint (ModelError on mismatch)."""
    path = Path(graph.path)
    if not path.is_file():
        raise ModelError(f"normalized model {path} is missing", hint="import the model again")
    if _fingerprint(path) != graph.fingerprint:
        raise ModelError(
            f"normalized model {path} changed since it was imported (sha256 mismatch)",
            hint="import the model again; never edit files in a work directory",
        )
    return onnx.load(str(path), load_external_data=True)


def _name_nodes(model: onnx.ModelProto) -> None:
    """Give every unnamed node a unique name: passes and fallbacks address nodes by name."""
    taken = {n.name for n in model.graph.node if n.name}
    counter = 0
    for node in model.graph.node:
        if node.name:
            continue
        while f"{node.op_type}_{counter}" in taken:
            counter += 1
        node.name = f"{node.op_type}_{counter}"
        taken.add(node.name)
