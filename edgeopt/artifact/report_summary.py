"""The top of ``report.md``: the title, the warnings, and the summary table (speed, data, size, quality).

Pure functions of the manifest; each returns its Markdown, or ``""`` when the manifest has nothing for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from edgeopt.artifact.report_format import (
    cell,
    fidelity_text,
    fmt,
    fmt_bytes,
    fmt_joules,
    fmt_seconds,
    lookup,
    main_latency,
    md_table,
    num,
)


def title(m: Mapping[str, Any]) -> str:
    src = lookup(m, "source", "path")
    name = PurePath(str(src)).name if src else lookup(m, "source", "format")
    target, device = lookup(m, "target", "name"), lookup(m, "device", "name")
    title = "# edgeopt report"
    if name:
        title += f": {name}"
    if target:
        title += f" → {target}"
    if device:
        title += f" on {device}"
    facts = []
    if m.get("created"):
        facts.append(f"Created {m['created']}")
    if m.get("edgeopt_version"):
        facts.append(f"edgeopt {m['edgeopt_version']}")
    if m.get("runtime"):
        facts.append(f"runtime {m['runtime']}")
    return title + ("\n\n" + " · ".join(facts) + "." if facts else "")


def warnings(m: Mapping[str, Any]) -> str:
    raw = m.get("warnings") or []
    warnings = [str(w) for w in ([raw] if isinstance(raw, str) else raw) if w]
    if lookup(m, "metrics", "synthetic_data") and not any("synthetic" in w.lower() for w in warnings):
        warnings.insert(0, "Quality was checked on synthetic data only; give real data to measure accuracy.")
    if not warnings:
        return ""
    return "## Warnings\n\n" + "\n".join(f"- **{cell(w)}**" for w in warnings)


def summary(m: Mapping[str, Any]) -> str:
    rows: list[tuple[str, str]] = []
    target = lookup(m, "target")
    if isinstance(target, Mapping) and target.get("name"):
        plugin = " ".join(str(x) for x in (target.get("plugin"), target.get("plugin_version")) if x)
        rows.append(("Target", f"{target['name']}" + (f" (plugin {plugin})" if plugin else "")))
    device = lookup(m, "device")
    if isinstance(device, Mapping) and device.get("name"):
        extra = ", ".join(str(x) for x in (device.get("kind"), device.get("description")) if x)
        rows.append(("Device", f"{device['name']}" + (f" ({extra})" if extra else "")))
        measured_on = lookup(m, "profile", "measured_on")
        if measured_on and measured_on != device["name"]:
            rows.append(("Measured on", f"{measured_on}: latency and memory are this machine's, not the device's; "
                                        "energy is estimated for the device"))
    precision, label = lookup(m, "plan", "precision"), lookup(m, "plan", "label")
    if precision or label:
        rows.append(("Precision chosen", " — ".join(str(x) for x in (precision, label) if x)))
    rows += _summary_speed(m)
    rows += _summary_size(m)
    rows += _summary_quality(m)
    energy = lookup(m, "profile", "energy")
    joules = fmt_joules(lookup(energy, "joules_per_inference"))
    if joules:
        rows.append(("Energy per inference", f"{joules} ({energy.get('method') or 'method unknown'})"))
    memory = lookup(m, "profile", "memory")
    if isinstance(memory, Mapping) and any(num(v) is not None for v in memory.values()):
        text = ", ".join(
            f"{str(k).removesuffix('_bytes').replace('_', ' ')} {fmt_bytes(v) if 'bytes' in str(k) else fmt(v)}"
            for k, v in memory.items()
            if num(v) is not None
        )
        rows.append(("Memory", text + (f" ({memory['method']})" if memory.get("method") else "")))
    rows += _summary_data(m)
    if not rows:
        return ""
    return "## Summary\n\n" + md_table(["", ""], rows)


def _summary_speed(m: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    main = main_latency(m)
    measured = None
    if main:
        batch, st = main
        measured = fmt_seconds(st.get("p50"))
        if measured:
            runs = f", {st['runs']} runs" if st.get("runs") else ""
            p90 = f", p90 {fmt_seconds(st.get('p90'))}" if fmt_seconds(st.get("p90")) else ""
            rows.append(
                (f"Latency (batch {batch})", f"p50 {measured}{p90} ({st.get('method', 'method unknown')}{runs})")
            )
        if num(st.get("throughput")) is not None:
            rows.append(("Throughput", f"{st['throughput']:.4g} samples/s at batch {batch}"))
    roof = lookup(m, "profile", "roofline")
    if fmt_seconds(lookup(roof, "seconds")):
        text = f"{fmt_seconds(roof['seconds'])} ({roof.get('method', 'estimated:roofline')})"
        rows.append(("Roofline estimate", text + (f" vs {measured} measured" if measured else "")))
    return rows


def _summary_data(m: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for purpose in ("calibration", "evaluation"):
        d = lookup(m, "data", purpose)
        if isinstance(d, Mapping) and d.get("samples"):
            kind = "SYNTHETIC" if d.get("synthetic") else "labelled" if d.get("labels") else "unlabelled"
            where = d.get("source") or "?"
            rows.append((f"{purpose.capitalize()} data", f"{d['samples']} samples, {kind}, from {where}"))
    return rows


def _summary_size(m: Mapping[str, Any]) -> list[tuple[str, str]]:
    after = num(lookup(m, "profile", "size_bytes"))
    before = next(
        (v for v in (num(lookup(m, "source", "size_bytes")), num(lookup(m, "graph", "size_bytes"))) if v is not None),
        None,
    )
    if after is None:
        return []
    method = lookup(m, "profile", "size_method")
    how = f" ({method})" if method else ""
    if before:
        change = (after - before) / before * 100
        return [("Model size", f"{fmt_bytes(before)} → {fmt_bytes(after)} ({change:+.1f}%){how}")]
    return [("Model size", f"{fmt_bytes(after)}{how}")]


def _summary_quality(m: Mapping[str, Any]) -> list[tuple[str, str]]:
    met = lookup(m, "metrics")
    if not isinstance(met, Mapping):
        return []
    rows = []
    name, units = met.get("metric"), met.get("units") or ""
    ref, cand, drop, budget = met.get("reference"), met.get("candidate"), met.get("drop"), met.get("max_drop")
    if name and (ref is not None or cand is not None):
        unit = f" {units}" if units else ""
        text = f"{fmt(ref)} → {fmt(cand)}{unit}"
        if num(drop) is not None:
            text += f" (drop {fmt(drop)}" + (f", budget {fmt(budget)}" if num(budget) is not None else "") + ")"
        label = "Fidelity" if str(name).startswith("fidelity:") else "Metric"
        rows.append((f"{label} ({name})", text))
        if met.get("proxy"):
            rows.append(("Fidelity proxy", str(met["proxy"])))
    fid = fidelity_text(met.get("fidelity"))
    if fid:
        rows.append(("Agreement with original", fid))
    if met.get("samples") and not isinstance(lookup(m, "data", "evaluation"), Mapping):
        kind = "synthetic" if met.get("synthetic_data") else "real"
        rows.append(("Evaluation data", f"{met['samples']} samples, {kind}"))
    return rows
