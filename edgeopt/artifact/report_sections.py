"""The detail sections of ``report.md``: latency, candidates, search, sensitivity, compression, passes, model,
environment, files.

Pure functions of the manifest; each returns its Markdown section, or ``""`` when the manifest has nothing for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeopt.artifact.report_format import (
    cell,
    fidelity_text,
    fmt,
    fmt_bytes,
    fmt_seconds,
    lookup,
    md_table,
    num,
    params_text,
)


def compression(m: Mapping[str, Any]) -> str:
    """Every compression stage (``edgeopt.compress``) before/after: params, FLOPs, size, metric, latency."""
    c = m.get("compression")
    if not isinstance(c, Mapping) or not c.get("stages"):
        return ""
    rows = [
        (s.get("name"), s.get("params"), s.get("nonzero_params"), s.get("flops"), fmt_bytes(s.get("size_bytes")),
         fmt(s.get("metric")), fmt_seconds((s.get("latency") or {}).get("p50_s")))
        for s in c["stages"]
    ]
    method = (c["stages"][0].get("latency") or {}).get("method", "")
    lines = ["## Compression", "",
             md_table(["stage", "params", "nonzero", "FLOPs", "size", "metric", "p50"], rows), "",
             f"Latency: {method}, batch {(c['stages'][0].get('latency') or {}).get('batch')}."]
    deployed, budget = c.get("deployed") or {}, c.get("budget") or {}
    if deployed:
        lines.append(f"Deployed model: metric {fmt(deployed.get('metric'))}, drop against the uncompressed model "
                     f"{fmt(deployed.get('drop_vs_uncompressed'))}.")
    if budget:
        lines.append(f"--max-drop {fmt(budget.get('max_drop'))}: compression used "
                     f"{fmt(budget.get('compression_drop'))}, the target's check got "
                     f"{fmt(budget.get('target_max_drop'))}.")
    lines += [f"- {n}" for n in c.get("notes") or []]
    return "\n".join(lines)


def latency(m: Mapping[str, Any]) -> str:
    lat = lookup(m, "profile", "latency")
    if not isinstance(lat, Mapping) or len(lat) < 2:
        return ""  # a single batch size is already in the summary
    rows = []
    for batch, st in sorted(lat.items(), key=lambda kv: (len(str(kv[0])), str(kv[0]))):
        if isinstance(st, Mapping) and st.get("error"):
            rows.append([batch, "not supported", "", "", "", "", "", "", st["error"]])
        elif isinstance(st, Mapping):
            rows.append(
                [batch]
                + [fmt_seconds(st.get(k)) or "n/a" for k in ("p50", "p90", "p99", "min", "mean")]
                + [fmt(st.get("throughput")), st.get("runs", ""), st.get("method", "")]
            )
    headers = ["batch", "p50", "p90", "p99", "min", "mean", "samples/s", "runs", "method"]
    return "## Latency by batch size\n\n" + md_table(headers, rows) if rows else ""


def candidates(m: Mapping[str, Any]) -> str:
    cands = [c for c in m.get("candidates") or [] if isinstance(c, Mapping)]
    if not cands:
        return ""
    chosen = lookup(m, "plan", "label")
    rows = [
        [
            c.get("label") or c.get("precision") or "?",
            c.get("precision", ""),
            f"{c.get('status', '')} (chosen)" if chosen and c.get("label") == chosen else c.get("status", ""),
            fmt_seconds(c.get("latency_p50_s")) or "",
            _candidate_metric(c),
            fidelity_text(c.get("fidelity")) or "",
            c.get("reason") or "",
        ]
        for c in cands
    ]
    headers = ["candidate", "precision", "status", "p50 latency", "metric (drop)", "fidelity", "reason"]
    return "## Candidates measured\n\n" + md_table(headers, rows)


def search(m: Mapping[str, Any]) -> str:
    search = lookup(m, "search")
    if not isinstance(search, Mapping) or not search:
        return ""
    lines = []
    if search.get("report_html"):
        lines.append(f"Plots (latency vs quality, per-layer sensitivity): [{search['report_html']}]"
                     f"({search['report_html']}).")
    budget = num(search.get("budget_s"))
    cache = search.get("cache") if isinstance(search.get("cache"), Mapping) else {}
    facts = [f"{search.get('evaluated', '?')} candidate(s) evaluated in {fmt(search.get('elapsed_s'), 3)} s",
             f"search budget {budget:g} s" if budget is not None else "no search budget"]
    if cache.get("enabled"):
        facts.append(f"{cache.get('hits', 0)} reused from the cache ({cache.get('timing') or 'timings re-measured'})")
    else:
        facts.append("cache off")
    lines.append("- " + "; ".join(facts) + ".")
    decision = m.get("decision")
    if isinstance(decision, Mapping) and decision.get("statement"):
        lines.append(f"- Choice: {cell(decision['statement'])} ({cell(decision.get('method', ''))}).")
    skipped = [str(s) for s in search.get("skipped") or []]
    if skipped:
        lines.append(f"- Skipped (search budget): {', '.join(cell(s) for s in skipped)}.")
    fb = search.get("fallback")
    if isinstance(fb, Mapping):
        units = search.get("units") or ""
        steps = "; ".join(
            f"{len(st.get('keep_fp32') or [])} node(s) in fp32 → {st.get('status')}"
            + (f" (drop {fmt(st.get('drop'), 3)} {units})" if num(st.get("drop")) is not None else "")
            for st in fb.get("steps") or [] if isinstance(st, Mapping)
        )
        state = "recovered" if fb.get("recovered") else "not recovered"
        lines.append(f"- Mixed-precision fallback from {cell(fb.get('base'))} "
                     f"(drop {fmt(fb.get('base_drop'), 3)} {units}): {steps or 'no step'}; {state}.")
    for note in search.get("notes") or []:
        lines.append(f"- {cell(note)}")
    return "## Search\n\n" + "\n".join(lines)


def sensitivity(m: Mapping[str, Any]) -> str:
    rows = [r for r in m.get("sensitivity") or [] if isinstance(r, Mapping)]
    if not rows:
        return ""
    info = lookup(m, "search", "sensitivity")
    head = ""
    if isinstance(info, Mapping):
        head = (f"Method `{info.get('method')}` on {cell(info.get('candidate'))}, {info.get('samples', 0)} samples. "
                "Contribution: SQNR of the noise each node adds (dB, lower is more sensitive).\n\n")
    table = md_table(
        ["rank", "node", "op", "contribution (dB)", "output SQNR (dB)", "drop recovered", "kept in fp32"],
        ([r.get("rank"), f"`{r.get('node')}`", r.get("op_type"), fmt(r.get("contribution_db")),
          fmt(r.get("sqnr_db")), fmt(r.get("drop_gain")) if r.get("drop_gain") is not None else "",
          "yes" if r.get("kept_fp32") else ""] for r in rows[:20]),
    )
    more = f"\n\n({len(rows) - 20} more in manifest.json)" if len(rows) > 20 else ""
    return "## Per-layer sensitivity\n\n" + head + table + more


def _candidate_metric(c: Mapping[str, Any]) -> str:
    value, drop = num(c.get("candidate")), num(c.get("drop"))
    if value is None:
        return f"drop {fmt(drop)}" if drop is not None else ""
    return fmt(value) + (f" ({fmt(drop)})" if drop is not None else "")


def passes(m: Mapping[str, Any]) -> str:
    passes = [p for p in lookup(m, "plan", "passes") or [] if isinstance(p, Mapping) and p.get("name")]
    if not passes:
        return ""
    lines = [f"{i}. `{p['name']}`" + (f" — {params_text(p.get('params'))}" if params_text(p.get("params")) else "")
             for i, p in enumerate(passes, 1)]
    return "## Passes applied\n\n" + "\n".join(lines)


def model(m: Mapping[str, Any]) -> str:
    parts = []
    src = lookup(m, "source")
    if isinstance(src, Mapping) and src:
        facts = [f"{k}: `{cell(src[k])}`" for k in ("path", "format", "opset", "fingerprint") if src.get(k)]
        if facts:
            parts.append("Source — " + ", ".join(facts))
    graph = lookup(m, "graph")
    if isinstance(graph, Mapping):
        if graph.get("fingerprint") or graph.get("opset"):
            opset, fingerprint = graph.get("opset", "?"), graph.get("fingerprint", "?")
            size = "".join(
                f", {fmt(graph[k], 3)} {k}" for k in ("params", "flops") if num(graph.get(k)) is not None
            )
            parts.append(f"Normalized graph — opset {opset}{size}, fingerprint `{fingerprint}`")
        rows = [
            [role[:-1], t.get("name", ""), t.get("dtype", ""), str(list(t.get("shape") or []))]
            for role in ("inputs", "outputs")
            for t in graph.get(role) or []
            if isinstance(t, Mapping)
        ]
        if rows:
            parts.append(md_table(["", "name", "dtype", "shape"], rows))
        notes = [str(n) for n in graph.get("notes") or []]
        if notes:
            parts.append("Notes:\n" + "\n".join(f"- {cell(n)}" for n in notes))
    return "## Model\n\n" + "\n\n".join(parts) if parts else ""


def environment(m: Mapping[str, Any]) -> str:
    env = lookup(m, "environment")
    if not isinstance(env, Mapping) or not env:
        return ""
    rows = [[k, env[k]] for k in ("python", "platform", "cpu") if env.get(k)]
    packages = env.get("packages")
    if isinstance(packages, Mapping):
        rows += [[name, version] for name, version in sorted(packages.items())]
    rows += [[k, v] for k, v in env.items() if k not in ("python", "platform", "cpu", "packages") and v]
    host = lookup(m, "profile", "host_state")
    if isinstance(host, Mapping) and host:
        load = host.get("load_average")
        governor = host.get("cpu_governor")
        rows.append(["host when profiled", f"load average {' / '.join(map(str, load)) if load else 'n/a'} on "
                     f"{host.get('cpus', '?')} CPUs; CPU governor "
                     + (", ".join(f"{g} ({n})" for g, n in governor.items()) if governor else "not readable")])
    return "## Environment\n\n" + md_table(["component", "version"], rows) if rows else ""


def files(m: Mapping[str, Any]) -> str:
    files = m.get("files")
    if not isinstance(files, Mapping) or not files:
        return ""
    rows = [
        [f"`{name}`", fmt_bytes(lookup(e, "bytes")) or "", str(lookup(e, "sha256") or "")[:16]]
        for name, e in sorted(files.items())
    ]
    return "## Files\n\n" + md_table(["file", "size", "sha256 (prefix)"], rows)
