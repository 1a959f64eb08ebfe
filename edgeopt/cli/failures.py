"""How a failed command ends: one ``error[CODE]`` line and its hint on stderr, and under ``--json`` the same
error as exactly one JSON object on stdout, so a script that parses the output always gets JSON.

``{"error": {"code": "E600", "message": "...", "hint": "..."}}``

Errors edgeopt raises on purpose (``EdgeoptError``) exit with their class's ``exit_status`` (docs/errors.md).
A command line Typer cannot parse (unknown option, missing argument, bad value) is ``CommandLineError`` (E010)
and exits 2, as Click does. Anything else is a bug: under ``--json`` it still prints the JSON object (code
E000), then the traceback on stderr, and exits 70.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence

from edgeopt import settings
from edgeopt.errors import CommandLineError, EdgeoptError

INTERNAL_HINT = "this is a bug in edgeopt or a plugin: rerun with EDGEOPT_DEBUG=1 and report the traceback"


def wants_json(argv: Sequence[str]) -> bool:
    """Whether the command line asks for ``--json`` output (an argument before any ``--``)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


def error_object(code: str, message: str, hint: str) -> dict:
    """The one JSON object a failure prints under ``--json``."""
    return {"error": {"code": code, "message": message, "hint": hint}}


def _emit(code: str, message: str, hint: str, *, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(error_object(code, message, hint), sort_keys=True) + "\n")
        sys.stdout.flush()
    sys.stderr.write(f"error[{code}]: {message}\n")
    if hint:
        sys.stderr.write(f"  hint: {hint}\n")


def edgeopt_failure(exc: EdgeoptError, *, as_json: bool) -> int:
    """Print ``exc`` (stderr; stdout too under ``--json``); the exit status, ``exc.exit_status``."""
    _emit(exc.code, exc.message, exc.hint, as_json=as_json)
    return int(getattr(exc, "exit_status", 1))


def usage_failure(exc: Exception, *, as_json: bool) -> int:
    """A Click/Typer usage error: Typer's own rendering on stderr, or under ``--json`` a ``CommandLineError``
    object on stdout and its line on stderr. Returns Click's exit status for it (2 for usage errors)."""
    code = int(getattr(exc, "exit_code", 2))
    if as_json:
        ctx = getattr(exc, "ctx", None)
        path = getattr(ctx, "command_path", None) or "edgeopt"
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        _emit(CommandLineError.code, message, f"run `{path} --help` for the options", as_json=True)
        return code
    try:
        from typer import rich_utils

        rich_utils.rich_format_error(exc)  # what Typer prints in its standalone mode
    except (ImportError, AttributeError):
        exc.show()  # type: ignore[attr-defined]
    return code


def internal_failure(exc: BaseException, *, as_json: bool) -> None:
    """A bug (not an EdgeoptError): under ``--json`` the error object on stdout; the caller re-raises, so the
    traceback follows on stderr."""
    if as_json and not settings.flag("EDGEOPT_DEBUG"):
        text = str(exc).strip().splitlines()
        message = f"internal error: {type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
        sys.stdout.write(json.dumps(error_object("E000", message, INTERNAL_HINT), sort_keys=True) + "\n")
        sys.stdout.flush()
