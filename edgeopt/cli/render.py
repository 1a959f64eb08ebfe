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
    for column in ("candidate", "status", "p50", "p90", "metric", "value", "drop", "note"):
        table.add_column(column)
    for c in candidates:
        style = {"accepted": "green", "refused": "red", "failed": "red"}.get(c.get("status", ""), "")
        table.add_row(
            c.get("label", ""),
            f"[{style}]{c.get('status', '')}[/]" if style else c.get("status", ""),
            fmt_ms(c.get("latency_p50_s")),
            fmt_ms(c.get("latency_p90_s")),
            c.get("metric") or "—",
            fmt_num(c.get("candidate")),
            fmt_num(c.get("drop"), 3),
            c.get("reason", ""),
        )
    return table


def profile_table(profile: dict, *, title: str = "Profile") -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("batch", "p50", "p90", "p99", "min", "throughput/s", "runs", "method"):
        table.add_column(column)
    for batch, stats in sorted(profile.get("latency", {}).items(), key=lambda kv: int(kv[0])):
        if "error" in stats:
            table.add_row(str(batch), "—", "—", "—", "—", "—", "—", f"unsupported: {stats['error']}")
            continue
        table.add_row(
            str(batch),
            fmt_ms(stats.get("p50")),
            fmt_ms(stats.get("p90")),
            fmt_ms(stats.get("p99")),
            fmt_ms(stats.get("min")),
            fmt_num(stats.get("throughput"), 5),
            str(stats.get("runs", "")),
            stats.get("method", ""),
        )
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
