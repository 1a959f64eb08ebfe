"""The result of a farm comparison: one cell per model × target × device, and each (model, device)'s winner.

A cell's figures are read from the verified artifact's manifest (the profile its device measured), so the
matrix, the HTML report and the registry all show the same numbers. The winner of a (model, device) is the
target whose artifact has the lowest p50 latency at the model's batch (``objective`` ``latency``) or the
highest samples/s (``throughput``), among cells that ended in a verified artifact.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class Cell:
    """One model × target × device: a verified, registered artifact, or why there is none."""

    model: str
    target: str
    device: str
    status: str = "pending"
    """``ok``, ``winner``, ``failed`` (the job's error, or retries spent), ``timed out``, ``gone`` (the device
    left the farm) or ``unavailable`` (no node offers this target on this device)."""
    reason: str = ""
    hint: str = ""
    artifact: str = ""
    registry_ref: str = ""
    plan: str = ""
    precision: str = ""
    p50_s: float | None = None
    p90_s: float | None = None
    throughput: float | None = None
    size_bytes: int | None = None
    metric: str | None = None
    drop: float | None = None
    energy_j: float | None = None
    energy_method: str = ""
    measured_on: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    """Wall time from the build's submission to the result installed."""

    @property
    def done(self) -> bool:
        return self.status in ("ok", "winner")


def cell_from_manifest(cell: Cell, manifest: Mapping[str, Any], *, artifact: str, ref: str, seconds: float) -> Cell:
    """``cell`` filled from a verified farm artifact's manifest."""
    prof = manifest.get("profile") or {}
    lat = prof.get("latency") or {}
    first = lat.get(str(prof.get("batch", 1))) or next(iter(lat.values()), {})
    metrics = manifest.get("metrics") or {}
    energy = prof.get("energy") or {}
    plan = manifest.get("plan") or {}
    return replace(
        cell, status="ok", artifact=artifact, registry_ref=ref, plan=str(plan.get("label", "")),
        precision=str(plan.get("precision", "")), p50_s=first.get("p50"), p90_s=first.get("p90"),
        throughput=first.get("throughput"), size_bytes=prof.get("size_bytes"), metric=metrics.get("metric"),
        drop=metrics.get("drop"), energy_j=energy.get("joules_per_inference"),
        energy_method=str(energy.get("method", "")), measured_on=dict(manifest.get("measured_on") or {}),
        seconds=seconds,
    )


def with_winners(cells: Sequence[Cell], objective: str = "latency") -> tuple[Cell, ...]:
    """``cells`` with the best ``ok`` cell of each (model, device) marked ``winner``."""
    best: dict[tuple[str, str], Cell] = {}
    for c in cells:
        if not c.done or c.p50_s is None:
            continue
        key = (c.model, c.device)
        score = -(c.throughput or 0.0) if objective == "throughput" else c.p50_s
        held = best.get(key)
        if held is None or score < (-(held.throughput or 0.0) if objective == "throughput" else held.p50_s):
            best[key] = c
    winners = {id(c) for c in best.values()}
    return tuple(replace(c, status="winner") if id(c) in winners else
                 (replace(c, status="ok") if c.status == "winner" else c) for c in cells)


@dataclass(frozen=True)
class FarmComparison:
    """Every model × target × device of one farm run."""

    models: tuple[str, ...]
    targets: tuple[str, ...]
    devices: tuple[str, ...]
    objective: str
    cells: tuple[Cell, ...]
    address: str = ""
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()

    def winners(self) -> dict[tuple[str, str], str]:
        """(model, device) -> the winning target."""
        return {(c.model, c.device): c.target for c in self.cells if c.status == "winner"}

    def cell(self, model: str, target: str, device: str) -> Cell:
        return next(c for c in self.cells if (c.model, c.target, c.device) == (model, target, device))

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": list(self.models), "targets": list(self.targets), "devices": list(self.devices),
            "objective": self.objective, "address": self.address, "seconds": self.seconds,
            "warnings": list(self.warnings),
            "winners": [{"model": m, "device": d, "target": t} for (m, d), t in sorted(self.winners().items())],
            "cells": [asdict(c) for c in self.cells],
        }
