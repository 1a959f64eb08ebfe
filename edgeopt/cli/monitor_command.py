"""``edgeopt monitor``: has a deployment's field data drifted from its calibration data?"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from edgeopt.cli.options import WideOpt
from edgeopt.cli.render import fmt_ms, fmt_num, listing, name_column, print_table
from edgeopt.monitoring.monitor import DEFAULT_ALPHA, DEFAULT_LATENCY_TOLERANCE, DEFAULT_MIN_SAMPLES, DEFAULT_PSI

DRIFT_EXIT = 3
"""Exit status when drift is found (0: no drift; 1: an error)."""


def monitor(
    ref: Annotated[str, typer.Argument(help="NAME (latest), NAME:VERSION or NAME@STAGE")],
    log: Annotated[Path, typer.Argument(help="Field log written by edgeopt.load(..., monitor_log=LOG)")],
    alpha: Annotated[float, typer.Option(help="KS significance level (Bonferroni over features)")] = DEFAULT_ALPHA,
    psi: Annotated[float, typer.Option(help="Smallest population stability index that counts as drift")] = DEFAULT_PSI,
    latency_tolerance: Annotated[
        float, typer.Option(help="Field p90 above this multiple of the profiled p90 counts as drift")
    ] = DEFAULT_LATENCY_TOLERANCE,
    min_samples: Annotated[int, typer.Option(help="Fewest field samples a feature needs to be tested")]
    = DEFAULT_MIN_SAMPLES,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")] = False,
    wide: WideOpt = False,
) -> None:
    """Compare a field log with the deploy's calibration data and profiled latency; say what drifted.

    PSI and KS per input channel statistic, field p90 against the profiled p90. Exits 3 when it drifted."""
    from edgeopt.monitoring.monitor import monitor as sdk_monitor

    report = sdk_monitor(ref, log, alpha=alpha, psi_threshold=psi, latency_tolerance=latency_tolerance,
                         min_samples=min_samples)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), sort_keys=True))
    else:
        _print(report, wide=wide)
    if report.drifted:
        raise typer.Exit(DRIFT_EXIT)


def _print(report, *, wide: bool = False) -> None:  # noqa: ANN001 - a DriftReport
    console = Console()
    table = listing(f"{report.deployment}: {report.samples} field samples in {report.calls} calls")
    name_column(table, "feature", [f.feature for f in report.features])
    for col in ("PSI", "PSI noise", "KS", "p-value", "field mean", "calib mean", "drift"):
        table.add_column(col, justify="left" if col == "drift" else "right", overflow="fold")
    for f in report.features:
        table.add_row(escape(f.feature), fmt_num(f.psi, 3), fmt_num(f.psi_noise, 3), fmt_num(f.ks, 3),
                      f"{f.p_value:.2g}", fmt_num(f.field_mean), fmt_num(f.reference_mean),
                      "[red]yes[/]" if f.drifted else "no")
    print_table(table, wide=wide, console=console)
    for lat in report.latency:
        ratio = f" = {lat.ratio:.2f}x the profiled p90 {fmt_ms(lat.profiled_p90_s)}" if lat.ratio is not None else ""
        flag = " [red]slower than profiled[/]" if lat.drifted else ""
        console.print(f"latency batch {lat.batch}: {lat.calls} calls, p50 {fmt_ms(lat.field_p50_s)}, "
                      f"p90 {fmt_ms(lat.field_p90_s)}{ratio}{flag}")
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    verdict = "[red]DRIFT[/]" if report.drifted else "[green]OK[/]"
    for line in report.advice:
        console.print(f"{verdict} {escape(line)}")


def register(app: typer.Typer) -> None:
    app.command()(monitor)
