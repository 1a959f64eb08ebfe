"""``edgeopt profile`` and ``edgeopt verify``: commands over a written artifact."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from edgeopt.cli.options import parse_int_list
from edgeopt.cli.render import print_profile_extras, profile_table


def profile(
    artifact: Annotated[Path, typer.Argument(help="Artifact directory written by `edgeopt deploy`")],
    runs: Annotated[int | None, typer.Option(help="Timed runs per batch (default: by time budget)")] = None,
    batch: Annotated[str, typer.Option(help="Batch sizes, e.g. 1,4,8")] = "1",
    timing_s: Annotated[float, typer.Option(help="Seconds of timing per batch")] = 2.0,
    slo_ms: Annotated[float | None, typer.Option(help="Latency SLO for choosing a batch")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print exactly one JSON object on stdout")] = False,
) -> None:
    """Re-measure an artifact on this machine (verifies every file first)."""
    from edgeopt.api import profile as sdk_profile

    result = sdk_profile(
        artifact, runs=runs, batch=parse_int_list(batch, what="--batch"), timing_s=timing_s, slo_ms=slo_ms
    )
    if as_json:
        typer.echo(json.dumps(result, sort_keys=True))
        return
    console = Console()
    console.print(profile_table(result, title=f"Profile of {artifact}"))
    print_profile_extras(console, result, device=_device_facts(result.get("device")))


def _device_facts(name: str | None) -> dict | None:
    """Name and description of the device profile a profile's energy estimate used (None if unknown)."""
    from edgeopt.errors import DeviceError
    from edgeopt.measure.devices import get_profile

    if not name:
        return None
    try:
        return {"name": name, "description": get_profile(name).description}
    except DeviceError:
        return {"name": name}


def verify(artifact: Annotated[Path, typer.Argument(help="Artifact directory")]) -> None:
    """Check the manifest and the sha256 of every file in an artifact."""
    from edgeopt.artifact.write import verify_artifact

    manifest = verify_artifact(artifact)
    typer.echo(
        f"ok: {artifact} — {len(manifest['files'])} files verified "
        f"({manifest['target']['name']}, {manifest['plan']['precision']})"
    )


def register(app: typer.Typer) -> None:
    app.command()(profile)
    app.command()(verify)
