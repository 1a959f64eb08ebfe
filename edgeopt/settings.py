"""Every ``EDGEOPT_*`` environment variable the core reads, listed in one place, read in one place, and
edgeopt's folders.

``SETTINGS`` names each variable the core reads, its kind, what applies when it is unset and what it means.
The core reads them only through the typed readers here, one per kind (:func:`flag`, :func:`seconds`,
:func:`size`, :func:`mebibytes`, :func:`names`, :func:`folders`, :func:`level`, :func:`text`). A reader
reads the variable when called, never at import, so a test or a job can change the environment between
calls; it refuses a name that is not in ``SETTINGS`` (``KeyError``), so a new variable cannot skip the
table, and raises the setting's own error class (``Setting.error``) for a value it cannot read.
:func:`current` gives each setting with its raw value and :func:`problem` says what is wrong with one, for
``edgeopt plugins doctor``. ``docs/configuration.md`` documents these and the plugins' own variables in one
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
itself, never a plugin's folder). Plugins take their folders from their facade, ``edgeopt.plugin.cache_dir("<name>")``.
Neither function creates the folder.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgeopt.errors import CommandLineError, EdgeoptError, PluginError, ResourceLimitError

__all__ = [
    "APP", "CACHE_DIR_ENV", "DATA_DIR_ENV", "LOG_LEVELS", "SETTINGS", "Setting", "cache_dir", "current",
    "data_dir", "flag", "folders", "level", "mebibytes", "names", "parse_size", "problem", "seconds", "setting",
    "size", "text",
]

APP = "edgeopt"
CACHE_DIR_ENV = "EDGEOPT_CACHE_DIR"
DATA_DIR_ENV = "EDGEOPT_DATA_DIR"
LOG_LEVELS = ("debug", "info", "warning", "error")
OFF_WORDS = ("0", "off", "false", "no")
"""Values that turn a ``flag`` off (case-insensitive); any other non-blank value turns it on."""


@dataclass(frozen=True)
class Setting:
    """One environment variable the core reads."""

    name: str
    kind: str
    """``flag`` (``1``/``0``), ``seconds``, ``bytes`` (a number or ``2GiB``-style size), ``MiB``, ``folder``,
    ``path``, ``level``, ``names`` (comma-separated) or ``folders`` (``os.pathsep``-separated)."""
    unset: str
    """What applies when the variable is unset, in words."""
    meaning: str
    error: type[EdgeoptError] = CommandLineError
    """What a reader raises for a value it cannot read (the class the reading module has always raised)."""


SETTINGS: tuple[Setting, ...] = (
    Setting("EDGEOPT_DEBUG", "flag", "one `error[E…]` line, no traceback",
            "`1`: show the traceback of an error, not just its `error[E…]` line (`--debug`)"),
    Setting("EDGEOPT_LOG_LEVEL", "level", "`-v` decides (warnings only without it)",
            "level of the edgeopt logger: debug, info, warning or error (`--log-level`)"),
    Setting("EDGEOPT_PLUGINS", "names", "every installed plugin",
            "load only these entry-point plugins (comma-separated names)"),
    Setting("EDGEOPT_BLOCKED_PLUGINS", "names", "none blocked", "never load these entry-point plugins"),
    Setting("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD", "flag", "entry points loaded",
            "`1`: load no entry-point plugin (built-in importers only)"),
    Setting("EDGEOPT_HOOK_TIMEOUT_S", "seconds", "60",
            "time limit of one discovery hook call; a plugin past it is quarantined; `0`: no limit", PluginError),
    Setting("EDGEOPT_ISOLATION", "flag", "on",
            "`0`/`off`: run model checks and candidate builds in this process (for debuggers; no memory limit)"),
    Setting("EDGEOPT_ISOLATION_TIMEOUT_S", "seconds", "600", "time limit of one isolated call or build"),
    Setting("EDGEOPT_WORKER_DATA_LIMIT", "bytes", "(set by edgeopt)",
            "internal: the address-space backstop edgeopt passes to its own worker processes; do not set",
            ResourceLimitError),
    Setting("EDGEOPT_MAX_TENSOR_BYTES", "bytes", "2 GiB",
            "largest single tensor a model may declare (when the SDK call leaves the default)", ResourceLimitError),
    Setting("EDGEOPT_MAX_MODEL_BYTES", "bytes", "16 GiB", "cap on all external data one model may read",
            ResourceLimitError),
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


def _raw(name: str, *kinds: str) -> str | None:
    """The variable as set (None when unset), after checking ``name`` is a setting of one of ``kinds``."""
    found = setting(name)
    if kinds and found.kind not in kinds:
        raise TypeError(f"{name} is a {found.kind} setting, not {' or '.join(kinds)}")
    return os.environ.get(name)


def _stripped(name: str, *kinds: str) -> str | None:
    raw = (_raw(name, *kinds) or "").strip()
    return raw or None


def _not_a(name: str, raw: str, what: str, hint: str) -> EdgeoptError:
    return setting(name).error(f"{name}={raw!r} is not {what}", hint=hint)


# -- readers, one per kind ---------------------------------------------------------------------------------


def text(name: str) -> str | None:
    """The value with surrounding blanks removed; None when unset or blank. Any kind (``folder``, ``path``)."""
    return _stripped(name)


def flag(name: str, default: bool = False) -> bool:
    """``default`` when unset or blank; False for ``0``/``off``/``false``/``no`` (any case); True otherwise."""
    raw = _stripped(name, "flag")
    return default if raw is None else raw.lower() not in OFF_WORDS


def seconds(name: str, default: float) -> float | None:
    """``default`` when unset or blank; None for ``0`` (the caller says what 0 means); else the number.

    Raises the setting's error when the value is not a finite number ≥ 0."""
    raw = _stripped(name, "seconds")
    if raw is None:
        return default
    value = _number(raw)
    if not math.isfinite(value) or value < 0:
        zero = " (0: no limit)" if "`0`: no limit" in setting(name).meaning else ""
        raise _not_a(name, raw, "a number of seconds",
                     f"set it to a positive number of seconds{zero}, or unset it for {setting(name).unset}")
    return value or None


