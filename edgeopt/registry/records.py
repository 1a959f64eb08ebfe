"""What the registry keeps about one deployment, and how it is built from an artifact's manifest."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeopt.artifact.write import MANIFEST_NAME
from edgeopt.hashing import sha256_file
from edgeopt.types import DeploymentRecord  # noqa: F401 - the registry's record, defined with the other stage types

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""A deployment name: letters, digits, ``.``, ``_``, ``-`` (no ``:`` or ``@``, which refs use)."""
STAGES = ("production", "staging")


def manifest_sha256(artifact: Path) -> str:
    return sha256_file(Path(artifact) / MANIFEST_NAME)


def record_from_manifest(
    manifest: Mapping[str, Any],
    artifact: Path,
    *,
    name: str,
    request: Mapping[str, Any] | None = None,
    calibration: Mapping[str, Any] | None = None,
) -> DeploymentRecord:
    """A record (version 0, not yet registered) for the verified artifact at ``artifact``."""
    source = manifest.get("source") or {}
    plan = dict(manifest.get("plan") or {})
    return DeploymentRecord(
        name=name,
        version=0,
        created="",
        source_path=str(source.get("path", "")),
        source_format=str(source.get("format", "")),
        source_fingerprint=str(source.get("fingerprint", "")),
        graph_fingerprint=str((manifest.get("graph") or {}).get("fingerprint", "")),
        target=str((manifest.get("target") or {}).get("name", "")),
        device=str((manifest.get("device") or {}).get("name", "")),
        precision=str(plan.get("precision", "")),
        plan=plan,
        metrics=dict(manifest.get("metrics") or {}),
        profile=dict(manifest.get("profile") or {}),
        artifact_path=str(Path(artifact).resolve()),
        manifest_sha256=manifest_sha256(artifact),
        request=dict(request or {}),
        calibration=dict(calibration or {}),
        environment=dict((manifest.get("environment") or {}).get("packages") or {}),
        edgeopt_version=str(manifest.get("edgeopt_version", "")),
        measured_on=dict(manifest.get("measured_on") or {}),
    )


def figures(record: DeploymentRecord) -> dict[str, Any]:
    """The headline figures of a record, as the deploy report's "previous version" section shows them."""
    lat = (record.profile.get("latency") or {}) if isinstance(record.profile, Mapping) else {}
    energy = record.profile.get("energy") or {}
    return {
        "ref": record.ref,
        "created": record.created,
        "artifact": record.artifact_path,
        "precision": record.precision,
        "plan": record.plan.get("label", ""),
        "metric": record.metrics.get("metric"),
        "metric_value": record.metrics.get("candidate"),
        "metric_drop": record.metrics.get("drop"),
        "units": record.metrics.get("units"),
        "latency": {b: {"p50": s.get("p50"), "p90": s.get("p90"), "method": s.get("method")} for b, s in lat.items()
                    if isinstance(s, Mapping)},
        "size_bytes": record.profile.get("size_bytes"),
        "joules_per_inference": energy.get("joules_per_inference"),
        "energy_method": energy.get("method"),
    }
