"""Every ``EDGEOPT_*`` environment variable the core reads, listed in one place, and edgeopt's folders.

``SETTINGS`` names each variable the core reads, what it means, and what applies when it is unset; the
modules that read them (``plugins``, ``isolation``, ``graph_safety``, ``hardware``, ``registry``,
``search_cache``, the CLI) read them when called, never at import, so a test or a job can change the
environment between calls. ``docs/configuration.md`` documents these and the plugins' own variables in one
table; a test keeps the two in step with the source.

Folders follow each platform's conventions through ``platformdirs``:

- :func:`cache_dir`: what edgeopt can rebuild. ``$EDGEOPT_CACHE_DIR``, else the user cache folder
  (``~/.cache/edgeopt`` or ``$XDG_CACHE_HOME/edgeopt`` on Linux, ``~/Library/Caches/edgeopt`` on macOS,
  ``%LOCALAPPDATA%\\edgeopt\\Cache`` on Windows). Each user of it owns one subfolder: the search cache
  ``search/``, the CUDA plugin's TensorRT engines ``tensorrt/``, the Edge TPU plugin's converter
  toolchains ``toolchains/``.
- :func:`data_dir`: what edgeopt keeps. ``$EDGEOPT_DATA_DIR``, else the user data folder
  (``~/.local/share/edgeopt`` or ``$XDG_DATA_HOME/edgeopt``, ``~/Library/Application Support/edgeopt``,
  ``%LOCALAPPDATA%\\edgeopt``): the deployment registry's ``registry.db`` unless ``EDGEOPT_REGISTRY`` names
  another file.

One variable, one meaning: ``EDGEOPT_CACHE_DIR`` is always the root of every cache (never the search cache
itself, never a plugin's folder). Plugins take their folders from ``edgeopt.plugin.manager.cache_dir("<name>")``.
Neither function creates the folder.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from edgeopt.errors import ResourceLimitError

__all__ = [
    "APP", "CACHE_DIR_ENV", "DATA_DIR_ENV", "SETTINGS", "Setting", "cache_dir", "data_dir", "parse_size", "setting",
]

APP = "edgeopt"
CACHE_DIR_ENV = "EDGEOPT_CACHE_DIR"
DATA_DIR_ENV = "EDGEOPT_DATA_DIR"


@dataclass(frozen=True)
class Setting:
    """One environment variable the core reads."""

    name: str
    kind: str
    """``flag`` (``1``/``0``), ``seconds``, ``bytes`` (a number or ``2GiB``-style size), ``MiB``, ``folder``,
    ``path``, ``names`` (comma-separated) or ``folders`` (``os.pathsep``-separated)."""
    unset: str
    """What applies when the variable is unset, in words."""
    meaning: str


SETTINGS: tuple[Setting, ...] = (
    Setting("EDGEOPT_DEBUG", "flag", "one `error[E…]` line, no traceback",
            "`1`: show the traceback of an error, not just its `error[E…]` line (`--debug`)"),
    Setting("EDGEOPT_LOG_LEVEL", "level", "`-v` decides (warnings only without it)",
            "level of the edgeopt logger: debug, info, warning or error (`--log-level`)"),
    Setting("EDGEOPT_PLUGINS", "names", "every installed plugin",
            "load only these entry-point plugins (comma-separated names)"),
    Setting("EDGEOPT_BLOCKED_PLUGINS", "names", "none blocked", "never load these entry-point plugins"),
    Setting("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD", "flag", "entry points loaded",
            "any non-empty value: load no entry-point plugin (built-in importers only)"),
    Setting("EDGEOPT_HOOK_TIMEOUT_S", "seconds", "60",
            "time limit of one discovery hook call; a plugin past it is quarantined; `0`: no limit"),
    Setting("EDGEOPT_ISOLATION", "flag", "on",
            "`0`/`off`: run model checks and candidate builds in this process (for debuggers; no memory limit)"),
    Setting("EDGEOPT_ISOLATION_TIMEOUT_S", "seconds", "600", "time limit of one isolated call or build"),
    Setting("EDGEOPT_WORKER_DATA_LIMIT", "bytes", "(set by edgeopt)",
            "internal: the address-space backstop edgeopt passes to its own worker processes; do not set"),
    Setting("EDGEOPT_MAX_TENSOR_BYTES", "bytes", "2 GiB",
            "largest single tensor a model may declare (when the SDK call leaves the default)"),
    Setting("EDGEOPT_MAX_MODEL_BYTES", "bytes", "16 GiB", "cap on all external data one model may read"),
    Setting("EDGEOPT_DEVICE_PROFILES", "folders", "the built-in profiles only",
            "extra folders of device profile `*.yaml` files (`os.pathsep`-separated), searched first"),
    Setting(CACHE_DIR_ENV, "folder", "the platform's user cache folder", "root of every cache (see Folders)"),
    Setting("EDGEOPT_CACHE_MAX_MB", "MiB", "2048",
            "size bound of the search cache (least recently used entries evicted)"),
    Setting(DATA_DIR_ENV, "folder", "the platform's user data folder", "root of what edgeopt keeps (see Folders)"),
    Setting("EDGEOPT_REGISTRY", "path", "`registry.db` in the data folder",
            "the registry database file (or a folder to hold `registry.db`); `off`: no registry"),
)
_BY_NAME = {s.name: s for s in SETTINGS}


def setting(name: str) -> Setting:
    """The core setting called ``name``; ``KeyError`` naming the list when there is none."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"{name} is not an edgeopt core setting (see edgeopt.settings.SETTINGS)") from None


