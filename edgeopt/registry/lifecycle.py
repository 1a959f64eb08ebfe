"""A deploy as the registry sees it: name it, link the previous version, register it, and redeploy it later."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING

from edgeopt.artifact.write import MANIFEST_NAME, REPORT_NAME, SEAL_KEY, verify_artifact, write_artifact
from edgeopt.registry.diff import RecordDiff, diff_records
from edgeopt.registry.recording import deployment_name, register_deployment, request_record
from edgeopt.registry.records import DeploymentRecord, figures
from edgeopt.registry.refs import RegistryError
from edgeopt.registry.store import Registry, open_registry, require_registry

if TYPE_CHECKING:
    from edgeopt.pipeline.request import Deployment, DeployRequest
    from edgeopt.plugin.manager import PluginManager
    from edgeopt.search.candidates import Events

_RECORDED_OPTIONS = ("target", "device", "precision", "max_drop", "slo_ms", "force_precision", "trust_pickle",
                     "runs", "timing_s", "threads", "budget_s", "cache")


def _options(request: DeployRequest) -> dict:
    found = {k: getattr(request, k) for k in _RECORDED_OPTIONS if hasattr(request, k)}
    found["metric"] = request.metric if isinstance(request.metric, str) else None
    found["input_shapes"] = {k: list(v) for k, v in dict(request.input_shapes).items()}
    found["batches"] = list(request.batches)
    return found


def attach_previous(deployment: Deployment, previous: DeploymentRecord) -> Deployment:
    """Rewrite the artifact (atomically, re-sealed) so its manifest and reports link ``previous``'s figures."""
    from edgeopt.artifact.report import render_markdown
    from edgeopt.artifact.report_html import HTML_NAME, render_html

    path = Path(deployment.path)
    old = Path(previous.artifact_path)
    prev = figures(previous)
    if old.resolve() == path.resolve():  # deployed to the same --out: the previous artifact is gone
        prev["report"] = prev["report_html"] = None
        prev["note"] = "its artifact was at this path and was replaced by this deploy"
    elif (old / REPORT_NAME).is_file():
        prev["report"] = os.path.relpath(old / REPORT_NAME, path.resolve())
        prev["report_html"] = os.path.relpath(old / HTML_NAME, path.resolve())
    manifest = {k: v for k, v in deployment.manifest.items() if k not in ("files", SEAL_KEY)}
    manifest["previous"] = prev
    listed = deployment.manifest.get("files") or {}
    files = {n: path / n for n in listed if n not in (REPORT_NAME, HTML_NAME, MANIFEST_NAME)}
    extra = {HTML_NAME: render_html(manifest)} if HTML_NAME in listed else {}
    write_artifact(path, files=files, manifest=manifest, report_md=render_markdown(manifest), extra_text=extra)
    return replace(deployment, manifest=verify_artifact(path))


def deploy_and_register(
    request: DeployRequest,
    *,
    name: str | None = None,
    pm: PluginManager | None = None,
    events: Events | None = None,
) -> Deployment:
    """``run_deploy`` plus the registry: the report links the previous version of ``name`` and the verified
    artifact is registered as its next version. Registry trouble is a warning, never a failed deploy."""
    from edgeopt.pipeline.deploy import run_deploy
    from edgeopt.pipeline.request import LogEvents
    from edgeopt.plugin.manager import get_plugin_manager

    events = events or LogEvents()
    pm = pm or get_plugin_manager()
    if isinstance(request.calib, Iterator):  # read twice (deploy, then the calibration summary)
        request = replace(request, calib=list(request.calib))
    name = deployment_name(request.source, name)
    registry: Registry | None = None
    previous: DeploymentRecord | None = None
    try:
        registry = open_registry()
        previous = registry.latest(name) if registry is not None else None
    except Exception as exc:  # the registry is a record of deploys, never a reason to fail one
        events.warn(f"the deployment registry cannot be read ({exc}); this deploy will not be registered")
        registry = None
    deployment = run_deploy(request, pm=pm, events=events)
    if registry is None:
        return deployment
    if previous is not None:
        try:
            deployment = attach_previous(deployment, previous)
        except Exception as exc:
            events.warn(f"the report does not link {previous.ref} ({exc})")
    recorded = request_record(request.source, weights=request.weights, calib=request.calib, eval_=request.eval,
                              options=_options(request))
    register_deployment(deployment, name=name, request=recorded, calib=request.calib, pm=pm, warn=events.warn,
                        registry=registry)
    return deployment


