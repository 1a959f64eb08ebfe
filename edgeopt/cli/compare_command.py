"""``edgeopt compare``: every target's best configuration for one model on one device, in one table."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from edgeopt.cli.deploy_command import CliEvents
from edgeopt.cli.options import WideOpt, lowercase, non_negative, parse_input_shapes, parse_int_list, parse_state
from edgeopt.cli.render import listing, name_column, print_table, text_column


def _table(comparison: dict, *, wide: bool = False) -> Table:
    """One row per target; narrow (80 columns): target, plan, p50, size, metric, status; ``wide``: every column."""
    from edgeopt.artifact.compare_report import rows

    isa = ", ".join(comparison.get("device_isa") or []) or "ISA unknown"
    table = listing(f"Best configuration per target on {comparison['device']} ({isa}; "
                    f"objective: {comparison['objective']}, --max-drop {comparison['max_drop']:g})"
                    + ("" if wide else "; --wide: every column"))
    cells = rows(comparison)
    name_column(table, "target", [r[0] for r in cells])
    name_column(table, "plan", [r[1] for r in cells], wrap=True)
    heads = ("thr x batch", "p50 ± sd", "p90", "samples/s", "size", "metric (drop)", "energy") if wide else (
        "p50 ± sd", "size", "metric (drop)")
    for h in heads:
        table.add_column(h, no_wrap=wide and h in ("thr x batch", "p90", "samples/s", "size"))
    text_column(table, "status")
    for r in cells:
        target, plan, _precision, setting, p50, p90, tput, size, metric, drop, energy, status = r
        style = "bold green" if status == "winner" else ("dim" if plan == "—" else "")
        metric_cell = "—" if metric == "—" else f"{metric} ({drop})"
        middle = (setting, p50, p90, tput, size, metric_cell, energy) if wide else (p50, size, metric_cell)
        table.add_row(target, plan, *middle, escape(status), style=style)
    table.caption = f"winner: {comparison['why']}\ntiming: {comparison['timing'].get('method', '')}"
    table.caption_justify = "left"
    return table


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def compare(
    models: Annotated[
        list[str], typer.Argument(metavar="MODEL...", help="An .onnx or .keras file, 'package.module:factory' "
                                  "(torch), or a .joblib; several .onnx files with --farm")
    ],
    targets: Annotated[
        str | None, typer.Option(help="Comma-separated targets to compare, e.g. cpu,openvino (default: all)")
    ] = None,
    device: Annotated[str | None, typer.Option(help="Device profile name or YAML path (default: this host)")] = None,
    precision: Annotated[
        str, typer.Option(help="auto, or one precision every target must use", callback=lowercase)
    ] = "auto",
    calib: Annotated[Path | None, typer.Option(help="Calibration data: .npz or an image folder")] = None,
    eval_: Annotated[Path | None, typer.Option("--eval", help="Evaluation data (.npz with optional 'labels')")] = None,
    max_drop: Annotated[
        float, typer.Option(help="Largest accepted drop of the metric, in its own units", callback=non_negative)
    ] = 1.0,
    metric: Annotated[str | None, typer.Option(help="Metric name (default: inferred), see `edgeopt deploy`")] = None,
    objective: Annotated[
        str,
        typer.Option(help="latency (batch 1, p50), latency-p90 (batch 1, p90), or throughput (samples/s over "
                     "--batch, SLO on p90)"),
    ] = "latency",
    batch: Annotated[str, typer.Option(help="Batch sizes tried for --objective throughput, e.g. 1,4,8")] = "1",
    slo_ms: Annotated[float | None, typer.Option(help="Throughput objective: p90 latency limit per call")] = None,
    input_shape: Annotated[list[str] | None, typer.Option(help="NAME=1x3x224x224, or DIMS for a single input")] = None,
    state: Annotated[
        list[str] | None,
        typer.Option(help="Recurrent state of a streaming model: OUTPUT=INPUT fed back each call (repeatable); "
                     "none: no state (default: detected where names and shapes make it obvious)"),
    ] = None,
    weights: Annotated[Path | None, typer.Option(help="Weights for a torch factory (.safetensors or .pt)")] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow pickled models (runs code from the file!)")
    ] = False,
    trust_code: Annotated[
        bool, typer.Option("--trust-code", help="Allow .keras files with Lambda layers or custom objects (runs their "
                           "code!)")
    ] = False,
    threads: Annotated[int | None, typer.Option(help="Pin the thread count (default: searched)")] = None,
    timing_s: Annotated[float, typer.Option(help="Seconds of timing per configuration")] = 2.0,
    budget_s: Annotated[
        float | None, typer.Option(help="Time limit of the candidate search, all targets together")
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(help="Memory each candidate build may use, e.g. 2GiB or 1500MB (default: 60% of available)"),
    ] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ignore the search cache")] = False,
    exhaustive: Annotated[
        bool, typer.Option("--exhaustive", help="Build every plan, even those that cannot beat the fastest "
                           "accepted candidate (off: the speed screen skips them)")
    ] = False,
    html: Annotated[
        Path | None, typer.Option("--html", help="HTML report path (default: ./<model>-compare.html)")
    ] = None,
    farm: Annotated[
        str | None, typer.Option(help="Run every MODEL x target x device on the device farm at this head address "
                                 "(host:port; needs edgeopt[farm], see docs/farm.md)")
    ] = None,
    devices: Annotated[
        str | None, typer.Option(help="With --farm: comma-separated farm devices (default: all)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout")] = False,
    wide: WideOpt = False,
) -> None:
    """Find the best runtime for MODEL on one device: each target's --precision auto search, timed together.
    With --farm: every MODEL x target x device on a device farm, measured where each device is."""
    if farm is not None:
        from edgeopt.cli.farm_commands import compare_on_farm

        return compare_on_farm(models, farm_address=farm, devices=devices, targets=targets, precision=precision,
                               max_drop=max_drop, metric=metric, objective=objective, timing_s=timing_s,
                               budget_s=budget_s, calib=calib, eval_=eval_, no_cache=no_cache, html=html,
                               as_json=as_json)
    if len(models) > 1 or devices:
        from edgeopt.errors import CommandLineError

        raise CommandLineError("several models, and --devices, need --farm ADDRESS",
                               hint="compare one MODEL here, or run the matrix on a farm (docs/farm.md)")
    model = models[0]
    from edgeopt.api import compare as sdk_compare
    from edgeopt.artifact.compare_report import render_compare_html

    err = Console(stderr=True)
    events = CliEvents(err)
    with events.status:
        comparison = sdk_compare(
            model,
            targets=[t.strip() for t in targets.split(",") if t.strip()] if targets else None,
            device=device, precision=precision, calib=calib, eval=eval_, max_drop=max_drop, metric=metric,
            objective=objective, batch=parse_int_list(batch, what="--batch"), slo_ms=slo_ms,
            input_shapes=parse_input_shapes(input_shape), state=parse_state(state), weights=weights,
            trust_pickle=trust_pickle, trust_code=trust_code, threads=threads, timing_s=timing_s,
            budget_s=budget_s, max_memory=max_memory, cache=not no_cache, exhaustive=exhaustive, events=events,
        )
    data = comparison.to_dict()
    report = html or Path.cwd() / f"{Path(model).stem.replace(':', '-').replace('.', '-') or 'model'}-compare.html"
    _write_atomic(report, render_compare_html(data))
    if as_json:
        typer.echo(json.dumps({**data, "report_html": str(report)}, sort_keys=True))
        return
    console = Console()
    print_table(_table(data, wide=wide), wide=wide, console=console)
    console.print(f"plot and table: {report}")


def register(app: typer.Typer) -> None:
    app.command()(compare)
