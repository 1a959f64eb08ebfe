"""``report.html``: the deploy's candidates as a latency-vs-metric Pareto plot, per-layer sensitivity, a table.

A pure function of the manifest. Plots are drawn with matplotlib's Agg backend and inlined as SVG, so the
file opens offline with nothing beside it; without matplotlib (the ``report`` extra) the page keeps its
tables and says that plots need ``edgeopt[report]`` (``edgeopt.extras.plots_note``): a deploy never fails for
want of a plot.
"""

from __future__ import annotations

import html
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

from edgeopt.extras import install_hint, plots_note

HTML_NAME = "report.html"
_STATUS_COLOR = {"accepted": "#2ca02c", "baseline": "#1f77b4", "refused": "#d62728"}
_MARKERS = {"fp32 / float": "s", "quantized": "o", "mixed (fp32 fallback)": "D"}


def _kind(c: Mapping[str, Any]) -> str:
    if c.get("keep_fp32"):
        return "mixed (fp32 fallback)"
    return "fp32 / float" if str(c.get("precision")) in ("fp32", "fp16", "bf16") else "quantized"


def _marker(c: Mapping[str, Any]) -> str:
    return _MARKERS[_kind(c)]


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em;width:100%}td,th{border:1px solid #ddd;padding:3px 6px;text-align:left}
th{background:#f4f4f4}tr.chosen td{background:#eaf6ea;font-weight:600}.note{color:#666;font-size:.9em}
.plot svg{max-width:100%;height:auto}
"""


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _fmt(x: Any, digits: int = 4) -> str:
    v = _num(x)
    return f"{v:.{digits}g}" if v is not None else ("" if x is None else _e(x))


def _chosen_index(cands: Sequence[Mapping[str, Any]], chosen: str | None) -> int | None:
    picks = [i for i, c in enumerate(cands) if c.get("label") == chosen and c.get("status") in ("accepted", "baseline")]
    return picks[0] if picks else None


def _svg(fig: Any) -> str:
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "edgeopt"}):  # stable ids: same manifest, same file
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


def _figure(width: float, height: float) -> tuple[Any, Any]:
    """A matplotlib Figure and its axes, without pyplot (no global backend or figure registry is touched)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    return fig, fig.subplots()


def pareto_front(points: Sequence[tuple[float, float]], *, higher_is_better: bool) -> list[int]:
    """Indices of the points no other point beats on both latency (x, lower) and metric (y), by latency."""
    sign = -1.0 if higher_is_better else 1.0
    order = sorted(range(len(points)), key=lambda i: (points[i][0], sign * points[i][1]))
    front: list[int] = []
    best: float | None = None
    for i in order:
        y = points[i][1]
        if best is None or (y > best if higher_is_better else y < best):
            front.append(i)
            best = y
    return front


def pareto_figure(manifest: Mapping[str, Any]) -> Any | None:
    """The latency-vs-metric figure (matplotlib), or None when no candidate has both figures."""
    cands = [c for c in manifest.get("candidates") or [] if isinstance(c, Mapping)]
    pts = [(i, c) for i, c in enumerate(cands)
           if _num(c.get("latency_p50_s")) is not None and _num(c.get("candidate")) is not None]
    if not pts:
        return None
    met = manifest.get("metrics") or {}
    hib = met.get("higher_is_better", True) is not False
    fig, ax = _figure(9, 5)
    for i, c in pts:
        color = _STATUS_COLOR.get(str(c.get("status")), "#7f7f7f")
        ax.scatter([c["latency_p50_s"] * 1e3], [c["candidate"]], c=color, marker=_marker(c), s=50, zorder=3,
                   edgecolors="black" if c.get("status") == "refused" else "none", linewidths=.5)
        ax.annotate(str(i), (c["latency_p50_s"] * 1e3, c["candidate"]), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    for status, color in _STATUS_COLOR.items():
        if any(c.get("status") == status for _, c in pts):
            ax.scatter([], [], c=color, marker="o", s=40, label=status)
    for kind, marker in _MARKERS.items():
        if any(_kind(c) == kind for _, c in pts):
            ax.scatter([], [], c="#bbbbbb", marker=marker, s=40, label=kind)
    ok = [(i, c) for i, c in pts if c.get("status") in ("accepted", "baseline")]
    if len(ok) > 1:
        front = pareto_front([(c["latency_p50_s"], c["candidate"]) for _, c in ok], higher_is_better=hib)
        xs = [ok[j][1]["latency_p50_s"] * 1e3 for j in front]
        ax.step(xs, [ok[j][1]["candidate"] for j in front], where="post", color="#2ca02c", alpha=.5, lw=1,
                label="Pareto front (accepted)")
    ref, budget = _num(met.get("reference")), _num(met.get("max_drop"))
    if ref is not None and budget is not None:
        ax.axhline(ref - budget if hib else ref + budget, color="#d62728", ls="--", lw=1,
                   label=f"budget: drop {budget:g} {met.get('units') or ''}".rstrip())
        ax.axhline(ref, color="#1f77b4", ls=":", lw=1, label="fp32 reference")
    k = _chosen_index(cands, (manifest.get("plan") or {}).get("label"))
    if k is not None and any(k == i for i, _ in pts):
        ax.scatter([cands[k]["latency_p50_s"] * 1e3], [cands[k]["candidate"]], s=260, marker="*", c="gold",
                   edgecolors="black", zorder=4, label="chosen")
    name = met.get("metric") or "metric"
    ax.set_xlabel("p50 latency per batch (ms, measured interleaved)")
    ax.set_ylabel(f"{name} ({met.get('units') or 'metric units'})")
    ax.set_title("Candidates: latency vs quality (numbers refer to the table)")
    ax.grid(alpha=.3)
    ax.legend(fontsize=8, loc="best")
    return fig


def noise_shares(rows: Sequence[Mapping[str, Any]]) -> list[float]:
    """Each node's share (percent) of the noise all ranked nodes add, from their ``contribution_db``."""
    own = [10 ** (-(_num(r.get("contribution_db")) or 0.0) / 10) for r in rows]
    total = sum(own)
    return [100.0 * o / total if total > 0 else 0.0 for o in own]


def sensitivity_figure(manifest: Mapping[str, Any], *, top: int = 20) -> Any | None:
    """Horizontal bars, most sensitive on top: each node's share of the added noise (activation method), or the
    metric drop recovered by keeping it alone in fp32 (leave-one-fp32 method)."""
    rows = [r for r in manifest.get("sensitivity") or [] if isinstance(r, Mapping)]
    use_gain = bool(rows) and any(_num(r.get("drop_gain")) is not None for r in rows)
    if use_gain:
        rows = [r for r in rows if _num(r.get("drop_gain")) is not None]
        values = [float(r["drop_gain"]) for r in rows]
    else:
        rows = [r for r in rows if _num(r.get("contribution_db")) is not None]
        values = noise_shares(rows)
    rows, values = rows[:top], values[:top]
    if not rows:
        return None
    fig, ax = _figure(9, 0.35 * len(rows) + 1.4)
    names = [f"{r.get('node')} ({r.get('op_type')})" for r in rows][::-1]
    colors = ["#1f77b4" if r.get("kept_fp32") else "#ff7f0e" for r in rows][::-1]
    bars = ax.barh(range(len(rows)), values[::-1], color=colors)
    ax.set_yticks(range(len(rows)), names, fontsize=7)
    if use_gain:
        ax.set_xlabel("metric drop recovered by keeping this node alone in fp32 (metric units)")
    else:
        ax.set_xlabel("share of the quantization noise the node adds (%); label: its SQNR in dB")
        ax.bar_label(bars, [f"{_fmt(r.get('contribution_db'), 3)} dB" for r in rows][::-1], fontsize=7, padding=2)
    ax.set_title("Per-layer sensitivity, most sensitive on top (blue: kept in fp32 in the chosen model)")
    ax.grid(axis="x", alpha=.3)
    return fig


def _plot(factory: Any, manifest: Mapping[str, Any], missing: str) -> str:
    """The figure ``factory`` draws as inline SVG; without matplotlib, a note saying plots need edgeopt[report]."""
    note = plots_note()
    if note is not None:
        return f'<p class="note">{_e(note)}</p>'
    try:
        fig = factory(manifest)
    except ImportError as exc:  # installed but broken
        why = f"Plot not drawn: matplotlib cannot be imported ({exc}); reinstall it: {install_hint('report')}."
        return f'<p class="note">{_e(why)}</p>'
    if fig is None:
        return f'<p class="note">{_e(missing)}</p>'
    return f'<div class="plot">{_svg(fig)}</div>'


def _candidate_table(manifest: Mapping[str, Any]) -> str:
    cands = [c for c in manifest.get("candidates") or [] if isinstance(c, Mapping)]
    k = _chosen_index(cands, (manifest.get("plan") or {}).get("label"))
    head = ["#", "candidate", "status", "p50 ms", "metric", "drop", "SQNR dB", "fp32 nodes", "cached", "reason"]
    rows = []
    for i, c in enumerate(cands):
        p50 = _num(c.get("latency_p50_s"))
        cells = [i, c.get("label"), c.get("status") + (" (chosen)" if i == k else ""),
                 f"{p50 * 1e3:.4g}" if p50 is not None else "", _fmt(c.get("candidate")), _fmt(c.get("drop"), 3),
                 _fmt((c.get("fidelity") or {}).get("sqnr_db"), 3), len(c.get("keep_fp32") or []) or "",
                 "yes" if c.get("cached") else "", c.get("reason")]
        cls = ' class="chosen"' if i == k else ""
        rows.append(f"<tr{cls}>" + "".join(f"<td>{_e(x)}</td>" for x in cells) + "</tr>")
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"


def _sensitivity_table(manifest: Mapping[str, Any]) -> str:
    rows = [r for r in manifest.get("sensitivity") or [] if isinstance(r, Mapping)]
    if not rows:
        return ""
    head = ["rank", "node", "op", "contribution dB", "output SQNR dB", "drop recovered", "kept fp32"]
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(x)}</td>" for x in (
            r.get("rank"), r.get("node"), r.get("op_type"), _fmt(r.get("contribution_db")), _fmt(r.get("sqnr_db")),
            _fmt(r.get("drop_gain")), "yes" if r.get("kept_fp32") else "")) + "</tr>"
        for r in rows
    )
    return "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + body + "</table>"


