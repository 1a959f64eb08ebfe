"""The ``edgeopt`` command line: composes the command modules and turns errors into one clear line.

How a run ends (docs/errors.md has the table): 0 done; an ``EdgeoptError`` prints ``error[CODE]`` and its
hint and exits with the class's ``exit_status`` (2 for a command line that cannot be parsed); Ctrl-C prints
``interrupted; nothing was written`` and exits 130 (the SDK writes through temp folders renamed into place,
so an interrupted run leaves nothing behind); any other exception is a bug: its traceback, exit 70.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer

from edgeopt import settings
from edgeopt.cli import (
    artifact_commands,
    compare_command,
    deploy_command,
    failures,
    farm_commands,
    info_commands,
    monitor_command,
    plugin_commands,
    project_config,
    registry_commands,
)
from edgeopt.errors import INTERNAL_EXIT_STATUS, INTERRUPTED_EXIT_STATUS, EdgeoptError

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
INTERRUPTED = "interrupted; nothing was written"
LOG_LEVELS = settings.LOG_LEVELS

app = typer.Typer(
    name="edgeopt",
    help="Take a trained model to an edge device and prove how fast, small, accurate and energy-hungry it is there.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    context_settings=CONTEXT_SETTINGS,
)
deploy_command.register(app)
compare_command.register(app)
artifact_commands.register(app)
info_commands.register(app)
plugin_commands.register(app)
registry_commands.register(app)
monitor_command.register(app)
farm_commands.register(app)


def _version(value: bool) -> None:
    if value:
        from edgeopt.version import __version__

        typer.echo(f"edgeopt {__version__}")
        raise typer.Exit()


def configure_logging(verbose: int, level: str | None) -> None:
    """The ``edgeopt`` logger (and every ``edgeopt.*`` one below it) to stderr: ``--log-level`` when given,
    else WARNING, INFO with ``-v``, DEBUG with ``-vv``. Other libraries' loggers are left alone."""
    name = level.upper() if level else ("WARNING", "INFO", "DEBUG")[min(verbose, 2)]
    logger = logging.getLogger("edgeopt")
    logger.setLevel(name)
    if not any(getattr(h, "_edgeopt_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler._edgeopt_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print edgeopt's version and exit")
    ] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More log lines on stderr: -v info, -vv debug")
    ] = 0,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", envvar="EDGEOPT_LOG_LEVEL", metavar="LEVEL",
                     help="Level of the edgeopt logger: debug, info, warning or error (overrides -v)"),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", envvar="EDGEOPT_DEBUG",
                           help="Show the traceback of an error, not just its error[E…] line")
    ] = False,
) -> None:
    """Take a trained model to an edge device and prove how fast, small, accurate and energy-hungry it is there.

    Project defaults (target, max-drop, calib and eval paths) may sit in ./edgeopt.toml or in a [tool.edgeopt]
    section of pyproject.toml, here or in a parent folder; options on the command line win."""
    if log_level is not None and log_level.lower() not in LOG_LEVELS:
        raise typer.BadParameter(f"{log_level!r} is not one of {', '.join(LOG_LEVELS)}", param_hint="--log-level")
    configure_logging(verbose, log_level)
    if debug:
        os.environ["EDGEOPT_DEBUG"] = "1"


def _add_plugin_commands() -> None:
    if settings.flag("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD"):
        return
    from edgeopt.plugin.manager import get_plugin_manager

    get_plugin_manager(builtins=False).add_cli_commands(app)


def command() -> typer.main.TyperGroup:
    """The Click group ``main`` runs: the app with the installed plugins' commands, flags shown without a
    ``<bool>`` placeholder (they take no value)."""
    _add_plugin_commands()
    group = typer.main.get_command(app)
    pending = [group]
    while pending:
        cmd = pending.pop()
        pending.extend(getattr(cmd, "commands", {}).values())
        help_option = cmd.get_help_option(SimpleNamespace(**CONTEXT_SETTINGS))  # created once, then cached
        for param in [*cmd.params, *([help_option] if help_option else [])]:
            if getattr(param, "is_flag", False) or getattr(param, "count", False):
                param.metavar = ""
    return group


class _Interrupts:
    """SIGINT raises KeyboardInterrupt as usual, and is remembered: Typer turns KeyboardInterrupt into a quiet
    exit 130, and this is how ``main`` knows that status came from Ctrl-C."""

    def __init__(self) -> None:
        self.seen = False

    def __call__(self, signum: int, frame: object) -> None:
        self.seen = True
        raise KeyboardInterrupt

    def install(self) -> None:
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, self)


def _interrupted() -> int:
    sys.stderr.write(f"\n{INTERRUPTED}\n")
    return INTERRUPTED_EXIT_STATUS


def main() -> None:
    """Console entry point: EdgeoptError → ``error[CODE]: message`` + hint on stderr and the class's exit
    status; under ``--json`` also one ``{"error": {"code", "message", "hint"}}`` object on stdout
    (``edgeopt.cli.failures``); Ctrl-C → one line, exit 130; a bug → its traceback, exit 70."""
    as_json = failures.wants_json(sys.argv[1:])
    interrupts = _Interrupts()
    interrupts.install()
    try:
        group = command()
        _, defaults = project_config.default_map(group, Path.cwd())
        # standalone_mode=False: usage errors reach us, so --json can report them as JSON too
        status = group.main(args=sys.argv[1:], prog_name="edgeopt", standalone_mode=False, default_map=defaults)
    except EdgeoptError as exc:
        if settings.flag("EDGEOPT_DEBUG"):
            traceback.print_exc()
        raise SystemExit(failures.edgeopt_failure(exc, as_json=as_json)) from None
    except typer.TyperException as exc:  # Click's usage errors (Typer vendors Click)
        if not hasattr(exc, "format_message"):
            raise
        raise SystemExit(failures.usage_failure(exc, as_json=as_json)) from None
    except typer.Abort:
        sys.stderr.write("Aborted!\n")
        raise SystemExit(1) from None
    except KeyboardInterrupt:  # before Typer runs the command (plugin loading, project defaults)
        raise SystemExit(_interrupted()) from None
    except Exception as exc:
        failures.internal_failure(exc, as_json=as_json)
        traceback.print_exc()
        raise SystemExit(INTERNAL_EXIT_STATUS) from None
    if status == INTERRUPTED_EXIT_STATUS and interrupts.seen:
        raise SystemExit(_interrupted())
    if isinstance(status, int) and status:  # typer.Exit(N) from a command
        raise SystemExit(status)


__all__ = ["app", "configure_logging", "main"]
