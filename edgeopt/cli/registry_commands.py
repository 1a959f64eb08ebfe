"""``edgeopt models``, ``show``, ``diff``, ``promote``, ``rollback``, ``redeploy``: the deployment registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from edgeopt.cli.options import WideOpt
from edgeopt.cli.render import fmt_bytes, fmt_ms, fmt_num, listing, name_column, print_table, text_column


def _latency(record, key: str = "p50") -> float | None:  # noqa: ANN001 - a DeploymentRecord
    lat = (record.profile.get("latency") or {}).get("1") or next(iter((record.profile.get("latency") or {}).values()),
                                                                  {})
    return lat.get(key)


def models(
    name: Annotated[str | None, typer.Argument(help="Only this deployment name")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON array on stdout")] = False,
    wide: WideOpt = False,
) -> None:
    """List registered deployments: every version with its metric, latency, size and stage."""
    from edgeopt.registry.lifecycle import record_json
    from edgeopt.registry.store import require_registry

    registry = require_registry()
    records = registry.list(name)
    if as_json:
        typer.echo(json.dumps([record_json(r) for r in records], sort_keys=True))
        return
    if not records:
        named = f" named {name!r}" if name else ""
        Console(stderr=True).print(f"no deployments registered in {registry.path}{named}")
        return
    table = listing(f"Deployments in {registry.path}" + ("" if wide else " (--wide: device, p90, created)"))
    name_column(table, "ref (stages)", [r.ref for r in records])
    if wide:
        for col, values in (("target", [r.target for r in records]), ("device", [r.device for r in records]),
                            ("precision", [r.precision for r in records])):
            name_column(table, col, values)
    else:
        name_column(table, "target", [w for r in records for w in (r.target, r.precision)], wrap=True)
    text_column(table, "metric")
    for col in ("p50", *(("p90",) if wide else ()), "size"):
        table.add_column(col, justify="right", overflow="fold", no_wrap=wide)
    if wide:
        table.add_column("created", no_wrap=True)
    for r in records:
        ref = r.ref + (f"\n[dim]({', '.join(r.stages)})[/]" if r.stages else "")
        metric = f"{r.metrics.get('metric')} {fmt_num(r.metrics.get('candidate'))}"
        where = (r.target, r.device, r.precision) if wide else (f"{r.target}\n{r.precision}",)
        p90 = (fmt_ms(_latency(r, "p90")),) if wide else ()
        created = (r.created[:19],) if wide else ()
        table.add_row(ref, *where, metric, fmt_ms(_latency(r)), *p90, fmt_bytes(r.profile.get("size_bytes")),
                      *created)
    print_table(table, wide=wide)


def show(
    ref: Annotated[str, typer.Argument(help="NAME (latest), NAME:VERSION or NAME@STAGE")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")] = False,
) -> None:
    """Everything the registry holds about one version."""
    from edgeopt.registry.lifecycle import record_json
    from edgeopt.registry.store import require_registry

    record = require_registry().resolve(ref)
    data = record_json(record)
    if as_json:
        typer.echo(json.dumps(data, sort_keys=True))
        return
    console = Console()
    console.print(f"[bold]{record.ref}[/] {('(' + ', '.join(record.stages) + ')') if record.stages else ''}")
    rows = [
        ("created", record.created),
        ("artifact", record.artifact_path),
        ("manifest sha256", record.manifest_sha256),
        ("source", f"{record.source_path} ({record.source_format}, sha256 {record.source_fingerprint[:16]})"),
        ("target / device", f"{record.target} on {record.device}"),
        ("plan", f"{record.precision}: {record.plan.get('label', '')}"),
        ("passes", ", ".join(p.get("name", "") for p in record.plan.get("passes") or [])),
        ("metric", f"{record.metrics.get('metric')} {fmt_num(record.metrics.get('candidate'))} "
                   f"(drop {fmt_num(record.metrics.get('drop'))} {record.metrics.get('units') or ''})"),
    ]
    for batch, stats in (record.profile.get("latency") or {}).items():
        rows.append((f"latency batch {batch}", f"p50 {fmt_ms(stats.get('p50'))}, p90 {fmt_ms(stats.get('p90'))} "
                                              f"({stats.get('method')}, {stats.get('runs')} runs)"))
    energy = record.profile.get("energy") or {}
    if energy:
        rows.append(("energy / inference", f"{fmt_num(energy.get('joules_per_inference'))} J ({energy.get('method')})"))
    rows.append(("size", f"{fmt_bytes(record.profile.get('size_bytes'))} ({record.profile.get('size_method')})"))
    calib = record.calibration or {}
    if calib:
        rows.append(("calibration summary", f"{len(calib.get('features') or {})} features from {calib.get('samples')} "
                                           f"samples of {calib.get('source') or '?'}"))
    for key, link in (record.links or {}).items():
        rows.append((key, link))
    table = Table(show_header=False)
    table.add_column(style="dim")
    table.add_column()
    for k, v in rows:
        table.add_row(k, str(v))
    console.print(table)


def _print_diff(console: Console, d) -> None:  # noqa: ANN001 - a RecordDiff
    table = Table(title=f"{d.a} → {d.b}")
    for col in ("figure", d.a, d.b, "change", "method"):
        table.add_column(col, justify="left" if col in ("figure", "method") else "right")
    for delta in d.deltas:
        def show(v, unit=delta.unit):  # noqa: ANN001, ANN202
            return fmt_ms(v) if unit == "s" else fmt_bytes(v) if unit == "bytes" else fmt_num(v)
        change = ""
        if delta.change is not None:
            change = f"{show(delta.change) if delta.unit in ('s', 'bytes') else fmt_num(delta.change)}"
            if delta.ratio is not None:
                change += f" ({delta.ratio:.2f}x)"
        method = delta.method_a if delta.method_a == delta.method_b else f"{delta.method_a} / {delta.method_b}"
        table.add_row(delta.what, show(delta.a), show(delta.b), change, method)
    console.print(table)
    if d.plan:
        plan = Table(title="plan and provenance differences")
        for col in ("field", d.a, d.b):
            plan.add_column(col)
        for key, (va, vb) in d.plan.items():
            plan.add_row(key, json.dumps(va)[:80], json.dumps(vb)[:80])
        console.print(plan)
    for pkg, (va, vb) in d.packages.items():
        console.print(f"package {pkg}: {va} → {vb}")
    for note in d.notes:
        console.print(f"[yellow]note:[/] {note}")


def diff(
    a: Annotated[str, typer.Argument(help="NAME:VERSION (or NAME@STAGE) to compare from")],
    b: Annotated[str, typer.Argument(help="NAME:VERSION (or NAME@STAGE) to compare to")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")] = False,
) -> None:
    """Metric, latency, size and energy deltas between two registered versions, and how their plans differ."""
    from edgeopt.registry.diff import diff_records
    from edgeopt.registry.store import require_registry

    registry = require_registry()
    d = diff_records(registry.resolve(a), registry.resolve(b))
    if as_json:
        typer.echo(json.dumps(d.to_dict(), sort_keys=True))
        return
    _print_diff(Console(), d)


def promote(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION to promote")],
    stage: Annotated[str, typer.Option(help="production or staging")] = "production",
) -> None:
    """Point a stage of a deployment at one version; edgeopt.load("registry:NAME@STAGE") loads it."""
    from edgeopt.registry.refs import parse_ref
    from edgeopt.registry.store import require_registry

    registry = require_registry()
    record = registry.resolve(ref)
    name, _, _ = parse_ref(ref)
    before = registry.promote(name, record.version, stage)
    was = f" (was {name}:{before})" if before is not None else ""
    typer.echo(f"{stage} of {name} → {record.ref}{was}")


def rollback(
    name: Annotated[str, typer.Argument(help="Deployment name")],
    stage: Annotated[str, typer.Option(help="production or staging")] = "production",
) -> None:
    """Undo the last promotion of a stage: it points at the version it pointed at before."""
    from edgeopt.registry.refs import check_name
    from edgeopt.registry.store import require_registry

    old, new = require_registry().rollback(check_name(name), stage)
    typer.echo(f"{stage} of {name} rolled back: {name}:{old} → {name}:{new}")


def redeploy(
    ref: Annotated[str, typer.Argument(help="NAME (latest), NAME:VERSION or NAME@STAGE")],
    out: Annotated[Path | None, typer.Option(help="Artifact directory (default: <name>-redeploy-N.edgeopt beside "
                                                  "the old one)")] = None,
    calib: Annotated[Path | None, typer.Option(help="New calibration data (default: the recorded data)")] = None,
    eval_: Annotated[
        Path | None, typer.Option("--eval", help="New evaluation data (default: the recorded data)")
    ] = None,
    timing_s: Annotated[float | None, typer.Option(help="Seconds of timing (default: as recorded)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")] = False,
) -> None:
    """Re-run a version's recorded deploy with today's toolchain and data, register it, and diff it."""
    from edgeopt.cli.deploy_command import CliEvents
    from edgeopt.registry.lifecycle import redeploy as sdk_redeploy
    from edgeopt.registry.lifecycle import registered

    err = Console(stderr=True)
    events = CliEvents(err)
    with events.status:
        deployment, d = sdk_redeploy(ref, out=out, calib=calib, eval=eval_, timing_s=timing_s, events=events)
    new = registered(deployment)
    if as_json:
        typer.echo(json.dumps({"path": str(deployment.path), "ref": new.ref if new else None,
                               "diff": d.to_dict() if d else None}, sort_keys=True))
        return
    console = Console()
    if d is not None:
        _print_diff(console, d)
    console.print(f"[bold green]redeployed[/] {ref} → {new.ref if new else '(not registered)'} at {deployment.path}")


def register(app: typer.Typer) -> None:
    for command in (models, show, diff, promote, rollback, redeploy):
        app.command()(command)
