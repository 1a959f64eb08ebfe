"""The Python SDK: the same operations as the CLI, returning data instead of printing it."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from edgeopt.artifact import verify_artifact
from edgeopt.candidates import Events
from edgeopt.deploy import Deployment, DeployRequest, feeds_for_batch, resolve_device, run_deploy
from edgeopt.errors import ArtifactError, InputSpecError, ModelError
from edgeopt.graph import GraphSummary, inspect_model, load_model
from edgeopt.hardware import list_profiles
from edgeopt.harness import profile_runner
from edgeopt.passes.batch import checked_batches
from edgeopt.plugins import PluginManager, PluginStatus, get_plugin_manager
from edgeopt.reference import batch_size_of
from edgeopt.types import (
    Compiled,
    Dataset,
    DeviceProfile,
    ImportOptions,
    Plan,
    Runner,
    RunSettings,
    TargetInfo,
    TensorSpec,
)


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
    weights: str | Path | None = None,
    runs: int | None = None,
    timing_s: float = 2.0,
    threads: int | None = None,
    budget_s: float | None = None,
    cache: bool = True,
    events: Events | None = None,
    plugin_manager: PluginManager | None = None,
) -> Deployment:
    """Optimize ``model`` for ``target`` and write a verified artifact; see ``DeployRequest``.

    ``calib``/``eval`` take an ``.npz`` path, a folder of images, a mapping of arrays, or any
    iterable of feed dicts. Without them edgeopt uses synthetic inputs and says so. ``metric`` is a
    name from ``edgeopt.metrics`` or a callable ``(outputs, labels) -> float`` (higher is better);
    ``max_drop`` is in that metric's own units. ``budget_s`` limits the candidate search (candidates
    not started in time are listed as skipped); ``cache=False`` bypasses the search cache.
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
        weights=Path(weights) if weights is not None else None,
        runs=runs,
        timing_s=timing_s,
        threads=threads,
        budget_s=budget_s,
        cache=cache,
    )
    return run_deploy(request, pm=plugin_manager, events=events)


class Predictor:
    """A loaded artifact: call it with a dict of numpy arrays, get a dict of outputs by name."""

    def __init__(self, path: Path, manifest: dict, runner: Runner) -> None:
        self.path = path
        self.manifest = manifest
        self._runner = runner
        self.inputs = [TensorSpec(i["name"], i["dtype"], tuple(i["shape"])) for i in manifest["graph"]["inputs"]]
        self.output_names = [o["name"] for o in manifest["graph"]["outputs"]]
        self._dtypes = {s.name: np.dtype(s.dtype) for s in self.inputs}

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference. Feeds that fit go straight to the runtime; on an input error the feeds are
        checked against the model's inputs and cast to their dtypes, then tried once more."""
        try:
            outputs = self._runner.run(feeds)
        except InputSpecError:
            outputs = self._runner.run(self._conformed(feeds))
        return dict(zip(self.output_names, outputs, strict=True))

    def _conformed(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if feeds.keys() != self._dtypes.keys():
            raise InputSpecError(f"inputs must be exactly {sorted(self._dtypes)}, got {sorted(feeds)}")
        return {name: np.asarray(feeds[name], dtype) for name, dtype in self._dtypes.items()}

    def close(self) -> None:
        self._runner.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _compiled_from(path: Path, manifest: dict) -> Compiled:
    plan = Plan(
        target=manifest["target"]["name"],
        precision=manifest["plan"]["precision"],
        label=manifest["plan"].get("label", ""),
    )
    files = tuple(f for f in manifest["files"] if f != "report.md")
    return Compiled(
        directory=path, model_file=manifest["model_file"], files=files, plan=plan, runtime=manifest.get("runtime", "")
    )


def _open(
    path: str | Path, pm: PluginManager | None, batch: int | None
) -> tuple[Path, dict, Runner, TargetInfo, DeviceProfile, PluginManager, Compiled]:
    """Verify the artifact and load it; ``batch`` None means the batch the model was built for."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such artifact", hint="give the directory `edgeopt deploy` wrote")
    manifest = verify_artifact(path)
    if batch is None:
        specs = [TensorSpec(i["name"], i["dtype"], tuple(i["shape"])) for i in manifest["graph"]["inputs"]]
        batch = batch_size_of(specs)
    pm = pm or get_plugin_manager()
    target = pm.target(manifest["target"]["name"])
    device_name = manifest["device"]["name"]
    device = resolve_device(None if device_name == "host" else device_name, target)
    compiled = _compiled_from(path, manifest)
    runner = pm.runner(compiled, target, device, RunSettings(batch=batch, threads=manifest["plan"].get("threads")))
    return path, manifest, runner, target, device, pm, compiled


def load(path: str | Path, *, plugin_manager: PluginManager | None = None) -> Predictor:
    """Verify every file's hash, then load the artifact with its target's runtime."""
    path, manifest, runner, *_ = _open(path, plugin_manager, None)
    return Predictor(path, manifest, runner)


def profile(
    path: str | Path,
    *,
    runs: int | None = None,
    batch: Sequence[int] = (1,),
    timing_s: float = 2.0,
    slo_ms: float | None = None,
    plugin_manager: PluginManager | None = None,
) -> dict:
    """Re-profile an artifact on this machine with synthetic inputs of the recorded shapes."""
    from edgeopt.data import synthetic_dataset
    from edgeopt.types import Graph

    path, manifest, runner, target, device, pm, compiled = _open(path, plugin_manager, 1)
    runner.close()
    specs = tuple(TensorSpec(i["name"], i["dtype"], tuple(i["shape"])) for i in manifest["graph"]["inputs"])
    graph = Graph(
        path=path / manifest["model_file"],
        fingerprint="",
        source_fingerprint="",
        source_format="artifact",
        opset=manifest["graph"]["opset"],
        inputs=specs,
        outputs=(),
    )
    data: Dataset = synthetic_dataset(graph, samples=max(max(batch), 8), seed=2)
    size = sum(f["bytes"] for name, f in manifest["files"].items() if name != "report.md")
    result = profile_runner(
        checked_batches(
            lambda b: pm.runner(
                compiled, target, device, RunSettings(batch=b, threads=manifest["plan"].get("threads"))
            ),
            lambda b: feeds_for_batch(data, b),
            base_batch=batch_size_of(specs),
        ),
        lambda b: feeds_for_batch(data, b),
        batches=tuple(batch),
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
            raise ModelError(f"no importer recognises {model!r}")
        return inspect_model(load_model(graph))


def targets(*, plugin_manager: PluginManager | None = None) -> list[TargetInfo]:
    """Every target installed plugins offer, with availability and the reason when unavailable."""
    return (plugin_manager or get_plugin_manager()).targets()


def devices() -> list[DeviceProfile]:
    """Every device profile edgeopt knows."""
    return list_profiles()


def plugins(*, plugin_manager: PluginManager | None = None) -> list[PluginStatus]:
    """Every plugin with its version and status (``broken`` ones carry their error)."""
    return (plugin_manager or get_plugin_manager()).plugins()