def _facts(manifest: Mapping[str, Any]) -> str:
    met, search = manifest.get("metrics") or {}, manifest.get("search") or {}
    plan = manifest.get("plan") or {}
    items = [
        ("Chosen", f"{plan.get('label') or plan.get('precision')}"),
        ("Metric", f"{met.get('metric')}: {_fmt(met.get('reference'))} → {_fmt(met.get('candidate'))} "
                   f"(drop {_fmt(met.get('drop'), 3)} {met.get('units') or ''}, budget {_fmt(met.get('max_drop'))})"),
    ]
    if search:
        cache = search.get("cache") or {}
        items.append(("Search", f"{search.get('evaluated')} candidate(s) in {_fmt(search.get('elapsed_s'), 3)} s, "
                                f"{cache.get('hits', 0)} reused from the cache, {len(search.get('skipped') or [])} "
                                f"skipped by the budget ({search.get('budget_s') or 'no limit'} s)"))
        if search.get("fallback"):
            fb = search["fallback"]
            items.append(("Fallback", f"from {fb.get('base')}: {len(fb.get('steps') or [])} step(s), "
                                      f"{'recovered' if fb.get('recovered') else 'not recovered'}"))
        sens = search.get("sensitivity") or {}
        if sens:
            items.append(("Sensitivity", f"{sens.get('method')} on {sens.get('candidate')} "
                                         f"({sens.get('samples')} samples)"))
    return "<ul>" + "".join(f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in items) + "</ul>"