def size(name: str) -> int | None:
    """Bytes (``4294967296``, ``4GiB``, ``512M``, ``3GB``: see :func:`parse_size`); None when unset or blank."""
    raw = _stripped(name, "bytes")
    return None if raw is None else parse_size(raw, name=name)


def mebibytes(name: str) -> float | None:
    """A number ≥ 0 of MiB (fractions allowed); None when unset or blank; the setting's error otherwise."""
    raw = _stripped(name, "MiB")
    if raw is None:
        return None
    value = _number(raw)
    if not math.isfinite(value) or value < 0:
        raise _not_a(name, raw, "a number of MiB", f"set it to a number of MiB, or unset it for {setting(name).unset}")
    return value


def names(name: str) -> set[str] | None:
    """The comma-separated names, blanks dropped; None when unset (set but empty: the empty set)."""
    raw = _raw(name, "names")
    return None if raw is None else {item.strip() for item in raw.split(",") if item.strip()}


def folders(name: str) -> list[Path]:
    """The ``os.pathsep``-separated folders in order, blank entries dropped; [] when unset. Not checked to exist."""
    raw = _raw(name, "folders") or ""
    return [Path(p) for p in raw.split(os.pathsep) if p.strip()]


def level(name: str) -> str | None:
    """A logger level, lower-case, one of ``LOG_LEVELS``; None when unset or blank; the setting's error otherwise."""
    raw = _stripped(name, "level")
    if raw is None:
        return None
    if raw.lower() not in LOG_LEVELS:
        raise _not_a(name, raw, f"one of {', '.join(LOG_LEVELS)}", "set it to one of those, or unset it")
    return raw.lower()


def _number(raw: str) -> float:
    try:
        return float(raw)
    except ValueError:
        return math.nan


_READERS: dict[str, Callable[[str], object]] = {
    "flag": flag, "seconds": lambda n: seconds(n, 0.0), "bytes": size, "MiB": mebibytes, "names": names,
    "folders": folders, "level": level, "folder": text, "path": text,
}


def current() -> list[tuple[Setting, str | None]]:
    """Every setting with its raw value as set in the environment now, None when unset (for display)."""
    return [(s, os.environ.get(s.name)) for s in SETTINGS]


def problem(name: str) -> EdgeoptError | None:
    """The error reading setting ``name`` now would raise (its message and hint), None when it reads fine."""
    try:
        _READERS[setting(name).kind](name)
    except EdgeoptError as exc:
        return exc
    return None


# -- folders -----------------------------------------------------------------------------------------------


def _root(env: str, platform_dir: str) -> Path:
    raw = text(env)
    if raw is not None:
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
