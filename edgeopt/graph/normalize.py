"""Normalize any ModelProto into a Graph: checked, upgraded, static shapes, simplified, written, fingerprinted.

``normalize`` turns any ModelProto into the Graph invariants of ``edgeopt.types.Graph``: initializers out of the
graph inputs, full ``onnx.checker`` pass, ai.onnx opset >= ``options.opset``, static input shapes,
simplified (onnxslim), shapes inferred, written to ``workdir/model.onnx`` and fingerprinted.

Native code can crash on a malformed model, so three steps run in one ``edgeopt.process.isolation`` worker
process per ``normalize``: the checker pass over the caller's model, an ONNX Runtime session over the
model onnxslim is about to fold (onnxslim runs ORT in this process), and the final probe (checker
plus a session) over the written model. The steps in this process only see a checked model.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import onnx
from onnx import shape_inference

from edgeopt.errors import ModelError
from edgeopt.graph.canonical import plain_reshapes
from edgeopt.graph.input_shapes import fix_where_loadable, session_problem
from edgeopt.graph.inspect import tensor_spec
from edgeopt.graph.model_io import fingerprint, first_line, is_large, save_model, serialized
from edgeopt.graph.opset import onnx_opset, tidy_imports, upgrade_opset
from edgeopt.graph.safety import check_untrusted, external_tensors, load_external_data, with_env_limits
from edgeopt.process.isolation import IsolatedWorker
from edgeopt.types import Graph, ImportOptions


def _check(model: onnx.ModelProto, *, workdir: Path, what: str, worker: IsolatedWorker | None = None) -> None:
    """Full ``onnx.checker`` pass, in ``worker`` when given; large models are checked from a scratch copy."""
    if worker is not None:
        worker.call(
            "edgeopt.graph.safety:checker_probe", serialized(model, workdir, ".check"), what, what="the ONNX checker"
        )
        return
    try:
        if is_large(model):
            path = save_model(model, workdir / ".check", keep_data=True)
            onnx.checker.check_model(str(path), full_check=True)
        else:
            onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ModelError(f"{what} fails the ONNX checker: {first_line(exc)}") from exc


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
        notes.append(f"onnxslim could not simplify the graph ({first_line(exc)}); kept it unsimplified")
        return model
    tidy_imports(slimmed)
    return slimmed


def _infer_shapes(model: onnx.ModelProto, *, workdir: Path, notes: list[str]) -> onnx.ModelProto:
    try:
        if is_large(model):
            path = save_model(model, workdir / ".infer", keep_data=True)
            shape_inference.infer_shapes_path(str(path), str(path), strict_mode=False, data_prop=True)
            return onnx.load(str(path))
        return shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except (onnx.shape_inference.InferenceError, ValueError, RuntimeError) as exc:
        notes.append(f"shape inference stopped early ({first_line(exc)}); some shapes are unknown")
        return model


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
                hint="load it with edgeopt.graph.model_io.load_onnx, which reads external data safely",
            )
        load_external_data(work, base_dir=Path(base_dir), options=options)
        check_untrusted(work, options=options)
    source_opset = onnx_opset(work)
    tidy_imports(work)
    _check(work, workdir=workdir, what="the model", worker=worker)
    work = upgrade_opset(work, options.opset, notes)
    problem, fed = fix_where_loadable(work, options, notes, workdir=workdir, worker=worker)
    if options.simplify:
        # onnxslim folds constants by running ONNX Runtime in this process: let ORT meet the model in
        # the worker first (session creation folds constants too)
        if problem is None:
            problem = session_problem(work, workdir, worker)
        if problem:
            notes.append(f"ONNX Runtime cannot load the model ({problem}); kept it unsimplified")
        else:
            work = _simplify(work, options=options, workdir=workdir, notes=notes)
    plain_reshapes(work)
    _name_nodes(work)
    work = _infer_shapes(work, workdir=workdir, notes=notes)
    path = save_model(work, workdir)
    for scratch in (".check", ".infer", ".probe"):
        shutil.rmtree(workdir / scratch, ignore_errors=True)
    note = worker.call(
        "edgeopt.graph.safety:runtime_probe", str(path), options.allow_custom_ops, what="the ONNX checker/runtime"
    )
    if note:
        notes.append(note)
    return Graph(
        path=path,
        fingerprint=fingerprint(path),
        source_fingerprint=source_fingerprint,
        source_format=source_format,
        opset=onnx_opset(work) or options.opset,
        inputs=fed or tuple(tensor_spec(vi) for vi in work.graph.input),
        outputs=tuple(tensor_spec(vi) for vi in work.graph.output),
        source_opset=source_opset,
        notes=tuple(notes),
    )


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
