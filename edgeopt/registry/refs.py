"""Deployment names, stages and refs (``NAME``, ``NAME:VERSION``, ``NAME@STAGE``)."""

from __future__ import annotations

from edgeopt.errors import RegistryError
from edgeopt.registry.records import NAME_RE, STAGES


def check_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise RegistryError(
            f"{name!r} is not a valid deployment name",
            hint="use letters, digits, '.', '_' and '-' (up to 128 characters), e.g. digits_cnn",
        )
    return name


def check_stage(stage: str) -> str:
    if stage not in STAGES:
        raise RegistryError(f"unknown stage {stage!r}", hint=f"choose one of: {', '.join(STAGES)}")
    return stage


def parse_ref(ref: str) -> tuple[str, int | None, str | None]:
    """``NAME[:VERSION|:latest][@STAGE]`` → (name, version or None, stage or None)."""
    text = str(ref).strip()
    stage = None
    if "@" in text:
        text, stage = text.split("@", 1)
        check_stage(stage)
    version: int | None = None
    if ":" in text:
        text, raw = text.split(":", 1)
        if raw != "latest":
            if not raw.isdigit() or int(raw) < 1:
                raise RegistryError(f"{ref!r}: the version must be a positive number or 'latest'",
                                    hint="write NAME, NAME:VERSION or NAME@production")
            version = int(raw)
    if stage is not None and version is not None:
        raise RegistryError(f"{ref!r}: give a version or a stage, not both", hint="write NAME:3 or NAME@production")
    return check_name(text), version, stage
