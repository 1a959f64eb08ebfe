"""Entry points: ``compress`` (the SDK) and ``compress_for_deploy`` (the one call ``run_deploy`` makes)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx

from edgeopt.compression.data import holdout, load_split
from edgeopt.compression.deploy_guard import charge_budget
from edgeopt.compression.pipeline import CompressionResult, compress_module
from edgeopt.compression.spec import CompressionSpec, TrainConfig, parse_prune
from edgeopt.compression.target_timing import STAGE_PATHS
from edgeopt.errors import InputSpecError, ModelError
from edgeopt.extras import check_request
from edgeopt.graph.inspect import real_inputs, tensor_spec
from edgeopt.types import Graph, ImportOptions

Report = Callable[[str], None]
_ONNX_REFUSED = (
    "{what} needs a torch model: ONNX-only inputs cannot be fine-tuned, and {why}; nothing was compressed"
)


def _graph_for(path: Path) -> Graph:
    model = onnx.load(str(path), load_external_data=False)
    return Graph(path=path, fingerprint="", source_fingerprint="", source_format="torch", opset=0,
                 inputs=tuple(tensor_spec(v) for v in real_inputs(model.graph)), outputs=())


def _resolve_module(source: object, options: ImportOptions) -> Any:
    """(module, example inputs) for a torch source, via the torch importer's own resolution."""
    from edgeopt.importers.torch import _resolve

    resolved = _resolve(source, options)
    if resolved is None:
        return None
    return resolved


def refuse_onnx(spec: CompressionSpec, source: object) -> list[str]:
    """For a source that is not a torch model: raise for what cannot be done safely, return notes otherwise."""
    if spec.prune is not None:
        why = ("structured pruning changes layer shapes and needs retraining to recover accuracy"
               if spec.prune.kind == "structured" else "pruned weights need retraining to recover accuracy")
        raise ModelError(
            _ONNX_REFUSED.format(what=f"--prune {spec.prune.label}", why=why) + f" (source {source!s})",
            hint="give the model as 'package.module:factory' with --weights (or an nn.Module) and --train data",
        )
    for flag, on in (("--distill", spec.distill), ("--qat", spec.qat), ("--binarize", spec.binarize)):
        if on:
            raise ModelError(
                _ONNX_REFUSED.format(what=flag, why="it trains the model"),
                hint="give the model as 'package.module:factory' with --weights (or an nn.Module) and --train data",
            )
    raise ModelError(
        _ONNX_REFUSED.format(what=f"--cluster {spec.cluster}", why="clustering without fine-tuning is not applied "
                             "silently"),
        hint="give the torch model, or deploy the ONNX file without --cluster",
    )


def run_compression(
    source: object,
    spec: CompressionSpec,
    *,
    options: ImportOptions,
    eval_data: object,
    workdir: Path,
    max_drop: float = 1.0,
    report: Report | None = None,
    progress: bool = False,
    threads: int | None = None,
    latency_budget_s: float = 3.0,
) -> CompressionResult:
    """Resolve a torch ``source`` (module, ``TorchSource`` or ``package.module:factory`` + ``options.weights``),
    load the data and run ``compress_module``. Non-torch sources go to ``refuse_onnx``. A missing extra
    (torch, torch-pruning) is a ``MissingExtraError`` before anything runs."""
    check_request(source, weights=options.weights, compression=spec)
    resolved = _resolve_module(source, options)
    if resolved is None:
        refuse_onnx(spec, source)
    if spec.train is None:
        raise InputSpecError("compression needs training data (--train PATH)",
                             hint="give an .npz with the model's inputs plus 'labels', or an image folder")
    workdir.mkdir(parents=True, exist_ok=True)
    from edgeopt.compression.measure import export_single_file

    probe = workdir / "inputs.onnx"
    export_single_file(resolved.module, tuple(resolved.example_inputs), probe)
    graph = _graph_for(probe)
    train = load_split(spec.train, graph, purpose="training")
    notes: list[str] = []
    if eval_data is None:
        train, evaluation = holdout(train, seed=spec.training.seed)
        notes.append("no evaluation data: 20% of the training data held out for early stopping and the metric")
    else:
        evaluation = load_split(eval_data, graph, purpose="evaluation")
    result = compress_module(
        resolved.module, tuple(resolved.example_inputs), spec, train, evaluation, workdir / "stages",
        max_drop=max_drop, report=report, progress=progress, threads=threads, latency_budget_s=latency_budget_s,
    )
    if notes:
        result = CompressionResult(result.module, result.onnx_path, result.stages, result.spec, result.training,
                                   (*notes, *result.notes), result.extra)
    return result


