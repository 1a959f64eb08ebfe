"""Parsing of the CLI's compact option syntaxes."""

from __future__ import annotations

from edgeopt.errors import InputSpecError


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
