"""Human-readable tables for the CLI (Rich). Machine output is ``--json`` and never passes here."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table


def fmt_ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.3f} ms"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def fmt_num(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"{value:.{digits}g}"


def candidates_table(candidates: list[dict]) -> Table:
    table = Table(title="Candidates (timed interleaved in one run)", title_justify="left")
    table.add_column("candidate", ratio=3)
    for column in ("status", "p50", "p90", "metric"):
        table.add_column(column, no_wrap=True)
    table.add_column("drop", no_wrap=True)
    notes = []
    for c in candidates:
        style = {"accepted": "green", "refused": "red", "failed": "red"}.get(c.get("status", ""), "")
        status = c.get("status", "")
        if c.get("reason"):
            notes.append(f"{c.get('label', '')}: {c['reason']}")
            status += f" [{len(notes)}]"
        metric = f"{c.get('metric') or '—'} {fmt_num(c.get('candidate'))}" if c.get("metric") else "—"
        table.add_row(
            c.get("label", ""),
            f"[{style}]{status}[/]" if style else status,
            fmt_ms(c.get("latency_p50_s")),
            fmt_ms(c.get("latency_p90_s")),
            metric,
            fmt_num(c.get("drop"), 3),
        )
    if notes:
        table.caption = "\n".join(f"[{i}] {n}" for i, n in enumerate(notes, 1))
        table.caption_justify = "left"
    return table


def profile_table(profile: dict, *, title: str = "Profile") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("batch", "p50", "p90", "p99", "min", "samples/s", "runs"):
        table.add_column(column, no_wrap=True)
    methods = set()
    for batch, stats in sorted(profile.get("latency", {}).items(), key=lambda kv: int(kv[0])):
        if "error" in stats:
            table.add_row(str(batch), "[red]unsupported[/]", "", "", "", "", "")
            methods.add(f"batch {batch}: {stats['error']}")
            continue
        methods.add(stats.get("method", ""))
        table.add_row(
            str(batch),
            fmt_ms(stats.get("p50")),
            fmt_ms(stats.get("p90")),
            fmt_ms(stats.get("p99")),
            fmt_ms(stats.get("min")),
            fmt_num(stats.get("throughput"), 5),
            str(stats.get("runs", "")),
        )
    table.caption = "; ".join(sorted(m for m in methods if m))
    table.caption_justify = "left"
    return table


def print_profile_extras(console: Console, profile: dict) -> None:
    energy = profile.get("energy") or {}
    if energy:
        console.print(
            f"energy/inference: {fmt_num((energy.get('joules_per_inference') or 0) * 1000)} mJ "
            f"[dim]({energy.get('method', '?')})[/]"
        )
    roofline = profile.get("roofline") or {}
    if roofline.get("seconds") is not None:
        console.print(f"roofline estimate: {fmt_ms(roofline['seconds'])} [dim]({roofline.get('method', '')})[/]")
    memory = profile.get("memory") or {}
    if memory:
        console.print(
            f"memory: load {fmt_bytes(memory.get('load_bytes'))}, peak {fmt_bytes(memory.get('peak_bytes'))} "
            f"[dim]({memory.get('method', '')})[/]"
        )
    if profile.get("size_bytes") is not None:
        console.print(f"model size on disk: {fmt_bytes(profile['size_bytes'])}")