def compress(
    model: object,
    train_data: object,
    eval_data: object = None,
    *,
    prune: str | None = None,
    distill: bool = False,
    cluster: int | None = None,
    binarize: bool = False,
    qat: bool | str = False,
    epochs: int = 10,
    optimizer: str = "adam",
    lr: float = 1e-3,
    lr_schedule: str = "cosine",
    batch_size: int = 64,
    seed: int = 0,
    temperature: float = 4.0,
    alpha: float = 0.7,
    patience: int = 3,
    max_drop: float = 1.0,
    input_shapes: Sequence[int] | Mapping[str, Sequence[int]] | None = None,
    weights: str | Path | None = None,
    out: str | Path | None = None,
    threads: int | None = None,
    timing_s: float = 3.0,
    report: Report | None = None,
    progress: bool = False,
) -> CompressionResult:
    """Compress a torch model and measure every stage; see ``CompressionSpec`` and ``TrainConfig``.

    ``model``: an ``nn.Module``, a ``TorchSource`` or ``"package.module:factory"`` (with ``weights``).
    ``train_data``/``eval_data``: ``.npz`` (inputs + ``labels``), image folder, mapping with ``labels`` or an
    ``(x, y)`` tuple; without ``eval_data`` 20% of the training data is held out. ``prune``: ``structured:0.5``,
    ``unstructured:0.5``, ``unstructured-global:0.5`` or ``2:4``. ``qat``: True runs QAT only when
    post-training int8 misses ``max_drop``; ``"always"`` runs it regardless. Stage ONNX files go to ``out``
    (a temporary folder, removed on return, when None: then read ``result.module``). ``timing_s``: seconds of
    latency timing for all stages together (interleaved). ``input_shapes``: as ``edgeopt.deploy``'s, the shape of
    one exported batch (``{input name: dims}``, or plain dims for a single-input model)."""
    if input_shapes is None:
        shapes: dict[str, tuple[int, ...]] = {}
    elif isinstance(input_shapes, Mapping):
        shapes = {k: tuple(int(d) for d in v) for k, v in input_shapes.items()}
    else:
        shapes = {"": tuple(int(d) for d in input_shapes)}
    spec = CompressionSpec(
        prune=parse_prune(prune) if prune else None, distill=distill, cluster=cluster, binarize=binarize,
        qat=bool(qat), qat_always=qat == "always", train=train_data,
        training=TrainConfig(epochs=epochs, optimizer=optimizer, lr=lr, lr_schedule=lr_schedule,
                             batch_size=batch_size, seed=seed, patience=patience, temperature=temperature,
                             alpha=alpha),
    )
    options = ImportOptions(input_shapes=shapes, weights=Path(weights) if weights is not None else None)
    if out is not None:
        return run_compression(model, spec, options=options, eval_data=eval_data, workdir=Path(out),
                               max_drop=max_drop, report=report, progress=progress, threads=threads,
                               latency_budget_s=timing_s)
    with tempfile.TemporaryDirectory(prefix="edgeopt-compress-") as tmp:
        return run_compression(model, spec, options=options, eval_data=eval_data, workdir=Path(tmp),
                               max_drop=max_drop, report=report, progress=progress, threads=threads,
                               latency_budget_s=timing_s)


def compress_for_deploy(request: Any, workdir: Path, events: Any) -> tuple[object, dict | None]:
    """The deploy step: with ``request.compression`` set, compress the torch source and return the path of the
    compressed ONNX (what the deploy imports instead) and the manifest record; else ``(request.source, None)``.

    The compression's metric drop is charged to ``request.max_drop`` (``deploy_guard.charge_budget``: raises
    ``AccuracyBudgetExceeded`` past it); ``record["warnings"]`` holds what the manifest must list."""
    spec: CompressionSpec | None = getattr(request, "compression", None)
    if spec is None or not spec.active:
        return request.source, None
    events.step("compressing the torch model (fine-tuning on --train)")
    options = ImportOptions(input_shapes=dict(request.input_shapes), trust_pickle=request.trust_pickle,
                            weights=request.weights)
    result = run_compression(request.source, spec, options=options, eval_data=request.eval,
                             workdir=workdir / "compress", max_drop=request.max_drop, report=events.step,
                             progress=False, threads=request.threads,
                             latency_budget_s=max(float(request.timing_s), 0.1))
    for note in result.notes:
        events.warn(note) if note.startswith("no evaluation") else events.step(note)
    record = charge_budget(result.to_dict(), max_drop=request.max_drop, metric=request.metric)
    for note in record.get("warnings", []):
        events.warn(note)
    held_out = [n for n in result.notes if n.startswith("no evaluation")]
    record["warnings"] = [*held_out, *record.get("warnings", [])]
    record[STAGE_PATHS] = [str(stage.path) for stage in result.stages]  # for target_timing; not in manifests
    return Path(os.fspath(result.onnx_path)), record
