"""``edgeopt inspect``, ``targets``, ``devices``: what is there, without changing anything (``plugins`` is in
``plugin_commands``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgeopt.cli.options import parse_input_shapes
from edgeopt.cli.render import fmt_bytes


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, sort_keys=True, default=str))


def inspect(
    model: Annotated[str, typer.Argument(help="An .onnx file or 'package.module:factory'")],
    input_shape: Annotated[list[str] | None, typer.Option(help="NAME=DIMS or DIMS for a single input")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
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


def targets(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Targets the installed plugins offer, and why any of them cannot run here."""
    from edgeopt.api import targets as sdk_targets

    found = sdk_targets()
    if as_json:
        _echo_json([asdict(t) for t in found])
        return
    table = Table("target", "plugin", "available", "precisions", "faster with pruning", "description / reason")
    for t in found:
        table.add_row(
            t.name,
            t.plugin,
            "[green]yes[/]" if t.available else "[red]no[/]",
            ", ".join(t.precisions),
            ", ".join(t.compression_speedups) or "-",
            t.description if t.available else t.reason,
        )
    Console().print(table)


def devices(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Device profiles: peak ops per precision, memory bandwidth, power, with sources."""
    from edgeopt.api import devices as sdk_devices

    found = sdk_devices()
    if as_json:
        _echo_json([{**asdict(d), "path": str(d.path) if d.path else None} for d in found])
        return
    table = Table("device", "kind", "peak ops/s", "bandwidth", "power idle/active", "description")
    for d in found:
        peaks = ", ".join(f"{k} {v:.3g}" for k, v in d.peak_ops.items())
        table.add_row(
            d.name,
            d.kind,
            peaks,
            f"{d.memory_bandwidth / 1e9:.3g} GB/s",
            f"{d.idle_power_w:g}/{d.active_power_w:g} W",
            d.description,
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    app.command()(inspect)
    app.command()(targets)
    app.command()(devices)
