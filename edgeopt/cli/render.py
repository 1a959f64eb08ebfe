"""Human-readable tables for the CLI (Rich). Machine output is ``--json`` and never passes here.

Tables stay readable at 80 columns and never cut a name the user must type: name columns get a minimum width
(the longest name, or the longest word of a label that may wrap), every column folds instead of printing
``…``, and the narrow layout leaves secondary columns to ``--wide``, which prints every column at full width
whatever the terminal.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

PROSE_MIN = 12
"""The least width ``fit`` gives a prose column (descriptions, reasons, metric names)."""

SHIPPED = "▶"
"""Marks the candidate that shipped in the deploy table."""


def listing(title: str | None = None) -> Table:
    """A table for a listing command: a head rule, no outer frame (more room for text at 80 columns)."""
    return Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False,
                 padding=(0, 1, 0, 0))


def name_column(table: Table, header: str, values: Iterable[str], *, wrap: bool = False, **kwargs: object) -> None:
    """A column of names: never narrower than the longest name (``wrap``: its longest word, so a multi-word
    label wraps between words), never ellipsized."""
    values = [str(v) for v in values]
    if wrap:
        widest = max((len(w) for v in values for w in v.split()), default=0)
    else:
        widest = max((len(v) for v in values), default=0)
    width = max(widest, len(header))
    table.add_column(header, no_wrap=not wrap, min_width=width, overflow="fold", **kwargs)


def text_column(table: Table, header: str, **kwargs: object) -> None:
    """A column of prose (descriptions, reasons, errors): wraps between words, folds a word that cannot fit."""
    table.add_column(header, overflow="fold", **kwargs)


def print_table(table: Table, *, wide: bool = False, console: Console | None = None) -> None:
    """Print ``table`` to stdout; ``wide``: as wide as its content needs, beyond the terminal's width;
    otherwise fitted to the terminal (``fit``)."""
    console = console or Console()
    need = Measurement.get(console, console.options.update(max_width=100_000), table).maximum
    if wide:
        if need > console.width:
            console = Console(width=need)
    else:
        console = fit(table, console)
    console.print(table)


def fit(table: Table, console: Console) -> Console:
    """Set widths so ``table`` fits ``console`` without cutting: columns that do not wrap keep their full
    width, each wrapping column gets at least its longest word (or its ``min_width``) and a share of the rest
    in proportion to what it would like. Returns ``console``, or a wider one when even that does not fit
    (long lines the terminal wraps, but no name cut). Rich's own shrinking can push a column below its
    ``min_width`` and then crop the table, which this avoids. Prose columns (no ``min_width``) may fold a word
    longer than ``PROSE_MIN``."""
    options = console.options.update(max_width=100_000)
    columns = table.columns
    natural, least = [], []
    for column in columns:
        cells = [column.header, *column.cells]
        sizes = [Measurement.get(console, options, c) for c in cells if c is not None]
        natural.append(min(max([m.maximum for m in sizes], default=0), column.max_width or 100_000))
        words = max([m.minimum for m in sizes], default=0)
        # a name column says its least width (min_width); prose may fold a long word
        least.append(natural[-1] if column.no_wrap else column.min_width or min(words, PROSE_MIN))
    # borders and padding, as Rich adds them (Table's own helpers; stable across Rich 13-15)
    overhead = table._extra_width + sum(table._get_padding_width(i) for i in range(len(columns)))
    room = console.width - overhead
    if sum(natural) <= room:
        return console
    flexible = [i for i, c in enumerate(columns) if not c.no_wrap and natural[i] > least[i]]
    widths = list(least)
    spare = room - sum(least)
    want = sum(natural[i] - least[i] for i in flexible)
    for i in flexible if spare > 0 else []:
        widths[i] += min(natural[i] - least[i], spare * (natural[i] - least[i]) // max(want, 1))
    for column, width in zip(columns, widths, strict=True):
        column.width = width
    if spare < 0:
        return Console(width=console.width - spare)
    return console


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


def candidates_table(candidates: list[dict], *, shipped: str | None = None) -> Table:
    """Every candidate with its status, latency and metric; the one whose label is ``shipped`` is marked."""
    metrics = {c.get("metric") for c in candidates if c.get("metric")}
    one_metric = next(iter(metrics)) if len(metrics) == 1 else None
    marked = next((i for i, c in enumerate(candidates) if shipped and c.get("label") == shipped), None)
    title = "Candidates (timed interleaved in one run)"
    if marked is not None:
        title += f"; {SHIPPED} shipped"
    table = Table(title=title, title_justify="left")
    labels = [("▶ " if i == marked else "") + c.get("label", "") for i, c in enumerate(candidates)]
    name_column(table, "candidate", labels, wrap=True)
    table.add_column("status", overflow="fold")
    for column in ("p50", "p90"):
        table.add_column(column, no_wrap=True)
    table.add_column(one_metric or "metric", overflow="fold", justify="right" if one_metric else "left")
    table.add_column("drop", no_wrap=True, justify="right")
    notes = []
    for i, c in enumerate(candidates):
        style = {"accepted": "green", "refused": "red", "failed": "red"}.get(c.get("status", ""), "")
        status = "shipped" if i == marked else c.get("status", "")
        if c.get("reason"):
            notes.append(f"{c.get('label', '')}: {c['reason']}")
            status += f" [{len(notes)}]"
        if not c.get("metric"):
            metric = "—"
        elif one_metric:
            metric = fmt_num(c.get("candidate"))
        else:
            metric = f"{c['metric']} {fmt_num(c.get('candidate'))}"
        table.add_row(
            labels[i],
            f"[{style}]{status}[/]" if style else status,
            fmt_ms(c.get("latency_p50_s")),
            fmt_ms(c.get("latency_p90_s")),
            metric,
            fmt_num(c.get("drop"), 3),
            style="bold" if i == marked else None,
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


def print_profile_extras(console: Console, profile: dict, *, device: dict | None = None) -> None:
    """Energy (with the device profile whose power figures an estimate used), roofline, memory and size."""
    energy = profile.get("energy") or {}
    if energy:
        method = str(energy.get("method", "?"))
        used = ""
        if device and method.startswith("estimated"):
            used = f"; power figures of device profile {device.get('name')!r}"
            if device.get("description"):
                used += f": {device['description']}"
        console.print(
            f"energy/inference: {fmt_num((energy.get('joules_per_inference') or 0) * 1000)} mJ "
            f"[dim]({escape(method + used)})[/]", highlight=False,
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
