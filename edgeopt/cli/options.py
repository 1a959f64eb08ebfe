"""Parsing of the CLI's compact option syntaxes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

import typer

from edgeopt.errors import InputSpecError

JsonOpt = Annotated[bool, typer.Option("--json", help="Print exactly one JSON value on stdout (for scripts)")]
"""``--json`` for a listing or report command."""
WideOpt = Annotated[
    bool, typer.Option("--wide", help="Every column at full width, even wider than the terminal")
]
"""``--wide`` for a table command: the narrow layout fits 80 columns and never cuts a name."""

NO_STATE = "none"
"""``--state none``: run the model without state pairs (detection off)."""


def parse_dims(text: str) -> tuple[int, ...]:
    """``1x3x224x224`` (or ``1,3,224,224``) → (1, 3, 224, 224)."""
    parts = text.replace(",", "x").lower().split("x")
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        raise InputSpecError(f"cannot read dimensions {text!r}", hint="write them like 1x3x224x224") from None
    if not dims or any(d <= 0 for d in dims):
        raise InputSpecError(f"dimensions must be positive integers, got {text!r}", hint="e.g. 1x3x224x224")
    return dims


def parse_input_shapes(values: list[str] | None) -> dict[str, tuple[int, ...]]:
    """``["x=1x3x8x8", "1x4"]`` → ``{"x": (1, 3, 8, 8), "": (1, 4)}`` (no name: the single input)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for value in values or []:
        name, _, dims = value.rpartition("=")
        shapes[name] = parse_dims(dims)
    return shapes


def parse_int_list(text: str, *, what: str) -> tuple[int, ...]:
    """``1,4,8`` → (1, 4, 8)."""
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise InputSpecError(f"cannot read {what} {text!r}", hint=f"write {what} like 1,4,8") from None
    if not values or any(v <= 0 for v in values):
        raise InputSpecError(f"{what} must be positive integers, got {text!r}")
    return values


def parse_state(values: Iterable[str] | None) -> dict[str, str] | None:
    """CLI ``--state``: ``["stateN=state", ...]`` -> ``{"stateN": "state"}`` (output -> input); ``["none"]`` -> ``{}``
    (no state, detection off); nothing -> None (detect)."""
    values = [v for v in (values or []) if v.strip()]
    if not values:
        return None
    if [v.strip().lower() for v in values] == [NO_STATE]:
        return {}
    pairs: dict[str, str] = {}
    for value in values:
        out, sep, inp = value.partition("=")
        if not sep or not out.strip() or not inp.strip():
            raise InputSpecError(f"cannot read --state {value!r}",
                                 hint="write --state OUTPUT=INPUT (the output fed back as that input), or --state none")
        pairs[out.strip()] = inp.strip()
    return pairs


def positive(value: float | None) -> float | None:
    """Typer callback: a number option must be above 0 (None: not given). Checked before any work starts."""
    if value is not None and value <= 0:
        raise typer.BadParameter(f"must be above 0, got {value:g}")
    return value


def non_negative(value: float | None) -> float | None:
    """Typer callback: a number option must be 0 or more (None: not given)."""
    if value is not None and value < 0:
        raise typer.BadParameter(f"must be 0 or more, got {value:g}")
    return value


def lowercase(value: str | None) -> str | None:
    """Typer callback: names edgeopt spells in lower case (``--precision INT8`` -> ``int8``)."""
    return value.lower() if isinstance(value, str) else value
