"""What changed between two registered deployments: metric, latency, size, energy, memory and the plan."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeopt.artifact.report_format import lookup
from edgeopt.registry.records import DeploymentRecord


@dataclass(frozen=True)
class Delta:
    """One figure in both versions; ``change`` is b - a and ``ratio`` b / a (None when not computable)."""

    what: str
    a: Any
    b: Any
    unit: str = ""
    method_a: str = ""
    method_b: str = ""

    @property
    def change(self) -> float | None:
        if _is_num(self.a) and _is_num(self.b):
            return float(self.b) - float(self.a)
        return None

    @property
    def ratio(self) -> float | None:
        if _is_num(self.a) and _is_num(self.b) and float(self.a) != 0:
            return float(self.b) / float(self.a)
        return None


@dataclass(frozen=True)
class RecordDiff:
    """``a`` → ``b``: numeric deltas, plan differences (field: (a, b)) and environment package changes."""

    a: str
    b: str
    deltas: tuple[Delta, ...]
    plan: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    packages: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {
            "a": self.a,
            "b": self.b,
            "deltas": [
                {**vars(d), "change": d.change, "ratio": d.ratio} for d in self.deltas
            ],
            "plan": {k: list(v) for k, v in self.plan.items()},
            "packages": {k: list(v) for k, v in self.packages.items()},
            "notes": list(self.notes),
        }


def _is_num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)



def _latency_deltas(a: DeploymentRecord, b: DeploymentRecord) -> list[Delta]:
    la, lb = a.profile.get("latency") or {}, b.profile.get("latency") or {}
    found = []
    for batch in sorted(set(la) | set(lb), key=lambda k: (not str(k).isdigit(), int(k) if str(k).isdigit() else 0)):
        sa, sb = la.get(batch) or {}, lb.get(batch) or {}
        for stat in ("p50", "p90"):
            found.append(
                Delta(f"latency {stat} (batch {batch})", sa.get(stat), sb.get(stat), "s",
                      sa.get("method", ""), sb.get("method", ""))
            )
        found.append(Delta(f"throughput (batch {batch})", sa.get("throughput"), sb.get("throughput"), "samples/s",
                           sa.get("method", ""), sb.get("method", "")))
    return found


def _plan_diff(a: DeploymentRecord, b: DeploymentRecord) -> dict[str, tuple[Any, Any]]:
    found: dict[str, tuple[Any, Any]] = {}
    pairs = {
        "target": (a.target, b.target),
        "device": (a.device, b.device),
        "source_fingerprint": (a.source_fingerprint, b.source_fingerprint),
        "graph_fingerprint": (a.graph_fingerprint, b.graph_fingerprint),
        "edgeopt_version": (a.edgeopt_version, b.edgeopt_version),
    }
    for key in sorted(set(a.plan) | set(b.plan)):
        pairs[f"plan.{key}"] = (a.plan.get(key), b.plan.get(key))
    pairs["data.calibration"] = (lookup(a.request, "calib"), lookup(b.request, "calib"))
    pairs["request.precision"] = (lookup(a.request, "precision"), lookup(b.request, "precision"))
    for key, (va, vb) in pairs.items():
        if va != vb:
            found[key] = (va, vb)
    return found


def diff_records(a: DeploymentRecord, b: DeploymentRecord) -> RecordDiff:
    """Every figure both records carry, and every plan field that differs."""
    unit = a.metrics.get("units") or b.metrics.get("units") or ""
    metric_a, metric_b = a.metrics.get("metric"), b.metrics.get("metric")
    notes = []
    if metric_a != metric_b:
        notes.append(f"the metrics differ ({metric_a} vs {metric_b}); their values are not comparable")
    if a.device != b.device:
        notes.append(f"measured on different devices ({a.device} vs {b.device})")
    energy_a, energy_b = a.profile.get("energy") or {}, b.profile.get("energy") or {}
    memory_a, memory_b = a.profile.get("memory") or {}, b.profile.get("memory") or {}
    deltas = [
        Delta(f"{metric_a or 'metric'}", a.metrics.get("candidate"), b.metrics.get("candidate"), unit),
        Delta("metric drop vs original", a.metrics.get("drop"), b.metrics.get("drop"), unit),
        *_latency_deltas(a, b),
        Delta("size", a.profile.get("size_bytes"), b.profile.get("size_bytes"), "bytes",
              a.profile.get("size_method", ""), b.profile.get("size_method", "")),
        Delta("energy per inference", energy_a.get("joules_per_inference"), energy_b.get("joules_per_inference"), "J",
              energy_a.get("method", ""), energy_b.get("method", "")),
        Delta("peak memory", memory_a.get("peak_bytes"), memory_b.get("peak_bytes"), "bytes",
              memory_a.get("method", ""), memory_b.get("method", "")),
    ]
    for key, value in (a.metrics.get("fidelity") or {}).items():
        deltas.append(Delta(f"fidelity {key}", value, (b.metrics.get("fidelity") or {}).get(key)))
    packages = {
        k: (a.environment.get(k), b.environment.get(k))
        for k in sorted(set(a.environment) | set(b.environment))
        if a.environment.get(k) != b.environment.get(k)
    }
    return RecordDiff(
        a=a.ref, b=b.ref, deltas=tuple(d for d in deltas if d.a is not None or d.b is not None),
        plan=_plan_diff(a, b), packages=packages, notes=tuple(notes),
    )
