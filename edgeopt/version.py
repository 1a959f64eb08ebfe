"""The installed edgeopt's version (``0.0.0`` when running from a source tree that was never installed)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgeopt")
except PackageNotFoundError:
    __version__ = "0.0.0"
