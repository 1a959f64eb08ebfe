"""The HTML matrix of a farm comparison: per model, targets down, devices across; each cell its p50 latency,
size, quality drop and energy with its method, the winner per device in bold, failures with their reason."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.3g} ms"


def _size(n: int | None) -> str:
    if n is None:
        return "—"
    return f"{n / 1e6:.3g} MB" if n >= 1e6 else f"{n / 1e3:.3g} kB"


def cell_text(c: Mapping[str, Any]) -> str:
    """One cell as short text (also used by the CLI table)."""
    if c["status"] not in ("ok", "winner"):
        return f"{c['status']}: {c['reason']}"
    drop = "" if c.get("drop") is None else f", drop {c['drop']:.3g}"
    energy = "" if c.get("energy_j") is None else f", {c['energy_j'] * 1e3:.3g} mJ ({c.get('energy_method', '')})"
    return f"{_ms(c.get('p50_s'))} p50, {_size(c.get('size_bytes'))}, {c.get('plan', '')}{drop}{energy}"


def render_farm_html(data: Mapping[str, Any]) -> str:
    """``FarmComparison.to_dict()`` as one self-contained HTML page."""
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>edgeopt farm comparison</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
        "td,th{border:1px solid #ccc;padding:.4em .6em;vertical-align:top;font-size:90%}"
        ".winner{font-weight:bold;background:#e8f5e9}.bad{color:#a00}small{color:#555}</style></head><body>",
        f"<h1>Farm comparison</h1><p>farm {e(str(data.get('address', '')))}; objective {e(str(data['objective']))}; "
        f"{len(data['cells'])} cells in {data.get('seconds', 0):.1f} s. Each cell was built by the farm and "
        "timed on the device named in its column, one timing job per device at a time; the artifact was "
        "verified by hash before it was written here.</p>",
    ]
    for model in data["models"]:
        cells = {(c["target"], c["device"]): c for c in data["cells"] if c["model"] == model}
        parts.append(f"<h2>{e(model)}</h2><table><tr><th>target</th>")
        parts += [f"<th>{e(d)}</th>" for d in data["devices"]]
        parts.append("</tr>")
        for target in data["targets"]:
            parts.append(f"<tr><th>{e(target)}</th>")
            for device in data["devices"]:
                c = cells.get((target, device))
                if c is None:
                    parts.append("<td>—</td>")
                    continue
                cls = "winner" if c["status"] == "winner" else ("" if c["status"] == "ok" else "bad")
                where = c.get("measured_on") or {}
                note = f"<br><small>measured on {e(str(where.get('host', '')))} node " \
                       f"{e(str(where.get('node', ''))[:8])}; {e(c.get('registry_ref', ''))}</small>" if where else ""
                hint = f"<br><small>{e(c['hint'])}</small>" if c.get("hint") else ""
                parts.append(f"<td class='{cls}'>{e(cell_text(c))}{note}{hint}</td>")
            parts.append("</tr>")
        parts.append("</table>")
    if data.get("warnings"):
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{e(w)}</li>" for w in data["warnings"]) + "</ul>")
    parts.append("</body></html>")
    return "".join(parts)
