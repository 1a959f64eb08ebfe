"""Recording a deploy in the registry: its name, what redeploy needs, the calibration summary, the plugin hook.

Called by ``edgeopt.deploy`` around ``run_deploy``. Registration never undoes a deploy: every failure here
becomes a warning and the verified artifact stays where it was written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeopt.monitoring.stats import summarize
from edgeopt.registry.records import DeploymentRecord, figures, record_from_manifest
from edgeopt.registry.refs import check_name
from edgeopt.registry.store import Registry, open_registry
from edgeopt.types import Dataset, Graph, TensorSpec

if TYPE_CHECKING:
    from edgeopt.pipeline.request import Deployment
    from edgeopt.plugin.manager import PluginManager

Warn = Callable[[str], None]


def deployment_name(source: object, name: str | None = None) -> str:
    """``name`` if given, else the source's stem (``digits_cnn.onnx`` → ``digits_cnn``; ``pkg.mod:factory`` →
    ``factory``; an in-memory object → its class name in lower case), reduced to a valid registry name."""
    if name is not None:
        return check_name(name)
    if isinstance(source, (str, os.PathLike)):
        text = str(source)
        stem = text.rsplit(":", 1)[-1] if ":" in text and not Path(text).exists() else Path(text).stem
    else:
        stem = type(source).__name__.lower()
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-") or "model"
    return stem[:128]


def _path_or_none(value: object) -> str | None:
    if isinstance(value, (str, os.PathLike)):
        text = str(value)
        return str(Path(text).resolve()) if Path(text).exists() else text
    return None


def request_record(source: object, *, weights: object, calib: object, eval_: object, options: Mapping) -> dict:
    """What ``redeploy`` needs to run this deploy again: paths made absolute, in-memory data marked as such."""
    return {
        "source": _path_or_none(source),
        "source_in_memory": not isinstance(source, (str, os.PathLike)),
        "weights": _path_or_none(weights),
        "calib": _path_or_none(calib),
        "calib_in_memory": calib is not None and not isinstance(calib, (str, os.PathLike)),
        "eval": _path_or_none(eval_),
        "eval_in_memory": eval_ is not None and not isinstance(eval_, (str, os.PathLike)),
        **{k: v for k, v in options.items() if v is None or isinstance(v, str | int | float | bool | list | dict)},
    }


def _manifest_graph(manifest: Mapping[str, Any], artifact: Path) -> Graph:
    specs = tuple(TensorSpec(i["name"], i["dtype"], tuple(i["shape"])) for i in manifest["graph"]["inputs"])
    outputs = tuple(TensorSpec(o["name"], o["dtype"], tuple(o["shape"])) for o in manifest["graph"]["outputs"])
    return Graph(path=artifact / manifest["model_file"], fingerprint="", source_fingerprint="",
                 source_format="artifact",
                 opset=manifest["graph"]["opset"], inputs=specs, outputs=outputs)


def calibration_summary(manifest: Mapping[str, Any], artifact: Path, calib: object) -> dict:
    """Per-input-channel summary of the data the deploy calibrated on (re-read from ``calib``; synthetic when None,
    regenerated with the deploy's own seed)."""
    from edgeopt.artifact.manifest import manifest_state
    from edgeopt.data.datasets import load_dataset, synthetic_dataset
    from edgeopt.pipeline.request import SYNTHETIC_SAMPLES

    graph, state = _manifest_graph(manifest, artifact), manifest_state(manifest)
    if calib is None:
        data: Dataset = synthetic_dataset(graph, samples=SYNTHETIC_SAMPLES, seed=0, state=state)
    else:
        data = load_dataset(calib, graph, purpose="calibration", state=state)
    return summarize(data.arrays, source=data.source, synthetic=data.synthetic)


def previous_figures(name: str, warn: Warn) -> dict | None:
    """The latest registered version of ``name`` as the deploy report shows it, or None (none, or registry off)."""
    try:
        registry = open_registry()
        latest = registry.latest(name) if registry is not None else None
    except Exception as exc:  # the registry is a record, never a reason to fail a deploy
        warn(f"could not read the deployment registry: {exc}")
        return None
    return figures(latest) if latest is not None else None


def register_deployment(
    deployment: Deployment,
    *,
    name: str,
    request: Mapping[str, Any],
    calib: object,
    pm: PluginManager | None,
    warn: Warn,
    registry: Registry | None = None,
) -> DeploymentRecord | None:
    """Add ``deployment`` to the registry and tell plugins; on failure warn and return None (artifact kept)."""
    try:
        registry = registry or open_registry()
        if registry is None:
            return None
        try:
            summary = calibration_summary(deployment.manifest, deployment.path, calib)
        except Exception as exc:
            warn(f"calibration summary not recorded ({exc}); `edgeopt monitor` cannot check input drift for it")
            summary = {}
        record = record_from_manifest(deployment.manifest, deployment.path, name=name, request=request,
                                      calibration=summary)
        stored = registry.add(record)
    except Exception as exc:
        warn(f"the deployment was not registered ({exc}); the artifact at {deployment.path} is complete and verified")
        return None
    if pm is not None:
        links, problems = pm.deployment_registered(stored)
        for problem in problems:
            warn(problem)
        if links:
            try:
                registry.set_links(stored.name, stored.version, links)
                stored = registry.get(stored.name, stored.version)
            except Exception as exc:
                warn(f"links from plugins not recorded: {exc}")
    return stored