def registered(deployment: Deployment, *, registry: Registry | None = None) -> DeploymentRecord | None:
    """The registry entry of ``deployment`` (by artifact path and manifest hash), or None."""
    from edgeopt.registry.records import manifest_sha256

    registry = registry or open_registry()
    if registry is None:
        return None
    record = registry.find_by_artifact(deployment.path)
    if record is None or record.manifest_sha256 != manifest_sha256(Path(deployment.path)):
        return None
    return record


def artifact_of(ref: str) -> Path:
    """The artifact directory of a registry ref (``NAME``, ``NAME:3``, ``NAME@production``), its manifest checked
    against the registered hash."""
    from edgeopt.errors import ArtifactError
    from edgeopt.registry.records import manifest_sha256

    record = require_registry().resolve(ref)
    path = Path(record.artifact_path)
    if not (path / MANIFEST_NAME).is_file():
        raise ArtifactError(f"{record.ref}: its artifact {path} is gone",
                            hint=f"redeploy it: edgeopt redeploy {record.ref}")
    if manifest_sha256(path) != record.manifest_sha256:
        raise ArtifactError(
            f"{record.ref}: the artifact at {path} is not the one registered (manifest hash differs)",
            hint=f"it was replaced by another deploy to the same --out; redeploy it: edgeopt redeploy {record.ref}",
        )
    return path


def redeploy(
    ref: str,
    *,
    out: str | Path | None = None,
    calib: object = None,
    eval: object = None,  # noqa: A002 - the CLI's name for it
    timing_s: float | None = None,
    events: Events | None = None,
    plugin_manager: PluginManager | None = None,
) -> tuple[Deployment, RecordDiff | None]:
    """Re-run ``ref``'s recorded deploy (same source, target, device, precision and options; ``calib``/``eval``
    replace the recorded data when given) with today's toolchain, register it as the next version of its name,
    and diff the new version against ``ref``. The precision is pinned to the one ``ref`` shipped."""
    from edgeopt.pipeline.request import DeployRequest

    registry = require_registry()
    base = registry.resolve(ref)
    rec = dict(base.request)
    if rec.get("source_in_memory") or not rec.get("source"):
        raise RegistryError(
            f"{base.ref} was deployed from an in-memory model; there is no recorded source to redeploy from",
            hint="deploy it again with edgeopt.deploy(model, name=...)",
        )
    for key in ("calib", "eval"):
        given = calib if key == "calib" else eval
        if given is None and rec.get(f"{key}_in_memory"):
            raise RegistryError(f"{base.ref} used in-memory --{key} data, which was not recorded",
                                hint=f"give --{key} with the data to use")
    destination = Path(out) if out is not None else _next_out(Path(base.artifact_path), base.name)
    request = DeployRequest(
        source=rec["source"],
        target=base.target,
        device=rec.get("device") or (None if base.device == "host" else base.device),
        precision=base.precision,
        calib=calib if calib is not None else rec.get("calib"),
        eval=eval if eval is not None else rec.get("eval"),
        max_drop=float(rec.get("max_drop", 1.0)),
        metric=rec.get("metric"),
        input_shapes={k: tuple(v) for k, v in (rec.get("input_shapes") or {}).items()},
        batches=tuple(rec.get("batches") or (1,)),
        slo_ms=rec.get("slo_ms"),
        out=destination,
        force_precision=True,
        trust_pickle=bool(rec.get("trust_pickle", False)),
        weights=Path(rec["weights"]) if rec.get("weights") else None,
        runs=rec.get("runs"),
        timing_s=float(timing_s if timing_s is not None else rec.get("timing_s", 2.0)),
        threads=rec.get("threads"),
        budget_s=rec.get("budget_s"),
        cache=bool(rec.get("cache", True)),
    )
    deployment = deploy_and_register(request, name=base.name, pm=plugin_manager, events=events)
    new = registered(deployment)
    return deployment, diff_records(base, new) if new is not None else None


def _next_out(old: Path, name: str) -> Path:
    """``<name>-redeploy-N.edgeopt`` next to the old artifact, the first N not taken."""
    n = 1
    while (candidate := old.parent / f"{name}-redeploy-{n}.edgeopt").exists():
        n += 1
    return candidate


def record_json(record: DeploymentRecord, *, full: bool = False) -> dict:
    """A record as JSON data; without ``full`` the bulky calibration sketch is left out."""
    data = {**asdict(record), "ref": record.ref}
    if not full:
        data["calibration"] = {k: v for k, v in record.calibration.items() if k != "features"} | {
            "features": sorted(record.calibration.get("features") or {})
        }
    return data
