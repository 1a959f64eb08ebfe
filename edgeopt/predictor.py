"""A loaded artifact: ``edgeopt.load`` verifies every file's hash and returns a ``Predictor`` that runs the model
with its target's runtime (one call, or a stream that feeds each call's state back), optionally recording field
monitoring (``edgeopt.monitoring``)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgeopt.artifact.manifest import manifest_state
from edgeopt.artifact.write import verify_artifact
from edgeopt.compression.sdk import compress  # noqa: F401 - the SDK function, re-exported
from edgeopt.errors import ArtifactError, InputSpecError
from edgeopt.evaluate.reference import batch_size_of
from edgeopt.pipeline.request import resolve_device
from edgeopt.plugin.manager import PluginManager, get_plugin_manager
from edgeopt.types import (
    Compiled,
    DeviceProfile,
    Plan,
    Runner,
    RunSettings,
    TargetInfo,
    TensorSpec,
)

if TYPE_CHECKING:
    from edgeopt.monitoring.fieldlog import FieldRecorder


class Predictor:
    """A loaded artifact: call it with a dict of numpy arrays, get a dict of outputs by name."""

    def __init__(self, path: Path, manifest: dict, runner: Runner, *, recorder: FieldRecorder | None = None) -> None:
        self.path = path
        self.manifest = manifest
        self._runner = runner
        self._recorder = recorder
        """Opt-in field monitoring: latency and per-input summaries of each call (``edgeopt.monitoring``)."""
        self.inputs = [TensorSpec(i["name"], i["dtype"], tuple(i["shape"])) for i in manifest["graph"]["inputs"]]
        self.output_names = [o["name"] for o in manifest["graph"]["outputs"]]
        self._dtypes = {s.name: np.dtype(s.dtype) for s in self.inputs}
        self.state: dict[str, str] = manifest_state(manifest)
        """A streaming model's recurrent state, output -> input: feed each call's state outputs back as the next
        call's state inputs (``stream`` does)."""

    def __call__(self, feeds: Mapping[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
        """Run one inference. ``feeds`` maps input names to arrays; a model with one input also takes the bare
        array. Feeds that fit go straight to the runtime; on an input error the feeds are checked against the
        model's inputs and cast to their dtypes, then tried once more. Raises ``InputSpecError`` (E200) for
        feeds that do not fit."""
        if not isinstance(feeds, Mapping):
            if len(self.inputs) != 1:
                names = ", ".join(s.name for s in self.inputs)
                raise InputSpecError(f"this model has {len(self.inputs)} inputs ({names}); a bare array fits only "
                                     "a single-input model", hint="pass a dict {input name: array}")
            feeds = {self.inputs[0].name: np.asarray(feeds)}
        began = time.perf_counter()
        try:
            outputs = self._runner.run(feeds)
        except InputSpecError:
            outputs = self._runner.run(self._conformed(feeds))
        if self._recorder is not None:
            self._recorder.record(feeds, time.perf_counter() - began)
        return dict(zip(self.output_names, outputs, strict=True))

    def stream(self, steps: Iterable[Mapping[str, np.ndarray]]) -> Iterator[dict[str, np.ndarray]]:
        """Run ``steps`` as one stream and yield each call's outputs: state inputs (``self.state``) start from
        zeros unless the first step gives them, and each later call gets the previous call's state outputs."""
        shapes = {s.name: s for s in self.inputs}
        carried: dict[str, np.ndarray] = {}
        for step in steps:
            feeds = {k: np.asarray(v) for k, v in step.items()}
            for inp in self.state.values():
                if inp in carried:
                    feeds[inp] = carried[inp]
                elif inp not in feeds:
                    spec = shapes[inp]
                    feeds[inp] = np.zeros(tuple(int(d) for d in spec.shape), np.dtype(spec.dtype))
            outputs = self(feeds)
            carried = {inp: outputs[out] for out, inp in self.state.items()}
            yield outputs

    def _conformed(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if feeds.keys() != self._dtypes.keys():
            raise InputSpecError(f"inputs must be exactly {sorted(self._dtypes)}, got {sorted(feeds)}")
        return {name: np.asarray(feeds[name], dtype) for name, dtype in self._dtypes.items()}

    def close(self) -> None:
        self._runner.close()
        if self._recorder is not None:
            self._recorder.close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compiled_from(path: Path, manifest: dict) -> Compiled:
    plan = Plan(
        target=manifest["target"]["name"],
        precision=manifest["plan"]["precision"],
        label=manifest["plan"].get("label", ""),
    )
    files = tuple(f for f in manifest["files"] if f != "report.md")
    return Compiled(
        directory=path, model_file=manifest["model_file"], files=files, plan=plan, runtime=manifest.get("runtime", "")
    )


def open_artifact(
    path: str | Path, pm: PluginManager | None, batch: int | None
) -> tuple[Path, dict, Runner, TargetInfo, DeviceProfile, PluginManager, Compiled]:
    """Verify the artifact and load it; ``batch`` None means the batch the model was built for."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: no such artifact", hint="give the directory `edgeopt deploy` wrote")
    manifest = verify_artifact(path)
    if batch is None:
        specs = [TensorSpec(i["name"], i["dtype"], tuple(i["shape"])) for i in manifest["graph"]["inputs"]]
        batch = batch_size_of(specs, skip=(manifest.get("stream") or {}).get("fed_whole", ()))
    pm = pm or get_plugin_manager()
    target = pm.target(manifest["target"]["name"])
    device_name = manifest["device"]["name"]
    device = resolve_device(None if device_name == "host" else device_name, target)
    compiled = compiled_from(path, manifest)
    runner = pm.runner(compiled, target, device, RunSettings(batch=batch, threads=manifest["plan"].get("threads")))
    return path, manifest, runner, target, device, pm, compiled
