"""``edgeopt deploy``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edgeopt.cli import compress_options as co
from edgeopt.cli.options import (
    lowercase,
    non_negative,
    parse_input_shapes,
    parse_int_list,
    parse_state,
    positive,
)
from edgeopt.cli.render import (
    candidates_table,
    fmt_bytes,
    fmt_num,
    print_profile_extras,
    print_table,
    profile_table,
)

TARGET, DATA, MODEL, TIMING, SEARCH, OUTPUT = (
    "Target", "Accuracy and data", "Model input", "Timing", "Search", "Output"
)


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
        str, typer.Option("--target", "-t", help="Target (`edgeopt targets`), or auto: compare all, deploy the best",
                          rich_help_panel=TARGET)
    ] = "cpu",
    targets: Annotated[
        str | None, typer.Option(help="With --target auto: targets to compare, e.g. cpu,openvino (default: all)",
                                 rich_help_panel=TARGET)
    ] = None,
    objective: Annotated[
        str, typer.Option(help="With --target auto: latency (p50), latency-p90 or throughput", rich_help_panel=TARGET,
                          callback=lowercase)
    ] = "latency",
    device: Annotated[
        str | None, typer.Option(help="Device profile (`edgeopt devices`) or YAML path (default: host)",
                                 rich_help_panel=TARGET)
    ] = None,
    precision: Annotated[
        str, typer.Option(help="auto, fp32, fp16, bf16, int8 or int8-dynamic (per target: `edgeopt targets`)",
                          rich_help_panel=TARGET, callback=lowercase)
    ] = "auto",
    calib: Annotated[
        Path | None, typer.Option(help="Calibration data: .npz or an image folder", rich_help_panel=DATA)
    ] = None,
    eval_: Annotated[
        Path | None, typer.Option("--eval", help="Evaluation data: .npz, optional 'labels'", rich_help_panel=DATA)
    ] = None,
    max_drop: Annotated[
        float, typer.Option(help="Largest accepted metric drop, in the metric's units (accuracy: points)",
                            rich_help_panel=DATA, callback=non_negative)
    ] = 1.0,
    metric: Annotated[
        str | None,
        typer.Option(help="accuracy, top5, f1_macro, mse, r2, fidelity:cosine, ctc-text-accuracy, "
                          "detection-map50, a plugin's metric… (default: inferred; docs/accuracy-search.md)",
                     rich_help_panel=DATA),
    ] = None,
    input_shape: Annotated[
        list[str] | None, typer.Option(help="NAME=1x3x224x224, or DIMS for a single input", rich_help_panel=MODEL)
    ] = None,
    state: Annotated[
        list[str] | None,
        typer.Option(help="Streaming model state OUTPUT=INPUT fed back each call (repeatable), or none "
                          "(default: detected)", rich_help_panel=MODEL),
    ] = None,
    weights: Annotated[
        Path | None, typer.Option(help="Weights for a torch factory (.safetensors or .pt)", rich_help_panel=MODEL)
    ] = None,
    trust_pickle: Annotated[
        bool, typer.Option("--trust-pickle", help="Allow pickled models (runs code from the file!)",
                           rich_help_panel=MODEL)
    ] = False,
    trust_code: Annotated[
        bool, typer.Option("--trust-code", help="Allow Keras Lambda/custom layers (runs code from the file!)",
                           rich_help_panel=MODEL)
    ] = False,
    batch: Annotated[str, typer.Option(help="Batch sizes to profile, e.g. 1,4,8", rich_help_panel=TIMING)] = "1",
    slo_ms: Annotated[
        float | None, typer.Option(help="Latency SLO: the largest batch whose p90 meets it", rich_help_panel=TIMING,
                                   callback=positive)
    ] = None,
    runs: Annotated[
        int | None, typer.Option(help="Timed runs per configuration (default: by --timing-s)", rich_help_panel=TIMING,
                                 callback=positive)
    ] = None,
    timing_s: Annotated[
        float, typer.Option(help="Seconds of timing per candidate and batch", rich_help_panel=TIMING,
                            callback=positive)
    ] = 2.0,
    threads: Annotated[
        int | None, typer.Option(help="Intra-op threads (default: the plan's)", rich_help_panel=TIMING,
                                 callback=positive)
    ] = None,
    force_precision: Annotated[
        bool, typer.Option("--force-precision", help="Ship the asked precision even if slower than fp32",
                           rich_help_panel=SEARCH)
    ] = False,
    budget_s: Annotated[
        float | None,
        typer.Option(help="Time limit of the candidate search; candidates not reached are skipped (--target auto: "
                     "60 unless --exhaustive)",
                     rich_help_panel=SEARCH, callback=positive),
    ] = None,
    max_memory: Annotated[
        str | None,
        typer.Option(help="Memory one candidate build may use, e.g. 2GiB (default: 60% of available)",
                     rich_help_panel=SEARCH),
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Build every candidate afresh (ignore the search cache)",
                           rich_help_panel=SEARCH)
    ] = False,
    exhaustive: Annotated[
        bool, typer.Option("--exhaustive", help="Build every plan, even those that cannot beat the fastest "
                           "accepted candidate (off: the speed screen skips them)", rich_help_panel=SEARCH)
    ] = False,
    out: Annotated[
        Path | None, typer.Option(help="Artifact folder (default: ./<model>-<target>.edgeopt)", rich_help_panel=OUTPUT)
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Name in the deployment registry (default: the model's stem)",
                                 rich_help_panel=OUTPUT)
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print exactly one JSON object on stdout", rich_help_panel=OUTPUT)
    ] = False,
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
            exhaustive=exhaustive,
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
    print_table(candidates_table(m["candidates"], shipped=m["plan"].get("label")), console=console)
    console.print(profile_table(m["profile"], title=f"Profile of the chosen model on {m['device']['name']}"
                                + (f" (measured on {m['profile']['measured_on']})"
                                   if m["profile"].get("measured_on") not in (None, m["device"]["name"]) else "")))
    print_profile_extras(console, m["profile"], device=m["device"])
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
