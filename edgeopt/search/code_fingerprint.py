"""Fingerprints of the code that builds a candidate, so the search cache is keyed by content, not by a version
string that an in-place edit, an editable install or a toolchain upgrade leaves unchanged.

A fingerprint covers every ``.py`` file of the package a plugin object comes from (relative path and bytes) and
the installed versions of the distributions that package's distribution requires (e.g. onnxruntime, openvino).
Results are memoized per process: code does not change under a running deploy.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata as md
import re
import sys
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")


def _package_root(module_name: str) -> tuple[str, Path | None]:
    """The top-level package of ``module_name`` and its directory (None for a single-file or built-in module)."""
    top = module_name.split(".")[0]
    module = sys.modules.get(top)
    if module is None:
        return top, None
    paths = list(getattr(module, "__path__", []) or [])
    if paths:
        return top, Path(paths[0])
    file = getattr(module, "__file__", None)
    return top, Path(file) if file else None


@functools.cache
def _source_digest(location: Path | None) -> str:
    h = hashlib.sha256()
    if location is None:
        return ""
    files = sorted(location.rglob("*.py")) if location.is_dir() else [location]
    for path in files:
        try:
            data = path.read_bytes()
        except OSError:
            continue
        rel = path.relative_to(location).as_posix() if location.is_dir() else path.name
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


@functools.cache
def distribution_of_plugin(name: str) -> str | None:
    """The distribution that provides entry point ``name`` in the ``edgeopt`` group (None: registered in-process)."""
    for ep in md.entry_points(group="edgeopt", name=name):
        if ep.dist is not None:
            return ep.dist.name
    return None


@functools.cache
def requirement_versions(distribution: str) -> tuple[tuple[str, str], ...]:
    """``(name, version)`` of ``distribution`` and of the installed distributions it requires outside extras
    (a requirement that is not installed is absent)."""
    try:
        found = {distribution.lower(): md.version(distribution)}
        requires = md.requires(distribution) or []
    except md.PackageNotFoundError:
        return ()
    for requirement in requires:
        match = _NAME.match(requirement)
        if not match or "extra ==" in requirement:
            continue
        with contextlib.suppress(md.PackageNotFoundError):
            found[match.group(0).lower()] = md.version(match.group(0))
    return tuple(sorted(found.items()))


def code_fingerprint(obj: object, *, distribution: str | None = None) -> str:
    """sha256 over the source of the package ``obj`` (a module, class or instance) belongs to and, when
    ``distribution`` is given, the versions of it and of what it requires; "" when ``obj`` has no origin."""
    if isinstance(obj, type(sys)):
        module_name = obj.__name__
    elif isinstance(obj, type):
        module_name = obj.__module__
    else:
        module_name = getattr(type(obj), "__module__", "")
    if not module_name:
        return ""
    _, location = _package_root(module_name)
    h = hashlib.sha256()
    h.update(_source_digest(location).encode())
    for name, version in requirement_versions(distribution) if distribution else ():
        h.update(f"{name}=={version}\n".encode())
    return h.hexdigest()