def _root(env: str, platform_dir: str) -> Path:
    raw = os.environ.get(env, "").strip()
    if raw:
        return Path(raw).expanduser()
    import platformdirs  # imported when asked: `import edgeopt.settings` stays cheap

    return Path(getattr(platformdirs, platform_dir)(APP, appauthor=False))


def cache_dir(sub: str = "") -> Path:
    """``$EDGEOPT_CACHE_DIR/sub``, else the platform's user cache folder for edgeopt ``/sub``; not created.

    ``sub`` is one relative folder name a caller owns (``search``, ``tensorrt``, ``toolchains``)."""
    return _sub(_root(CACHE_DIR_ENV, "user_cache_dir"), sub)


def data_dir(sub: str = "") -> Path:
    """``$EDGEOPT_DATA_DIR/sub``, else the platform's user data folder for edgeopt ``/sub``; not created."""
    return _sub(_root(DATA_DIR_ENV, "user_data_dir"), sub)


def _sub(base: Path, sub: str) -> Path:
    if not sub:
        return base
    part = Path(sub)
    if part.is_absolute() or ".." in part.parts:
        raise ValueError(f"{sub!r} is not a relative folder name inside edgeopt's folder")
    return base / part


_SIZE_UNITS = {
    "": 1, "b": 1, "k": 1024, "kib": 1024, "kb": 1000, "m": 1024**2, "mib": 1024**2, "mb": 1000**2,
    "g": 1024**3, "gib": 1024**3, "gb": 1000**3, "t": 1024**4, "tib": 1024**4, "tb": 1000**4,
}  # fmt: skip


def parse_size(text: str, *, name: str) -> int:
    """``"4294967296"``, ``"4GiB"``, ``"512M"`` (binary) or ``"3GB"`` (decimal) as bytes.

    Raises ResourceLimitError naming ``name`` when ``text`` is not such a size.
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    unit = _SIZE_UNITS.get(match.group(2).lower()) if match else None
    if match is None or unit is None or float(match.group(1)) * unit < 1:
        raise ResourceLimitError(
            f"{name}={text!r} is not a size",
            hint=f"set {name} to a number of bytes such as 4294967296, or 4GiB / 512MiB",
        )
    return int(float(match.group(1)) * unit)
