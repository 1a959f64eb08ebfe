"""The deploy report's "Previous version" section: this deploy's figures next to the last registered version's.

The deploy writes the previous version's figures (``edgeopt.registry.records.figures``) and the relative
path to its report under the manifest's ``previous`` key; these render it for ``report.md`` and
``report.html``. Pure functions of the manifest.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from typing import Any


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        return None
    return float(x)


def _fmt(x: Any, unit: str = "") -> str:
    v = _num(x)
    if v is None:
        return "—"
    if unit == "s":
        return f"{v * 1e3:.4g} ms"
    if unit == "bytes":
        return f"{v / 1024:.1f} KiB" if v < 1024**2 else f"{v / 1024**2:.2f} MiB"
    if unit == "J":
        return f"{v * 1e3:.4g} mJ"
    return f"{v:.4g}" + (f" {unit}" if unit else "")


def _change(a: Any, b: Any) -> str:
    va, vb = _num(a), _num(b)
    if va is None or vb is None:
        return ""
    if va == 0:
        return f"{vb - va:+.4g}"
    return f"{(vb - va) / abs(va) * 100:+.1f}%"


def rows(m: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, previous, this deploy, change) for the headline figures both carry."""
    prev = m.get("previous")
    if not isinstance(prev, Mapping):
        return []
    metrics = m.get("metrics") or {}
    profile = m.get("profile") or {}
    lat = (profile.get("latency") or {}).get("1") or {}
    plat = (prev.get("latency") or {}).get("1") or {}
    energy = (profile.get("energy") or {}).get("joules_per_inference")
    energy_method = (profile.get("energy") or {}).get("method")
    unit = metrics.get("units") or ""
    found = [
        ("precision / plan", f"{prev.get('precision')} ({prev.get('plan')})",
         f"{(m.get('plan') or {}).get('precision')} ({(m.get('plan') or {}).get('label')})", ""),
        (f"{metrics.get('metric') or 'metric'}", _fmt(prev.get("metric_value"), unit),
         _fmt(metrics.get("candidate"), unit), _change(prev.get("metric_value"), metrics.get("candidate"))),
        (f"latency p50 (batch 1, {lat.get('method') or 'method unknown'})", _fmt(plat.get("p50"), "s"),
         _fmt(lat.get("p50"), "s"),
         _change(plat.get("p50"), lat.get("p50"))),
        (f"latency p90 (batch 1, {lat.get('method') or 'method unknown'})", _fmt(plat.get("p90"), "s"),
         _fmt(lat.get("p90"), "s"),
         _change(plat.get("p90"), lat.get("p90"))),
        ("size", _fmt(prev.get("size_bytes"), "bytes"), _fmt(profile.get("size_bytes"), "bytes"),
         _change(prev.get("size_bytes"), profile.get("size_bytes"))),
        (f"energy per inference ({energy_method or 'method unknown'})", _fmt(prev.get("joules_per_inference"), "J"),
         _fmt(energy, "J"),
         _change(prev.get("joules_per_inference"), energy)),
    ]
    return found


def markdown(m: Mapping[str, Any]) -> str:
    """``## Previous version`` with a link to its report and a comparison table; empty without one."""
    prev = m.get("previous")
    if not isinstance(prev, Mapping):
        return ""
    link = prev.get("report") or prev.get("artifact") or ""
    head = f"## Previous version\n\nThis deploy replaces **{prev.get('ref')}** (registered {prev.get('created')})"
    head += f": [its report]({link})." if link else (f" ({prev['note']})." if prev.get("note") else ".")
    table = ["| figure | previous | this deploy | change |", "| --- | --- | --- | --- |"]
    table += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows(m)]
    name = str(prev.get("ref", "")).split(":")[0]
    return (head + "\n\n" + "\n".join(table) + f"\n\nFull comparison: `edgeopt diff {prev.get('ref')} {name}:VERSION` "
            f"with this deploy's version (`edgeopt models {name}`).")


def html_section(m: Mapping[str, Any]) -> str:
    """The same section as HTML; empty without a previous version."""
    prev = m.get("previous")
    if not isinstance(prev, Mapping):
        return ""
    e = html.escape
    link = prev.get("report_html") or prev.get("report") or ""
    ref = e(str(prev.get("ref")))
    intro = f"<a href='{e(link)}'>{ref}</a>" if link else ref
    body = "".join(f"<tr><td>{e(a)}</td><td>{e(b)}</td><td>{e(c)}</td><td>{e(d)}</td></tr>" for a, b, c, d in rows(m))
    return (
        f"<h2>Previous version</h2><p>This deploy replaces {intro} (registered {e(str(prev.get('created')))}).</p>"
        f"<table><tr><th>figure</th><th>previous</th><th>this deploy</th><th>change</th></tr>{body}</table>"
    )
