"""``edgeopt deploy``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edgeopt.cli.options import parse_input_shapes, parse_int_list
from edgeopt.cli.render import candidates_table, fmt_bytes, fmt_num, print_profile_extras, profile_table


class CliEvents:
    """Progress on a Rich status line and warnings, all on stderr (stdout stays clean for --json)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.status = console.status("starting")

    def step(self, message: str) -> None:
        self.status.update(message)
        self.console.print(f"[dim]• {message}[/]")

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}")


def summary(deployment) -> dict:  # noqa: ANN001 - a Deployment
    m = deployment.manifest
    return {
        "path": str(deployment.path),
        "target": m["target"]["name"],
        "device": m["device"]["name"],
        "precision": m["plan"]["precision"],
        "plan": m["plan"]["label"],
        "metrics": m["metrics"],
        "profile": m["profile"],
        "candidates": m["candidates"],
        "warnings": m["warnings"],
        "graph": {"fingerprint": m["graph"]["fingerprint"], "opset": m["graph"]["opset"]},
        "source": m["source"],
    }


def deploy(
    model: Annotated[
        str, typer.Argument(help="An .onnx file, 'package.module:factory' (torch), or a .joblib (sklearn)")
    ],
    target: Annotated[str, typer.Option("--target", "-t", help="Target name (see `edgeopt targets`)")] = "cpu",
    device: Annotated[str | None, typer.Option(help="Device profile name or YAML path (default: this host)")] = None,
    precision: Annotated[
        str, typer.Option(help="auto, fp32, fp16, int8, int8-dynamic (what the target offers)")
    ] = "auto",
    calib: Annotated[Path | None, typer.Option(help="Calibration data: .npz or an image folder")] = None,
    eval_: Annotated[Path | None, typer.Option("--eval", help="Evaluation data (.npz with optional 'labels')")] = None,
    max_drop: Annotated[float, typer.Option(help="Largest accepted drop of the metric, in its own units")] = 1.0,
    metric: Annotated[str | None, typer.Option(help="accuracy, top5, f1_macro, mse, ... (default: inferred)")] = None,
    input_shape: Annotated[list[str] | None, typer.Option(help="NAME=1x3x224x224, or DIMS for a single input")] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes to profile, e.g. 1,4,8")] = "1",
    slo_ms: Annotated[float | None, typer.Option(help="Latency SLO: pick the largest batch whose p90 meets it")] = None,
    out: Annotated[Path | None, typer.Option(help="Artifact directory (default: ./<model>-<target>.edgeopt)")] = None,
    weights: Annotated[Path | None, typer.Option(help="Weights for a torch factory (.safetensors or .pt)")] = None,
    trust_pickle: Annotated[bool, typer.Option(help="Allow pickled models (runs code from the file!)")] = False,
    force_precision: Annotated[
        bool, typer.Option(help="Ship the requested precision even if slower than fp32")
    ] = False,
    runs: Annotated[int | None, typer.Option(help="Timed runs per configuration (default: by time budget)")] = None,
    timing_s: Annotated[float, typer.Option(help="Seconds of timing per candidate and batch")] = 2.0,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads (default: the plan's choice)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout")] = False,
) -> None:
    """Optimize MODEL for a target, check its accuracy, profile it, and write a verified artifact."""
    from edgeopt.api import deploy as sdk_deploy

    err = Console(stderr=True)
    events = CliEvents(err)
    with events.status:
        deployment = sdk_deploy(
            model,
            target=target,
            device=device,
            precision=precision,
            calib=calib,
            eval=eval_,
            max_drop=max_drop,
            metric=metric,
            input_shapes=parse_input_shapes(input_shape),
            batch=parse_int_list(batch, what="--batch"),
            slo_ms=slo_ms,
            out=out,
            weights=weights,
            trust_pickle=trust_pickle,
            force_precision=force_precision,
            runs=runs,
            timing_s=timing_s,
            threads=threads,
            events=events,
        )
    if as_json:
        typer.echo(json.dumps(summary(deployment), sort_keys=True))
        return
    m = deployment.manifest
    console = Console()
    console.print(candidates_table(m["candidates"]))
    console.print(profile_table(m["profile"], title=f"Profile of the chosen model on {m['device']['name']}"))
    print_profile_extras(console, m["profile"])
    metrics = m["metrics"]
    console.print(
        f"{metrics['metric']}: original {fmt_num(metrics.get('reference'))}, deployed "
        f"{fmt_num(metrics.get('candidate'))}, drop {fmt_num(metrics.get('drop'), 3)} (budget {metrics['max_drop']:g})"
    )
    fid = metrics.get("fidelity") or {}
    if fid:
        console.print("fidelity to the original: " + ", ".join(f"{k} {fmt_num(v)}" for k, v in fid.items()))
    console.print(
        f"[bold green]deployed[/] {m['plan']['label'] or m['plan']['precision']} → {deployment.path} "
        f"({fmt_bytes(m['profile'].get('size_bytes'))}, verified)"
    )


def register(app: typer.Typer) -> None:
    app.command()(deploy)
