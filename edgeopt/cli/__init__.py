"""The ``edgeopt`` command line: composes the command modules and turns errors into one clear line."""

from __future__ import annotations

import os
import sys

import typer

from edgeopt.cli import (
    artifact_commands,
    compare_command,
    deploy_command,
    failures,
    info_commands,
    monitor_command,
    plugin_commands,
    registry_commands,
)
from edgeopt.errors import EdgeoptError

app = typer.Typer(
    name="edgeopt",
    help="Take a trained model to an edge device and prove how fast, small, accurate and energy-hungry it is there.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
deploy_command.register(app)
compare_command.register(app)
artifact_commands.register(app)
info_commands.register(app)
plugin_commands.register(app)
registry_commands.register(app)
monitor_command.register(app)


def _add_plugin_commands() -> None:
    if os.environ.get("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD"):
        return
    from edgeopt.plugins import get_plugin_manager

    get_plugin_manager(builtins=False).add_cli_commands(app)


def main() -> None:
    """Console entry point: EdgeoptError → ``error[CODE]: message`` + hint on stderr, exit 1; under ``--json``
    also one ``{"error": {"code", "message", "hint"}}`` object on stdout (``edgeopt.cli.failures``)."""
    as_json = failures.wants_json(sys.argv[1:])
    try:
        _add_plugin_commands()
        status = app(standalone_mode=False)  # usage errors reach us, so --json can report them as JSON too
    except EdgeoptError as exc:
        if os.environ.get("EDGEOPT_DEBUG"):
            raise
        raise SystemExit(failures.edgeopt_failure(exc, as_json=as_json)) from None
    except typer.TyperException as exc:  # Click's usage errors (Typer vendors Click)
        if not hasattr(exc, "format_message"):
            raise
        raise SystemExit(failures.usage_failure(exc, as_json=as_json)) from None
    except typer.Abort:
        sys.stderr.write("Aborted!\n")
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        sys.stderr.write("interrupted; nothing was written\n")
        raise SystemExit(130) from None
    except Exception as exc:
        failures.internal_failure(exc, as_json=as_json)
        raise
    if isinstance(status, int) and status:  # typer.Exit(N) from a command
        raise SystemExit(status)
