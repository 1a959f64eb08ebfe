"""``report.md``: the manifest of a deploy rendered for people.

Pure function of the manifest (no I/O), defensive about missing fields: a section whose data is absent is
left out rather than filled with guesses. Every number is printed with the method that produced it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Any


def render_markdown(manifest: Mapping[str, Any]) -> str:
    """Render a deploy manifest (see ``docs/architecture.md``) as Markdown."""
    m = manifest if isinstance(manifest, Mapping) else {}
    sections = [
        _title(m),
        _warnings(m),
        _summary(m),
        _previous(m),
        _latency(m),
        _runtimes(m),
        _candidates(m),
        _search(m),
        _sensitivity(m),
        _compression(m),
        _passes(m),
        _model(m),
        _environment(m),
        _files(m),
    ]
    return "\n\n".join(s for s in sections if s).rstrip() + "\n"


def _compression(m: Mapping[str, Any]) -> str:
    """Every compression stage (``edgeopt.compress``) before/after: params, FLOPs, size, metric, latency."""
    c = m.get("compression")
    if not isinstance(c, Mapping) or not c.get("stages"):
        return ""
    rows = [
        (s.get("name"), s.get("params"), s.get("nonzero_params"), s.get("flops"), _bytes(s.get("size_bytes")),
         _fmt(s.get("metric")), _seconds((s.get("latency") or {}).get("p50_s")))
        for s in c["stages"]
    ]
    method = (c["stages"][0].get("latency") or {}).get("method", "")
    lines = ["## Compression", "",
             _table(["stage", "params", "nonzero", "FLOPs", "size", "metric", "p50"], rows), "",
             f"Latency: {method}, batch {(c['stages'][0].get('latency') or {}).get('batch')}."]
    deployed, budget = c.get("deployed") or {}, c.get("budget") or {}
    if deployed:
        lines.append(f"Deployed model: metric {_fmt(deployed.get('metric'))}, drop against the uncompressed model "
                     f"{_fmt(deployed.get('drop_vs_uncompressed'))}.")
    if budget:
        lines.append(f"--max-drop {_fmt(budget.get('max_drop'))}: compression used "
                     f"{_fmt(budget.get('compression_drop'))}, the target's check got "
                     f"{_fmt(budget.get('target_max_drop'))}.")
    lines += [f"- {n}" for n in c.get("notes") or []]
    return "\n".join(lines)


def _previous(m: Mapping[str, Any]) -> str:
    """The last registered version's figures next to this deploy's, linked (see ``edgeopt.registry``)."""
    from edgeopt.artifact.previous_section import markdown

    return markdown(m)


def _runtimes(m: Mapping[str, Any]) -> str:
    """``--target auto``: every target measured and why the winner won (see ``edgeopt.compare``)."""
    selection = m.get("selection")
    if not isinstance(selection, Mapping):
        return ""
    from edgeopt.artifact.compare_report import markdown_table

    return f"## Runtimes compared (--target auto)\n\n{markdown_table(selection)}\n\nWinner: {selection.get('why', '')}"


# -------------------------------------------------------------------------------------------- helpers


def lookup(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...``, or None where a level is missing or not a mapping (manifests of any age render)."""
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def _num(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def _seconds(x: Any) -> str | None:
    v = _num(x)
    if v is None:
        return None
    if v < 1e-3:
        return f"{v * 1e6:.1f} µs"
    return f"{v * 1e3:.3g} ms" if v < 1 else f"{v:.3g} s"


def _bytes(x: Any) -> str | None:
    v = _num(x)
    if v is None:
        return None
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(v) < 1024 or unit == "GiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.2f} {unit}"
        v /= 1024
    return None


def _joules(x: Any) -> str | None:
    v = _num(x)
    if v is None:
        return None
    if v < 1e-3:
        return f"{v * 1e6:.1f} µJ"
    return f"{v * 1e3:.3g} mJ" if v < 1 else f"{v:.3g} J"


def _fmt(x: Any, digits: int = 4) -> str:
    v = _num(x)
    if v is not None:
        return f"{v:.{digits}g}"
    return "n/a" if x is None else str(x)


def _cell(x: Any) -> str:
    return ("" if x is None else str(x)).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _params(params: Any) -> str:
    if not isinstance(params, Mapping) or not params:
        return ""
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _fidelity_text(fid: Any) -> str | None:
    if _num(fid) is not None:
        return _fmt(fid)
    if not isinstance(fid, Mapping):
        return None
    parts = []
    if _num(fid.get("top1_agreement")) is not None:
        parts.append(f"top-1 agreement {fid['top1_agreement']:.1f}%")
    if _num(fid.get("cosine")) is not None:
        parts.append(f"cosine {fid['cosine']:.5f}")
    if _num(fid.get("sqnr_db")) is not None:
        parts.append(f"SQNR {fid['sqnr_db']:.1f} dB")
    if _num(fid.get("max_abs_error")) is not None:
        parts.append(f"max abs error {fid['max_abs_error']:.3g}")
    return ", ".join(parts) or None


def _main_latency(m: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    lat = lookup(m, "profile", "latency")
    if not isinstance(lat, Mapping):
        return None
    stats = {str(k): v for k, v in lat.items() if isinstance(v, Mapping) and _num(v.get("p50")) is not None}
    if not stats:
        return None
    key = "1" if "1" in stats else min(stats, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
    return key, stats[key]


# ------------------------------------------------------------------------------------------- sections


def _title(m: Mapping[str, Any]) -> str:
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


def _warnings(m: Mapping[str, Any]) -> str:
    raw = m.get("warnings") or []
    warnings = [str(w) for w in ([raw] if isinstance(raw, str) else raw) if w]
    if lookup(m, "metrics", "synthetic_data") and not any("synthetic" in w.lower() for w in warnings):
        warnings.insert(0, "Quality was checked on synthetic data only; give real data to measure accuracy.")
    if not warnings:
        return ""
    return "## Warnings\n\n" + "\n".join(f"- **{_cell(w)}**" for w in warnings)


def _summary(m: Mapping[str, Any]) -> str:
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
    joules = _joules(lookup(energy, "joules_per_inference"))
    if joules:
        rows.append(("Energy per inference", f"{joules} ({energy.get('method') or 'method unknown'})"))
    memory = lookup(m, "profile", "memory")
    if isinstance(memory, Mapping) and any(_num(v) is not None for v in memory.values()):
        text = ", ".join(
            f"{str(k).removesuffix('_bytes').replace('_', ' ')} {_bytes(v) if 'bytes' in str(k) else _fmt(v)}"
            for k, v in memory.items()
            if _num(v) is not None
        )
        rows.append(("Memory", text + (f" ({memory['method']})" if memory.get("method") else "")))
    rows += _summary_data(m)
    if not rows:
        return ""
    return "## Summary\n\n" + _table(["", ""], rows)


def _summary_speed(m: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    main = _main_latency(m)
    measured = None
    if main:
        batch, st = main
        measured = _seconds(st.get("p50"))
        if measured:
            runs = f", {st['runs']} runs" if st.get("runs") else ""
            p90 = f", p90 {_seconds(st.get('p90'))}" if _seconds(st.get("p90")) else ""
            rows.append(
                (f"Latency (batch {batch})", f"p50 {measured}{p90} ({st.get('method', 'method unknown')}{runs})")
            )
        if _num(st.get("throughput")) is not None:
            rows.append(("Throughput", f"{st['throughput']:.4g} samples/s at batch {batch}"))
    roof = lookup(m, "profile", "roofline")
    if _seconds(lookup(roof, "seconds")):
        text = f"{_seconds(roof['seconds'])} ({roof.get('method', 'estimated:roofline')})"
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
    after = _num(lookup(m, "profile", "size_bytes"))
    before = next(
        (v for v in (_num(lookup(m, "source", "size_bytes")), _num(lookup(m, "graph", "size_bytes"))) if v is not None),
        None,
    )
    if after is None:
        return []
    method = lookup(m, "profile", "size_method")
    how = f" ({method})" if method else ""
    if before:
        change = (after - before) / before * 100
        return [("Model size", f"{_bytes(before)} → {_bytes(after)} ({change:+.1f}%){how}")]
    return [("Model size", f"{_bytes(after)}{how}")]


def _summary_quality(m: Mapping[str, Any]) -> list[tuple[str, str]]:
    met = lookup(m, "metrics")
    if not isinstance(met, Mapping):
        return []
    rows = []
    name, units = met.get("metric"), met.get("units") or ""
    ref, cand, drop, budget = met.get("reference"), met.get("candidate"), met.get("drop"), met.get("max_drop")
    if name and (ref is not None or cand is not None):
        unit = f" {units}" if units else ""
        text = f"{_fmt(ref)} → {_fmt(cand)}{unit}"
        if _num(drop) is not None:
            text += f" (drop {_fmt(drop)}" + (f", budget {_fmt(budget)}" if _num(budget) is not None else "") + ")"
        label = "Fidelity" if str(name).startswith("fidelity:") else "Metric"
        rows.append((f"{label} ({name})", text))
        if met.get("proxy"):
            rows.append(("Fidelity proxy", str(met["proxy"])))
    fid = _fidelity_text(met.get("fidelity"))
    if fid:
        rows.append(("Agreement with original", fid))
    if met.get("samples") and not isinstance(lookup(m, "data", "evaluation"), Mapping):
        kind = "synthetic" if met.get("synthetic_data") else "real"
        rows.append(("Evaluation data", f"{met['samples']} samples, {kind}"))
    return rows


def _latency(m: Mapping[str, Any]) -> str:
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
                + [_seconds(st.get(k)) or "n/a" for k in ("p50", "p90", "p99", "min", "mean")]
                + [_fmt(st.get("throughput")), st.get("runs", ""), st.get("method", "")]
            )
    headers = ["batch", "p50", "p90", "p99", "min", "mean", "samples/s", "runs", "method"]
    return "## Latency by batch size\n\n" + _table(headers, rows) if rows else ""


def _candidates(m: Mapping[str, Any]) -> str:
    cands = [c for c in m.get("candidates") or [] if isinstance(c, Mapping)]
    if not cands:
        return ""
    chosen = lookup(m, "plan", "label")
    rows = [
        [
            c.get("label") or c.get("precision") or "?",
            c.get("precision", ""),
            f"{c.get('status', '')} (chosen)" if chosen and c.get("label") == chosen else c.get("status", ""),
            _seconds(c.get("latency_p50_s")) or "",
            _candidate_metric(c),
            _fidelity_text(c.get("fidelity")) or "",
            c.get("reason") or "",
        ]
        for c in cands
    ]
    headers = ["candidate", "precision", "status", "p50 latency", "metric (drop)", "fidelity", "reason"]
    return "## Candidates measured\n\n" + _table(headers, rows)


def _search(m: Mapping[str, Any]) -> str:
    search = lookup(m, "search")
    if not isinstance(search, Mapping) or not search:
        return ""
    lines = []
    if search.get("report_html"):
        lines.append(f"Plots (latency vs quality, per-layer sensitivity): [{search['report_html']}]"
                     f"({search['report_html']}).")
    budget = _num(search.get("budget_s"))
    cache = search.get("cache") if isinstance(search.get("cache"), Mapping) else {}
    facts = [f"{search.get('evaluated', '?')} candidate(s) evaluated in {_fmt(search.get('elapsed_s'), 3)} s",
             f"search budget {budget:g} s" if budget is not None else "no search budget"]
    if cache.get("enabled"):
        facts.append(f"{cache.get('hits', 0)} reused from the cache ({cache.get('timing') or 'timings re-measured'})")
    else:
        facts.append("cache off")
    lines.append("- " + "; ".join(facts) + ".")
    decision = m.get("decision")
    if isinstance(decision, Mapping) and decision.get("statement"):
        lines.append(f"- Choice: {_cell(decision['statement'])} ({_cell(decision.get('method', ''))}).")
    skipped = [str(s) for s in search.get("skipped") or []]
    if skipped:
        lines.append(f"- Skipped (search budget): {', '.join(_cell(s) for s in skipped)}.")
    fb = search.get("fallback")
    if isinstance(fb, Mapping):
        units = search.get("units") or ""
        steps = "; ".join(
            f"{len(st.get('keep_fp32') or [])} node(s) in fp32 → {st.get('status')}"
            + (f" (drop {_fmt(st.get('drop'), 3)} {units})" if _num(st.get("drop")) is not None else "")
            for st in fb.get("steps") or [] if isinstance(st, Mapping)
        )
        state = "recovered" if fb.get("recovered") else "not recovered"
        lines.append(f"- Mixed-precision fallback from {_cell(fb.get('base'))} "
                     f"(drop {_fmt(fb.get('base_drop'), 3)} {units}): {steps or 'no step'}; {state}.")
    for note in search.get("notes") or []:
        lines.append(f"- {_cell(note)}")
    return "## Search\n\n" + "\n".join(lines)


def _sensitivity(m: Mapping[str, Any]) -> str:
    rows = [r for r in m.get("sensitivity") or [] if isinstance(r, Mapping)]
    if not rows:
        return ""
    info = lookup(m, "search", "sensitivity")
    head = ""
    if isinstance(info, Mapping):
        head = (f"Method `{info.get('method')}` on {_cell(info.get('candidate'))}, {info.get('samples', 0)} samples. "
                "Contribution: SQNR of the noise each node adds (dB, lower is more sensitive).\n\n")
    table = _table(
        ["rank", "node", "op", "contribution (dB)", "output SQNR (dB)", "drop recovered", "kept in fp32"],
        ([r.get("rank"), f"`{r.get('node')}`", r.get("op_type"), _fmt(r.get("contribution_db")),
          _fmt(r.get("sqnr_db")), _fmt(r.get("drop_gain")) if r.get("drop_gain") is not None else "",
          "yes" if r.get("kept_fp32") else ""] for r in rows[:20]),
    )
    more = f"\n\n({len(rows) - 20} more in manifest.json)" if len(rows) > 20 else ""
    return "## Per-layer sensitivity\n\n" + head + table + more


def _candidate_metric(c: Mapping[str, Any]) -> str:
    value, drop = _num(c.get("candidate")), _num(c.get("drop"))
    if value is None:
        return f"drop {_fmt(drop)}" if drop is not None else ""
    return _fmt(value) + (f" ({_fmt(drop)})" if drop is not None else "")


def _passes(m: Mapping[str, Any]) -> str:
    passes = [p for p in lookup(m, "plan", "passes") or [] if isinstance(p, Mapping) and p.get("name")]
    if not passes:
        return ""
    lines = [f"{i}. `{p['name']}`" + (f" — {_params(p.get('params'))}" if _params(p.get("params")) else "")
             for i, p in enumerate(passes, 1)]
    return "## Passes applied\n\n" + "\n".join(lines)


def _model(m: Mapping[str, Any]) -> str:
    parts = []
    src = lookup(m, "source")
    if isinstance(src, Mapping) and src:
        facts = [f"{k}: `{_cell(src[k])}`" for k in ("path", "format", "opset", "fingerprint") if src.get(k)]
        if facts:
            parts.append("Source — " + ", ".join(facts))
    graph = lookup(m, "graph")
    if isinstance(graph, Mapping):
        if graph.get("fingerprint") or graph.get("opset"):
            opset, fingerprint = graph.get("opset", "?"), graph.get("fingerprint", "?")
            size = "".join(
                f", {_fmt(graph[k], 3)} {k}" for k in ("params", "flops") if _num(graph.get(k)) is not None
            )
            parts.append(f"Normalized graph — opset {opset}{size}, fingerprint `{fingerprint}`")
        rows = [
            [role[:-1], t.get("name", ""), t.get("dtype", ""), str(list(t.get("shape") or []))]
            for role in ("inputs", "outputs")
            for t in graph.get(role) or []
            if isinstance(t, Mapping)
        ]
        if rows:
            parts.append(_table(["", "name", "dtype", "shape"], rows))
        notes = [str(n) for n in graph.get("notes") or []]
        if notes:
            parts.append("Notes:\n" + "\n".join(f"- {_cell(n)}" for n in notes))
    return "## Model\n\n" + "\n\n".join(parts) if parts else ""


def _environment(m: Mapping[str, Any]) -> str:
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
    return "## Environment\n\n" + _table(["component", "version"], rows) if rows else ""


def _files(m: Mapping[str, Any]) -> str:
    files = m.get("files")
    if not isinstance(files, Mapping) or not files:
        return ""
    rows = [
        [f"`{name}`", _bytes(lookup(e, "bytes")) or "", str(lookup(e, "sha256") or "")[:16]]
        for name, e in sorted(files.items())
    ]
    return "## Files\n\n" + _table(["file", "size", "sha256 (prefix)"], rows)
