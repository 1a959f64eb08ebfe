"""``edgeopt farm head|join ADDRESS|status ADDRESS`` and the farm half of ``edgeopt compare MODEL… --farm``."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

farm_app = typer.Typer(help="A device farm on Ray: compile anywhere, measure on the machine that has the device.",
                       no_args_is_help=True)

DeviceOpt = Annotated[
    list[str] | None,
    typer.Option("--device", help="A device on this node: NAME (this machine's CPU) or NAME=PROFILE (a device "
                 "profile attached here, see `edgeopt devices`); repeatable (join default: this host's name)"),
]
TargetsOpt = Annotated[
    str | None, typer.Option(help="Comma-separated targets to offer (default: every available one)"),
]


def _split(text: str | None) -> list[str]:
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def _run_node(cmd: list[str], what: str) -> None:
    from edgeopt.farm.cluster import node_env

    Console(stderr=True).print(f"{what}; Ctrl-C stops it. Keep its ports on a private network (docs/farm.md).")
    try:
        status = subprocess.call(cmd, env=node_env())
    except KeyboardInterrupt:
        status = 0
    if status:
        raise typer.Exit(status)


def _resources(device: list[str] | None, targets: str | None, *, default_device: bool) -> dict[str, float]:
    from edgeopt.farm.resources import node_resources, parse_device

    devices = [parse_device(d) for d in device or []]
    if not devices and not default_device:
        return {}
    return node_resources(devices, targets=_split(targets)).resources


@farm_app.command()
def head(
    port: Annotated[int, typer.Option(help="Port the head listens on")] = 6379,
    node_ip: Annotated[str | None, typer.Option(help="Address other nodes reach this one at")] = None,
    device: DeviceOpt = None,
    targets: TargetsOpt = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs this node lends to jobs (default: all)")] = None,
) -> None:
    """Start the farm's head node (a Ray head) here; with --device it also offers this machine's devices."""
    from edgeopt.farm.cluster import ray_module, start_command

    ray_module("edgeopt farm head")
    res = _resources(device, targets, default_device=False)
    _run_node(start_command(head=True, port=port, node_ip=node_ip, num_cpus=num_cpus, resources=res),
              f"farm head on port {port} offering {len(res)} edgeopt resource(s)")


@farm_app.command()
def join(
    address: Annotated[str, typer.Argument(help="The head's host:port")],
    node_ip: Annotated[str | None, typer.Option(help="Address other nodes reach this one at")] = None,
    device: DeviceOpt = None,
    targets: TargetsOpt = None,
    num_cpus: Annotated[int | None, typer.Option(help="CPUs this node lends to jobs (default: all)")] = None,
) -> None:
    """Join the farm at ADDRESS as a worker offering this machine's targets and devices."""
    from edgeopt.farm.cluster import ray_module, start_command

    ray_module("edgeopt farm join")
    res = _resources(device, targets, default_device=True)
    shown = sorted(k.removeprefix("edgeopt:") for k in res if "@" in k and ":build:" not in k)
    _run_node(start_command(head=False, address=address, node_ip=node_ip, num_cpus=num_cpus, resources=res),
              f"joining {address} with {', '.join(shown)}")


@farm_app.command()
def status(
    address: Annotated[str, typer.Argument(help="The head's host:port")],
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout")] = False,
) -> None:
    """Nodes (alive or gone), their devices and targets, ISA and memory, and what is measuring now."""
    import edgeopt.farm as farm

    with farm.connect(address) as f:
        st = f.status()
    data = st.to_dict()
    if as_json:
        typer.echo(json.dumps(data, sort_keys=True, default=str))
        return
    table = Table(title=f"farm {address}: {st.cpus_busy:g}/{st.cpus_total:g} CPUs busy; measuring: "
                  f"{', '.join(st.measuring) or 'nothing'}", title_justify="left")
    for h in ("node", "state", "CPUs", "devices", "targets", "ISA", "memory free"):
        table.add_column(h)
    for n in st.nodes:
        facts = n.facts or {}
        mem = facts.get("memory_available")
        table.add_row(n.node_id[:8], "alive" if n.alive else "gone", f"{n.cpus:g}", ", ".join(n.devices) or "—",
                      ", ".join(n.targets) or "—", ",".join(facts.get("isa") or []) or "—",
                      f"{mem / 2**30:.1f} GiB" if mem else "—")
    console = Console()
    console.print(table)
    for name, dev in st.devices.items():
        console.print(f"device {name}: {'GONE (its node left the farm)' if dev.gone else 'up'}; profile "
                      f"{dev.profile_key}; targets {', '.join(dev.targets)}")


def compare_on_farm(
    models: list[str], *, farm_address: str, devices: str | None, targets: str | None, precision: str,
    max_drop: float, metric: str | None, objective: str, timing_s: float, budget_s: float | None,
    calib: Path | None, eval_: Path | None, no_cache: bool, html: Path | None, as_json: bool,
    out: Path | None = None, timeout_s: float = 1800.0,
) -> None:
    """``edgeopt compare MODEL… --farm ADDRESS``: the matrix, a progress bar, a table and the HTML report."""
    import edgeopt.farm as farm
    from edgeopt.farm.jobs import DeployOptions
    from edgeopt.farm.report import cell_text, render_farm_html

    options = DeployOptions(precision=precision, max_drop=max_drop, metric=metric, timing_s=timing_s,
                            budget_s=budget_s, objective=objective, cache=not no_cache)
    err = Console(stderr=True)
    with farm.connect(farm_address) as f, Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err,
        transient=True, disable=as_json,
    ) as bar:
        task = bar.add_task("farm", total=None)

        def progress(done: int, total: int, what: str) -> None:
            bar.update(task, completed=done, total=total, description=what[:60])

        result = f.compare(models, targets=_split(targets), devices=_split(devices), options=options, calib=calib,
                           eval=eval_, out_dir=out or Path.cwd() / "edgeopt-farm", timeout_s=timeout_s,
                           progress=progress)
    data = result.to_dict()
    report = html or Path.cwd() / "farm-compare.html"
    report.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{report.name}.", dir=report.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render_farm_html(data))
    os.replace(tmp, report)
    if as_json:
        typer.echo(json.dumps({**data, "report_html": str(report)}, sort_keys=True, default=str))
        return
    table = Table(title=f"{len(data['cells'])} cells on the farm at {farm_address} ({data['seconds']:.0f} s)",
                  title_justify="left")
    for h in ("model", "target", "device", "status", "result"):
        table.add_column(h)
    for c in data["cells"]:
        table.add_row(c["model"], c["target"], c["device"], c["status"], cell_text(c),
                      style="bold green" if c["status"] == "winner" else "")
    console = Console() if Console().is_terminal else Console(width=160)
    console.print(table)
    console.print(f"matrix report: {report}")


def register(app: typer.Typer) -> None:
    app.add_typer(farm_app, name="farm")