def _previous_section(m: Mapping[str, Any]) -> str:
    """The last registered version's figures next to this deploy's, linked (see ``edgeopt.registry``)."""
    from edgeopt.artifact.previous_section import html_section

    return html_section(m)


def _runtimes_section(m: Mapping[str, Any]) -> str:
    """``--target auto``: every target measured, plotted, and why the winner won (see ``edgeopt.compare``)."""
    if not isinstance(m.get("selection"), Mapping):
        return ""
    from edgeopt.artifact.compare_report import html_section

    return "<h2>Runtimes compared (--target auto)</h2>" + html_section(m["selection"])


def render_html(manifest: Mapping[str, Any]) -> str:
    """A self-contained HTML page for a deploy manifest (no scripts, no external files)."""
    m = manifest if isinstance(manifest, Mapping) else {}
    source = (m.get("source") or {}).get("path") or "model"
    target, device = (m.get("target") or {}).get("name"), (m.get("device") or {}).get("name")
    title = f"edgeopt report: {source} → {target} on {device}"
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        _facts(m),
        _previous_section(m),
        _runtimes_section(m),
        "<h2>Latency vs quality</h2>",
        _plot(pareto_figure, m, "No candidate has both a latency and a metric value to plot."),
        "<h2>Candidates</h2>",
        _candidate_table(m),
    ]
    if m.get("sensitivity"):
        parts += ["<h2>Per-layer sensitivity</h2>",
                  _plot(sensitivity_figure, m, "No node has a sensitivity figure to plot."), _sensitivity_table(m)]
        notes = ((m.get("search") or {}).get("sensitivity") or {}).get("notes") or []
        parts += [f'<p class="note">{_e(n)}</p>' for n in notes]
    parts.append('<p class="note">Full details: report.md and manifest.json in this artifact.</p></body></html>')
    return "\n".join(parts) + "\n"
