"""``edgeopt plugins`` (list), ``edgeopt plugins doctor`` and ``edgeopt plugins new NAME``."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from edgeopt.cli.options import JsonOpt, WideOpt
from edgeopt.cli.render import listing, name_column, print_table, text_column

plugins_app = typer.Typer(
    help="Installed plugins: list them, diagnose them, or scaffold a new one.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def _echo_json(value: object) -> None:
    typer.echo(json.dumps(value, sort_keys=True, default=str))


@plugins_app.callback(invoke_without_command=True)
def plugins(ctx: typer.Context, as_json: JsonOpt = False, wide: WideOpt = False) -> None:
    """Loaded plugins with version and status; broken ones with their error."""
    if ctx.invoked_subcommand is not None:
        return
    from edgeopt.api import plugins as sdk_plugins

    found = sdk_plugins()
    if as_json:
        _echo_json([asdict(p) for p in found])
        return
    table = listing("Plugins (EDGEOPT_PLUGINS=a,b loads only those)" if wide
                    else "Plugins (EDGEOPT_PLUGINS=a,b loads only those; --wide: full hook names)")
    name_column(table, "plugin", [p.name for p in found])
    table.add_column("version", no_wrap=True)
    table.add_column("status", no_wrap=True)
    text_column(table, "hooks / error", ratio=1)
    for p in found:
        status = "[green]ok[/]" if p.status == "ok" else "[red]broken[/]"
        hooks = [h if wide else h.removeprefix("edgeopt_") for h in p.hooks]
        table.add_row(
            p.name,
            p.version + (" builtin" if p.builtin else ""),
            status,
            ", ".join(hooks) if p.status == "ok" else escape(p.error),
        )
    print_table(table, wide=wide)


@plugins_app.command()
def doctor(as_json: JsonOpt = False) -> None:
    """Each plugin's version, status, hooks, declared hook API, targets and problems, then every EDGEOPT_*
    setting with its value (or what applies when unset) and any problem with it; exit 1 if a plugin is broken."""
    from edgeopt.plugin.doctor import diagnose, diagnose_settings
    from edgeopt.plugin.hookspecs import HOOK_API_VERSION
    from edgeopt.plugin.manager import get_plugin_manager

    found = diagnose(get_plugin_manager())
    env = diagnose_settings()
    if as_json:
        _echo_json({"hook_api": HOOK_API_VERSION, "plugins": [asdict(d) for d in found],
                    "settings": [asdict(s) for s in env]})
    else:
        console = Console()
        console.print(f"edgeopt hook API {HOOK_API_VERSION}")
        for d in found:
            colour = "green" if d.status == "ok" else "red"
            kind = " (builtin)" if d.builtin else ""
            console.print(f"\n[bold]{d.name}[/]{kind} {d.version} [{colour}]{d.status}[/]  hook API {d.api_version}")
            console.print(f"  hooks: {', '.join(d.hooks) or 'none'}")
            for t in d.targets:
                state = "available" if t.available else "unavailable"
                console.print(f"  target {t.name}: {state}; precisions {', '.join(t.precisions)}")
            for problem in d.problems:
                console.print(f"  [yellow]problem:[/] {problem}", highlight=False)
        console.print("\n[bold]settings[/] (docs/configuration.md)")
        for s in env:
            unset = escape(s.unset.replace("`", ""))
            shown = escape(repr(s.value)) if s.value is not None else f"[dim](unset: {unset})[/]"
            console.print(f"  {s.name} = {shown}", highlight=False, soft_wrap=True)
            if s.problem:
                console.print(f"  [yellow]problem:[/] {escape(s.problem)}", highlight=False)
    if any(d.status != "ok" for d in found):
        raise typer.Exit(1)


@plugins_app.command()
def new(
    name: Annotated[str, typer.Argument(help="Target name, e.g. acme-npu (the distribution is edgeopt-NAME)")],
    directory: Annotated[Path, typer.Option("--dir", help="Folder to create edgeopt-NAME in")] = Path("."),
) -> None:
    """Scaffold a plugin distribution that works out of the box (delegating to ONNX Runtime CPU)."""
    from edgeopt.plugin.scaffold import plugin_names, scaffold_plugin

    root = scaffold_plugin(name, directory)
    names = plugin_names(name)
    typer.echo(f"wrote {root}")
    typer.echo(f"  target {names.target!r}, distribution {names.distribution}, module {names.module}")
    typer.echo(f"next: pip install -e {root}[test] && pytest {root}")


def register(app: typer.Typer) -> None:
    app.add_typer(plugins_app, name="plugins")
