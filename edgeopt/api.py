"""The Python SDK: the same operations as the CLI, returning data instead of printing it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeopt.artifact.manifest import manifest_state
from edgeopt.compression.sdk import compress  # noqa: F401 - the SDK function, re-exported
from edgeopt.compression.spec import CompressionSpec
from edgeopt.errors import ModelError
from edgeopt.evaluate.reference import batch_size_of
from edgeopt.graph.inspect import GraphSummary, inspect_model
from edgeopt.graph.model_io import load_model
from edgeopt.measure.devices import list_profiles
from edgeopt.measure.harness import profile_runner
from edgeopt.passes.batch import checked_batches
from edgeopt.pipeline.comparison import Comparison
from edgeopt.pipeline.request import Deployment, DeployRequest
from edgeopt.pipeline.stages import feeds_for_batch
from edgeopt.plugin.manager import PluginManager, PluginStatus, get_plugin_manager
from edgeopt.predictor import Predictor, open_artifact
from edgeopt.search.candidates import Events
from edgeopt.types import (
    Dataset,
    DeviceProfile,
    ImportOptions,
    RunSettings,
    TargetInfo,
    TensorSpec,
)

if TYPE_CHECKING:
    pass


def deploy(
    model: object,
    *,
    target: str = "cpu",
    device: str | None = None,
    precision: str = "auto",
    calib: object = None,
    eval: object = None,  # noqa: A002 - the CLI's name for it
    max_drop: float = 1.0,
    metric: str | Callable | None = None,
    input_shapes: Mapping[str, Sequence[int]] | Sequence[int] | None = None,
    batch: Sequence[int] | int = 1,
    slo_ms: float | None = None,
    out: str | Path | None = None,
    force_precision: bool = False,
    trust_pickle: bool = False,
    trust_code: bool = False,
    weights: str | Path | None = None,
    runs: int | None = None,
    timing_s: float = 2.0,
    threads: int | None = None,
    budget_s: float | None = None,
    cache: bool = True,
    exhaustive: bool = False,
    objective: str = "latency",
    targets: Sequence[str] | None = None,
    name: str | None = None,
    compression: CompressionSpec | None = None,
    state: Mapping[str, str] | None = None,
    max_memory: int | str | None = None,
    events: Events | None = None,
    plugin_manager: PluginManager | None = None,
) -> Deployment:
    """Optimize ``model`` for ``target`` and write a verified artifact; see ``DeployRequest``.

    ``model`` is a path to an ``.onnx`` file, a ``.keras`` file or a scikit-learn ``.joblib``/``.pkl``/
    ``.skops`` file; a ``"package.module:factory"`` string naming a function that returns a torch module
    (with ``weights=`` a ``.safetensors`` or ``.pt`` state dict); or the object itself: an ``onnx.ModelProto``,
    a ``torch.nn.Module`` (give ``input_shapes``), a Keras model or a fitted scikit-learn estimator.
    ``input_shapes`` is ``{input name: dims}``, or plain dims for a single-input model.

    ``calib``/``eval`` take an ``.npz`` path, a folder of images, a mapping of arrays, or any
    iterable of feed dicts. Without them edgeopt uses synthetic inputs and says so. ``metric`` is a
    name from ``edgeopt.evaluate.task_metrics`` or a callable ``(outputs, labels) -> float`` (higher is better);
    ``max_drop`` is in that metric's own units. ``budget_s`` limits the candidate search (candidates
    not started in time are listed as skipped); ``cache=False`` bypasses the search cache; ``exhaustive=True`` builds
    every plan of a ``precision="auto"`` search, even those the speed screen shows cannot win
    (``edgeopt.search.speed_screen``). ``target="auto"``
    compares ``targets`` (default: all available) for ``objective`` and deploys the winner (``edgeopt.compare``).
    The verified artifact is registered as the next version of ``name`` (default: the source's stem) in the
    deployment registry (``edgeopt.registry``; ``EDGEOPT_REGISTRY=off`` skips it). ``state`` declares a
    streaming model's recurrent state, output -> input (None: detected; ``{}``: none; ``edgeopt.data.stream``).
    ``max_memory`` (bytes, or a size such as ``"2GiB"``) bounds each candidate build, run in a worker process;
    a build past it is a failed candidate (None: 60% of the available memory; ``edgeopt.search.build_worker``).

    Returns the ``Deployment`` (its ``path`` and ``manifest``). Raises a subclass of ``edgeopt.errors.EdgeoptError``,
    with ``.code``, ``.message`` and ``.hint``, when it cannot (docs/errors.md): ``ModelError`` (E1xx) for a model
    it cannot read or refuses, ``InputSpecError``/``DataError`` (E2xx) for shapes or data that do not fit,
    ``TargetError``/``TargetUnavailable``/``DeviceError`` (E3xx), ``PluginError`` (E400), ``CompileError`` (E5xx)
    when no candidate builds, ``AccuracyBudgetExceeded`` (E600) when none stays within ``max_drop``,
    ``OutputPathError`` (E710), ``MissingExtraError`` (E900). Nothing is left at ``out`` when it raises.
    Warnings (synthetic data, ...) are issued as ``edgeopt.errors.EdgeoptWarning`` unless ``events`` is given.
    """
    if input_shapes is None:
        shapes: dict[str, tuple[int, ...]] = {}
    elif isinstance(input_shapes, Mapping):
        shapes = {k: tuple(int(d) for d in v) for k, v in input_shapes.items()}
    else:
        shapes = {"": tuple(int(d) for d in input_shapes)}
    request = DeployRequest(
        source=model,
        target=target,
        device=device,
        precision=precision,
        calib=calib,
        eval=eval,
        max_drop=max_drop,
        metric=metric,
        input_shapes=shapes,
        batches=(batch,) if isinstance(batch, int) else tuple(batch),
        slo_ms=slo_ms,
        out=Path(out) if out is not None else None,
        force_precision=force_precision,
        trust_pickle=trust_pickle,
        trust_code=trust_code,
        weights=Path(weights) if weights is not None else None,
        runs=runs,
        timing_s=timing_s,
        threads=threads,
        budget_s=budget_s,
        cache=cache,
        exhaustive=exhaustive,
        objective=objective,
        targets=tuple(targets or ()),
        compression=compression,
        state=dict(state) if state is not None else None,
        max_memory=max_memory,
    )
    from edgeopt.registry.lifecycle import deploy_and_register

    return deploy_and_register(request, name=name, pm=plugin_manager, events=events)


def compare(
    model: object,
    *,
    targets: Sequence[str] | None = None,
    device: str | None = None,
    precision: str = "auto",
    calib: object = None,
    eval: object = None,  # noqa: A002 - the CLI's name for it
    max_drop: float = 1.0,
    metric: str | Callable | None = None,
    objective: str = "latency",
    batch: Sequence[int] | int = 1,
    slo_ms: float | None = None,
    input_shapes: Mapping[str, Sequence[int]] | Sequence[int] | None = None,
    weights: str | Path | None = None,
    trust_pickle: bool = False,
    trust_code: bool = False,
    threads: int | None = None,
    timing_s: float = 2.0,
    budget_s: float | None = None,
    cache: bool = True,
    exhaustive: bool = False,
    state: Mapping[str, str] | None = None,
    max_memory: int | str | None = None,
    events: Events | None = None,
    plugin_manager: PluginManager | None = None,
) -> Comparison:
    """Run each target's ``--precision auto`` search on the same data and time every target's winner at every
    thread count (and, for ``objective="throughput"``, every batch) in one interleaved run; see
    ``edgeopt.compare``. ``targets`` None: every installed target (unavailable ones are listed with the reason).
    ``max_memory`` bounds each candidate build as in ``deploy``. Nothing is written; ``deploy(model,
    target="auto")`` deploys the winner."""
    from edgeopt.pipeline.compare import run_compare

    request = DeployRequest(
        source=model, target="auto", device=device, precision=precision, calib=calib, eval=eval,
        max_drop=max_drop, metric=metric, input_shapes=_shapes(input_shapes),
        batches=(batch,) if isinstance(batch, int) else tuple(batch), slo_ms=slo_ms, trust_pickle=trust_pickle,
        trust_code=trust_code,
        weights=Path(weights) if weights is not None else None, timing_s=timing_s, threads=threads,
        budget_s=budget_s, cache=cache, exhaustive=exhaustive, objective=objective, targets=tuple(targets or ()),
        state=dict(state) if state is not None else None, max_memory=max_memory,
    )
    return run_compare(request, pm=plugin_manager, events=events)


def _shapes(input_shapes: Mapping[str, Sequence[int]] | Sequence[int] | None) -> dict[str, tuple[int, ...]]:
    if input_shapes is None:
        return {}
    if isinstance(input_shapes, Mapping):
        return {k: tuple(int(d) for d in v) for k, v in input_shapes.items()}
    return {"": tuple(int(d) for d in input_shapes)}


def load(
    path: str | Path,
    *,
    plugin_manager: PluginManager | None = None,
    monitor_log: str | Path | None = None,
    monitor_every: int = 1,
) -> Predictor:
    """Verify every file's hash, then load the artifact with its target's runtime.

    ``path`` is an artifact directory or a registry ref ``registry:NAME`` (latest), ``registry:NAME:3`` or
    ``registry:NAME@production``. ``monitor_log`` opts in to field monitoring: every ``monitor_every``-th call
    appends its latency and per-input summaries (never the inputs) to that JSON-lines file, which
    ``edgeopt monitor NAME LOG`` compares with the deploy's calibration data.
    """
    if isinstance(path, str) and path.startswith("registry:"):
        from edgeopt.registry.lifecycle import artifact_of

        path = artifact_of(path.removeprefix("registry:"))
    path, manifest, runner, *_ = open_artifact(path, plugin_manager, None)
    recorder = None
    if monitor_log is not None:
        from edgeopt.monitoring.fieldlog import FieldRecorder
        from edgeopt.registry.records import manifest_sha256

        recorder = FieldRecorder(monitor_log, artifact=str(Path(path).resolve()), manifest_sha256=manifest_sha256(path),
                                 every=monitor_every)
    return Predictor(path, manifest, runner, recorder=recorder)


def profile(
    path: str | Path,
    *,
    runs: int | None = None,
    batch: Sequence[int] = (1,),
    timing_s: float = 2.0,
    slo_ms: float | None = None,
    plugin_manager: PluginManager | None = None,
) -> dict:
    """Re-profile an artifact on this machine with synthetic inputs of the recorded shapes: the input signature
    (names, dtypes, shapes, integer bounds) comes from the manifest, so any target's model file works (OpenVINO
    IR, TFLite, ...). A streaming model
    (the manifest's ``stream``) is timed per call at batch 1 with zero states and its recorded constant inputs;
    other batches are reported as not batchable."""
    from edgeopt.artifact.manifest import recorded_index_limits
    from edgeopt.data.datasets import synthetic_dataset
    from edgeopt.types import Graph

    path, manifest, runner, target, device, pm, compiled = open_artifact(path, plugin_manager, 1)
    runner.close()
    specs = tuple(TensorSpec(i["name"], i["dtype"], tuple(i["shape"])) for i in manifest["graph"]["inputs"])
    graph = Graph(
        path=None,  # type: ignore[arg-type] - the signature comes from the manifest, never from the model file
        fingerprint="",
        source_fingerprint="",
        source_format="artifact",
        opset=manifest["graph"]["opset"],
        inputs=specs,
        outputs=tuple(TensorSpec(o["name"], o["dtype"], tuple(o["shape"])) for o in manifest["graph"]["outputs"]),
    )
    stream = manifest.get("stream") or {}
    data: Dataset = synthetic_dataset(graph, samples=max(max(batch), 8), seed=2, state=manifest_state(manifest),
                                      limits=recorded_index_limits(path, manifest))
    constants = {k: v for k, v in (stream.get("constant_inputs") or {}).items() if k in data.arrays}
    if constants:
        arrays = {k: np.full_like(v, constants[k]) if k in constants else v for k, v in data.arrays.items()}
        data = replace(data, arrays=arrays)
    # the size deploy measured on the same hashed model files (reports excluded), so both commands agree
    size = (manifest.get("profile") or {}).get("size_bytes")
    if size is None:
        size = sum(f["bytes"] for name, f in manifest["files"].items() if not name.startswith("report."))
    result = profile_runner(
        checked_batches(
            lambda b: pm.runner(
                compiled, target, device, RunSettings(batch=b, threads=manifest["plan"].get("threads"))
            ),
            lambda b: feeds_for_batch(data, b),
            base_batch=batch_size_of(specs, skip=data.fed_whole),
        ),
        lambda b: feeds_for_batch(data, b),
        batches=tuple(batch),
        not_batchable=data.not_batchable,
        device=device,
        meters=pm.energy_meters(device),
        runs=runs,
        budget_s=timing_s,
        slo_ms=slo_ms,
        size_bytes=size,
        flops=manifest["graph"].get("flops"),
        precision=manifest["plan"]["precision"],
    )
    return result.to_dict()


def inspect(
    model: str | Path | object,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    plugin_manager: PluginManager | None = None,
) -> GraphSummary:
    """Summary of a model as edgeopt normalizes it: opset, ops, params, FLOPs, dynamic dims."""
    pm = plugin_manager or get_plugin_manager()
    shapes = {k: tuple(v) for k, v in (input_shapes or {}).items()}
    with tempfile.TemporaryDirectory(prefix="edgeopt-inspect-") as tmp:
        graph = pm.import_model(model, ImportOptions(input_shapes=shapes), Path(tmp))
        if graph is None:
            raise _not_a_model(model)
        return inspect_model(load_model(graph))


def _not_a_model(model: object) -> ModelError:
    """The error for a source no importer takes, with a hint that fits what it is (a data file, a folder...)."""
    accepted = ("an .onnx or .keras file, 'package.module:factory' (torch), a scikit-learn .skops/.joblib file, "
                "or the model object")
    if isinstance(model, str | Path) and Path(model).suffix.lower() in (".npz", ".npy", ".csv"):
        return ModelError(f"{model} is a data file, not a model",
                          hint=f"pass it as --calib or --eval data; a model is {accepted}")
    if isinstance(model, str | Path) and Path(model).is_dir():
        return ModelError(f"{model} is a folder, not a model", hint=f"give the model file inside it: {accepted}")
    return ModelError(f"no importer recognises {model!r}", hint=f"give {accepted}")


def targets(*, plugin_manager: PluginManager | None = None) -> list[TargetInfo]:
    """Every target installed plugins offer, with availability and the reason when unavailable."""
    return (plugin_manager or get_plugin_manager()).targets()


def devices() -> list[DeviceProfile]:
    """Every device profile edgeopt knows, ``host`` (this machine, as ``device=None`` uses it) included."""
    return list_profiles(include_host=True)


def plugins(*, plugin_manager: PluginManager | None = None) -> list[PluginStatus]:
    """Every plugin with its version and status (``broken`` ones carry their error)."""
    return (plugin_manager or get_plugin_manager()).plugins()
