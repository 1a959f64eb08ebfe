"""``edgeopt inspect``, ``targets``, ``devices``: what is there, without changing anything (``plugins`` is in
``plugin_commands``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgeopt.cli.options import JsonOpt, WideOpt, parse_input_shapes
from edgeopt.cli.render import fmt_bytes, listing, name_column, print_table, text_column


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, sort_keys=True, default=str))


def inspect(
    model: Annotated[str, typer.Argument(help="An .onnx file or 'package.module:factory'")],
    input_shape: Annotated[list[str] | None, typer.Option(help="NAME=DIMS or DIMS for a single input")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Opset, op histogram, parameters, FLOPs and dynamic dimensions of a model, after normalization."""
    from edgeopt.api import inspect as sdk_inspect

    summary = sdk_inspect(model, input_shapes=parse_input_shapes(input_shape))
    data = summary.to_dict()
    if as_json:
        _echo_json(data)
        return
    console = Console()
    console.print(f"[bold]{model}[/]")
    for key in ("opset", "source_opset", "ir_version", "producer", "params", "flops", "dynamic_dims"):
        if key in data:
            console.print(f"  {key}: {data[key]}")
    if "weight_bytes" in data:
        console.print(f"  weights: {fmt_bytes(data['weight_bytes'])}")
    for kind in ("inputs", "outputs"):
        for spec in data.get(kind, []):
            console.print(f"  {kind[:-1]}: {spec['name']} {spec['dtype']} {spec['shape']}")
    table = Table("op", "count", title="ops")
    for op, count in sorted(data.get("op_histogram", {}).items(), key=lambda kv: -kv[1]):
        table.add_row(op, str(count))
    console.print(table)


def targets(
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Targets the installed plugins offer, and why any of them cannot run here."""
    from edgeopt.api import targets as sdk_targets

    found = sdk_targets()
    if as_json:
        _echo_json([asdict(t) for t in found])
        return
    table = listing("Targets (--target NAME)" if wide else "Targets (--target NAME; --wide: plugins, pruning)")
    name_column(table, "target", [t.name for t in found])
    if wide:
        name_column(table, "plugin", [t.plugin for t in found])
    table.add_column("here", no_wrap=True)
    precisions = [p for t in found for p in t.precisions]
    name_column(table, "precisions", precisions, wrap=True, max_width=None if wide else 16)
    if wide:
        text_column(table, "faster with pruning")
    text_column(table, "description / why not here", ratio=1)
    for t in found:
        row = [t.name, *([t.plugin] if wide else []), "[green]yes[/]" if t.available else "[red]no[/]",
               " ".join(t.precisions), *([", ".join(t.compression_speedups) or "-"] if wide else []),
               escape(t.description if t.available else t.reason)]
        table.add_row(*row)
    print_table(table, wide=wide)


def devices(
    as_json: JsonOpt = False,
    wide: WideOpt = False,
) -> None:
    """Device profiles (--device NAME): peak ops per precision, memory bandwidth, power, with sources."""
    from edgeopt.api import devices as sdk_devices

    found = sdk_devices()
    if as_json:
        _echo_json([{**asdict(d), "path": str(d.path) if d.path else None} for d in found])
        return
    title = "Device profiles (--device NAME; host: this machine, the default)"
    table = listing(title if wide else "Device profiles (--device NAME, default host; --wide: peak ops/s, GB/s)")
    name_column(table, "device", [d.name for d in found])
    table.add_column("kind", no_wrap=True)
    if wide:
        table.add_column("peak ops/s", no_wrap=True)
        table.add_column("GB/s", no_wrap=True, justify="right")
    table.add_column("power W", no_wrap=True)
    text_column(table, "description", ratio=1)
    for d in found:
        peaks = "\n".join(f"{k} {v:.3g}" for k, v in sorted(d.peak_ops.items()))
        figures = [peaks, f"{d.memory_bandwidth / 1e9:.3g}"] if wide else []
        table.add_row(d.name, d.kind, *figures, f"{d.idle_power_w:g}/{d.active_power_w:g}", escape(d.description))
    print_table(table, wide=wide)


def register(app: typer.Typer) -> None:
    app.command()(inspect)
    app.command()(targets)
    app.command()(devices)
