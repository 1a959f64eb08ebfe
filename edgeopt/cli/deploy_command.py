"""``edgeopt deploy``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edgeopt.cli import compress_options as co
from edgeopt.cli.options import parse_input_shapes, parse_int_list, parse_state
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
        "search": m.get("search"),
        "sensitivity": m.get("sensitivity"),
        "selection": m.get("selection"),
    }


def deploy(
    model: Annotated[
        str,
        typer.Argument(help="An .onnx file, 'package.module:factory' (torch), a .keras file, or a .joblib (sklearn)"),
    ],
    target: Annotated[
        str, typer.Option("--target", "-t", help="Target (see `edgeopt targets`), or auto: compare, deploy the best")
    ] = "cpu",
    targets: Annotated[
        str | None, typer.Option(help="With --target auto: comma-separated targets to compare (default: all)")
    ] = None,
    objective: Annotated[
        str, typer.Option(help="With --target auto: latency (p50), latency-p90 or throughput (samples/s, SLO on p90)")
    ] = "latency",
    device: Annotated[str | None, typer.Option(help="Device profile name or YAML path (default: this host)")] = None,
    precision: Annotated[
        str, typer.Option(help="auto, fp32, fp16, bf16, int8, int8-dynamic (what the target offers: `edgeopt targets`)")
    ] = "auto",
    calib: Annotated[Path | None, typer.Option(help="Calibration data: .npz or an image folder")] = None,
    eval_: Annotated[Path | None, typer.Option("--eval", help="Evaluation data (.npz with optional 'labels')")] = None,
    max_drop: Annotated[
        float, typer.Option(help="Largest accepted drop of the metric, in its own units (points for accuracy)")
    ] = 1.0,
    metric: Annotated[
        str | None,
        typer.Option(
            help="accuracy, top5, precision_macro, recall_macro, f1_macro, mse, mae, r2, fidelity:top1_agreement, "
            "fidelity:cosine (default: inferred)"
        ),
    ] = None,
    input_shape: Annotated[list[str] | None, typer.Option(help="NAME=1x3x224x224, or DIMS for a single input")] = None,
    state: Annotated[
        list[str] | None,
        typer.Option(help="Recurrent state of a streaming model: OUTPUT=INPUT fed back each call (repeatable); "
                     "none: no state (default: detected where names and shapes make it obvious)"),
    ] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes to profile, e.g. 1,4,8")] = "1",
    slo_ms: Annotated[float | None, typer.Option(help="Latency SLO: pick the largest batch whose p90 meets it")] = None,
    out: Annotated[Path | None, typer.Option(help="Artifact directory (default: ./<model>-<target>.edgeopt)")] = None,
    weights: Annotated[Path | None, typer.Option(help="Weights for a torch factory (.safetensors or .pt)")] = None,
    trust_pickle: Annotated[bool, typer.Option(help="Allow pickled models (runs code from the file!)")] = False,
    trust_code: Annotated[
        bool, typer.Option(help="Allow Keras Lambda/custom layers in a .keras file (runs code from the file!)")
    ] = False,
    force_precision: Annotated[
        bool, typer.Option(help="Ship the requested precision even if slower than fp32")
    ] = False,
    runs: Annotated[int | None, typer.Option(help="Timed runs per configuration (default: by time budget)")] = None,
    timing_s: Annotated[float, typer.Option(help="Seconds of timing per candidate and batch")] = 2.0,
    threads: Annotated[int | None, typer.Option(help="Intra-op threads (default: the plan's choice)")] = None,
    budget_s: Annotated[
        float | None,
        typer.Option(help="Time limit in seconds for the whole candidate search; candidates not reached are skipped"),
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(help="Memory each candidate build may use, e.g. 2GiB or 1500MB; a build past it is a failed "
                     "candidate (default: 60% of the available memory)"),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Compile and evaluate every candidate afresh (ignore the search cache)")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="Name in the deployment registry (default: the model file's stem)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout")] = False,
    prune: co.PruneOpt = None,
    distill: co.DistillOpt = False,
    cluster: co.ClusterOpt = None,
    binarize: co.BinarizeOpt = False,
    qat: co.QatOpt = False,
    train: co.TrainOpt = None,
    epochs: co.EpochsOpt = 10,
    optimizer: co.OptimizerOpt = "adam",
    lr: co.LrOpt = 1e-3,
    lr_schedule: co.ScheduleOpt = "cosine",
    seed: co.SeedOpt = 0,
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
            state=parse_state(state),
            batch=parse_int_list(batch, what="--batch"),
            slo_ms=slo_ms,
            out=out,
            weights=weights,
            trust_pickle=trust_pickle,
            trust_code=trust_code,
            force_precision=force_precision,
            runs=runs,
            timing_s=timing_s,
            threads=threads,
            budget_s=budget_s,
            max_memory=max_memory,
            cache=not no_cache,
            objective=objective,
            targets=[t.strip() for t in targets.split(",") if t.strip()] if targets else None,
            name=name,
            compression=co.compression_spec(
                prune=prune, distill=distill, cluster=cluster, binarize=binarize, qat=qat, train=train,
                epochs=epochs, optimizer=optimizer, lr=lr, lr_schedule=lr_schedule, seed=seed,
            ),
            events=events,
        )
    from edgeopt.registry.lifecycle import registered

    record = registered(deployment)
    if as_json:
        typer.echo(json.dumps({**summary(deployment), "registered": record.ref if record else None}, sort_keys=True))
        return
    m = deployment.manifest
    console = Console()
    console.print(candidates_table(m["candidates"]))
    console.print(profile_table(m["profile"], title=f"Profile of the chosen model on {m['device']['name']}"
                                + (f" (measured on {m['profile']['measured_on']})"
                                   if m["profile"].get("measured_on") not in (None, m["device"]["name"]) else "")))
    print_profile_extras(console, m["profile"])
    metrics = m["metrics"]
    unit = metrics.get("units") or "metric units"
    console.print(
        f"{metrics['metric']} ({unit}): original {fmt_num(metrics.get('reference'))}, deployed "
        f"{fmt_num(metrics.get('candidate'))}, drop {fmt_num(metrics.get('drop'), 3)} {unit} "
        f"(budget --max-drop {metrics['max_drop']:g} {unit})"
    )
    co.print_compression(console, m)
    print_search(console, m)
    if m.get("selection"):
        console.print(f"--target auto: {m['selection']['why']}")
    fid = metrics.get("fidelity") or {}
    if fid:
        console.print("fidelity to the original: " + ", ".join(f"{k} {fmt_num(v)}" for k, v in fid.items()))
    console.print(
        f"[bold green]deployed[/] {m['plan']['label'] or m['plan']['precision']} → {deployment.path} "
        f"({fmt_bytes(m['profile'].get('size_bytes'))}, verified; plots in {deployment.path / 'report.html'})"
    )
    for note in m["plan"].get("notes") or []:
        console.print(f"[dim]note:[/] {note}")
    if record is not None:
        console.print(f"registered as {record.ref} (edgeopt show {record.ref})")


def print_search(console: Console, m: dict) -> None:
    """One line on the search (cache, budget, fallback) and the most sensitive nodes."""
    search = m.get("search") or {}
    if search:
        cache = search.get("cache") or {}
        skipped = search.get("skipped") or []
        console.print(
            f"search: {search.get('evaluated')} candidate(s) in {fmt_num(search.get('elapsed_s'), 3)} s, "
            f"{cache.get('hits', 0)} reused from the cache"
            + (f", {len(skipped)} skipped: search budget" if skipped else "")
            + ("" if cache.get("enabled") else " (cache off)")
        )
        fallback = search.get("fallback")
        if fallback:
            state = "recovered" if fallback.get("recovered") else "not recovered"
            console.print(f"fallback from {fallback['base']}: {len(fallback.get('steps') or [])} step(s), {state}")
    rows = m.get("sensitivity") or []
    if rows:
        top = ", ".join(f"{r['node']} ({fmt_num(r.get('contribution_db'), 3)} dB)" for r in rows[:3])
        console.print(f"most sensitive layers: {top}")


def register(app: typer.Typer) -> None:
    app.command()(deploy)
