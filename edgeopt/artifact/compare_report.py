"""Rendering of a comparison (``Comparison.to_dict()``): a text table, a plot and a self-contained HTML page.

Used by ``edgeopt compare`` and by the report of a ``--target auto`` artifact (its manifest's ``selection``).
"""

from __future__ import annotations

import html
import io
from collections.abc import Mapping
from typing import Any

from edgeopt.extras import plots_note

HEADERS = ("target", "plan", "precision", "threads x batch", "p50 (± sd)", "p90", "samples/s", "size", "metric",
           "drop", "energy/inference", "status")


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x * 1e3:.3g} ms"


def _size(n: float | None) -> str:
    if n is None:
        return "—"
    return f"{n / 1024:.1f} KiB" if n < 1024**2 else f"{n / 1024**2:.2f} MiB"


def _num(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def rows(comparison: Mapping[str, Any]) -> list[list[str]]:
    """One list of cells per target, in ``HEADERS`` order; a target without a winner shows its reason."""
    out = []
    for r in comparison.get("results") or []:
        lat, setting = r.get("latency"), r.get("setting")
        if lat is None:
            out.append([r["target"], "—", "—", "—", "—", "—", "—", "—", "—", "—", "—",
                        f"{r['status']}: {r.get('reason', '')}"])
            continue
        threads = setting.get("threads") if setting else None
        metric = f"{r.get('metric')} {_num(r.get('candidate'))}" if r.get("metric") else "—"
        energy = f"{_num(r.get('energy_j'), 3)} J ({r.get('energy_method')})" if r.get("energy_j") is not None else "—"
        out.append([
            r["target"], r.get("label", ""), r.get("precision", ""),
            f"{threads if threads is not None else 'auto'} x {setting.get('batch') if setting else 1}",
            f"{_ms(lat['p50'])} ± {_ms(lat['stdev'])}", _ms(lat["p90"]), _num(lat["throughput"], 5),
            _size(r.get("size_bytes")), metric, _num(r.get("drop"), 3), energy, r["status"],
        ])
    return out


def markdown_table(comparison: Mapping[str, Any]) -> str:
    """The comparison as a Markdown table (docs/benchmarks.md, report.md)."""
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    lines += ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in rows(comparison)]
    return "\n".join(lines)


def latency_figure(comparison: Mapping[str, Any]) -> Any | None:
    """Horizontal bars of each target's p50 with whiskers from min to p90 (None when nothing was timed)."""
    from matplotlib.figure import Figure

    timed = [r for r in comparison.get("results") or [] if r.get("latency")]
    if not timed:
        return None
    fig = Figure(figsize=(7, 0.5 + 0.45 * len(timed)), dpi=100)
    ax = fig.subplots()
    names = [f"{r['target']}: {r.get('label', '')}" for r in timed]
    p50 = [r["latency"]["p50"] * 1e3 for r in timed]
    low = [max(0.0, (r["latency"]["p50"] - r["latency"]["min"]) * 1e3) for r in timed]
    high = [max(0.0, (r["latency"]["p90"] - r["latency"]["p50"]) * 1e3) for r in timed]
    colors = ["#2a7" if r["status"] == "winner" else "#89a" for r in timed]
    ax.barh(range(len(timed)), p50, xerr=[low, high], color=colors, capsize=3)
    ax.set_yticks(range(len(timed)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("latency per call, ms (bar p50, whiskers min..p90)")
    ax.set_title(f"{comparison.get('model')} on {comparison.get('device')} ({comparison.get('objective')})",
                 fontsize=9)
    return fig


def figure_svg(comparison: Mapping[str, Any]) -> str:
    """The latency figure as inline SVG, or a note when nothing was timed or matplotlib is not installed (the
    tables say everything the plot does; ``edgeopt.extras.plots_note``)."""
    note = plots_note()
    if note is not None:
        return f'<p class="note">{html.escape(note)}</p>'
    import matplotlib

    fig = latency_figure(comparison)
    if fig is None:
        return "<p>No target produced a timed candidate.</p>"
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "edgeopt"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def html_section(comparison: Mapping[str, Any]) -> str:
    """The plot, the table and why the winner won, as an HTML fragment."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in HEADERS)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows(comparison))
    timing = comparison.get("timing") or {}
    notes = [f"Winner: {comparison.get('why', '')}", f"Timing: {timing.get('method', '')}; ranked by "
             f"{timing.get('rank', '')}."]
    notes += list(comparison.get("warnings") or [])
    return (figure_svg(comparison) + f"<table><tr>{head}</tr>{body}</table>"
            + "".join(f'<p class="note">{e(n)}</p>' for n in notes))


def render_compare_html(comparison: Mapping[str, Any]) -> str:
    """A self-contained page (no scripts, no external files) for ``edgeopt compare``."""
    title = f"edgeopt compare: {comparison.get('model')} on {comparison.get('device')}"
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse;"
             "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px}.note{color:#555;font-size:13px}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body><h1>{html.escape(title)}</h1>"
            f"{html_section(comparison)}</body></html>\n")
