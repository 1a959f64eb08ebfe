"""``edgeopt edgetpu check`` and ``edgeopt edgetpu toolchain``: the plugin's commands, through Typer's own API."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from edgeopt.plugin import InputSpecError
from rich.console import Console
from rich.table import Table

from edgeopt_edgetpu.compat import REPORT_FILE, analyze_file
from edgeopt_edgetpu.edgetpu_ops import LATEST_RUNTIME

app = typer.Typer(name="edgetpu", help="Edge TPU / LiteRT: compatibility report and converter toolchain.",
                  no_args_is_help=True)


def report_table(data: dict, *, limit: int = 200) -> Table:
    """The per-op compatibility report (``CompatReport.to_dict()``) as a Rich table."""
    table = Table(title=data["summary"], title_justify="left")
    for column in ("#", "op", "runs on", "MFLOPs", "why not on the Edge TPU"):
        table.add_column(column, no_wrap=column != "why not on the Edge TPU")
    for op in data["ops"][:limit]:
        where = "[green]edgetpu[/]" if op["on_edgetpu"] else "[red]cpu[/]"
        table.add_row(str(op["index"]), op["op"], where, f"{op['flops'] / 1e6:.3f}",
                      "; ".join(op["reasons"]) or (f"[dim]{op['caveat']}[/]" if op.get("caveat") else ""))
    rest = len(data["ops"]) - limit
    table.caption = (f"{rest} more ops not shown; " if rest > 0 else "") + \
        f"rules: {data['source']} (Edge TPU runtime {data['runtime_version']})"
    table.caption_justify = "left"
    return table


def load_report(path: Path, runtime: int) -> dict:
    """The report for a ``.tflite`` (analyzed now) or an artifact directory (its stored report)."""
    if path.is_dir():
        stored = path / REPORT_FILE
        if stored.is_file():
            return json.loads(stored.read_text())
        model = path / "model.tflite"
        if not model.is_file():
            raise InputSpecError(f"{path} holds neither {REPORT_FILE} nor model.tflite",
                                 hint="give an artifact deployed with --target edgetpu or tflite, or a .tflite file")
        path = model
    if path.suffix != ".tflite" or not path.is_file():
        raise InputSpecError(f"{path} is not a .tflite file or an edgeopt artifact directory",
                             hint="give a .tflite file, or an artifact deployed with --target edgetpu or tflite")
    try:
        return {"compatibility": analyze_file(path, runtime=runtime).to_dict()}
    except ValueError as exc:
        raise InputSpecError(str(exc), hint="give a .tflite file written by a TFLite converter") from exc


@app.command("check")
def check(
    model: Annotated[Path, typer.Argument(help="A .tflite file, or an artifact deployed to edgetpu/tflite")],
    runtime: Annotated[int, typer.Option(help="Edge TPU runtime version to judge against")] = LATEST_RUNTIME,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object")] = False,
) -> None:
    """Show which ops the Edge TPU would map, why not, and where the graph falls back to the CPU."""
    data = load_report(model, runtime)
    if as_json:
        typer.echo(json.dumps(data, sort_keys=True, default=float))
        return
    console = Console()
    console.print(report_table(data["compatibility"]))
    if "compiler" in data:
        console.print(data["compiler"]["message"])
    est = data.get("estimate")
    if est:
        console.print(f"Coral estimate ({est['method']}; {est['note']}): {est['latency_s'] * 1e6:.2f} µs = "
                      f"Edge TPU {est['edgetpu_s'] * 1e6:.2f} µs + CPU {est['cpu_s'] * 1e6:.2f} µs; "
                      f"{est['joules'] * 1e6:.3f} µJ per inference")


@app.command("toolchain")
def toolchain(
    create: Annotated[bool, typer.Option("--create", help="Build the converter environment if it is missing")] = False,
    with_onnx2tf: Annotated[bool, typer.Option(
        "--with-onnx2tf", help="With --create: add the onnx2tf route (TensorFlow, ~2 GB, in the converter env only)",
    )] = False,
) -> None:
    """Say which Python converts ONNX to TFLite and with which routes; with --create, build the cached
    converter environment (and, with --with-onnx2tf, add the onnx2tf route to it)."""
    from edgeopt_edgetpu.toolchain import (
        SETUP_HINT,
        add_onnx2tf,
        create_toolchain,
        find_toolchain,
        has_onnx2tf,
        toolchain_dir,
    )

    found = find_toolchain()
    if found is None and create:
        found, seconds = create_toolchain()
        typer.echo(f"created {toolchain_dir()} in {seconds:.0f} s")
    if found is None:
        typer.echo(f"no converter toolchain (expected at {toolchain_dir()}); {SETUP_HINT}")
        raise typer.Exit(1)
    if create and with_onnx2tf:
        seconds = add_onnx2tf(found)
        if seconds:
            typer.echo(f"added the onnx2tf route in {seconds:.0f} s")
    routes = "torch, onnx2tf" if has_onnx2tf(found) else "torch, onnx2tf if installed there"
    if found.source == "cache" and not has_onnx2tf(found):
        routes = "torch (add onnx2tf with --create --with-onnx2tf)"
    typer.echo(f"converter: {found.python} ({found.source}); routes: {routes}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="edgetpu")
