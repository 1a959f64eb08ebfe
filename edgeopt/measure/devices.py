"""Device profiles (``device_profiles/*.yaml``), host detection and roofline estimates.

A profile states what a device can do: peak operations per second by precision, memory bandwidth,
idle and active power, and for CPUs the ISA flags and core count. Every figure names its source in
``sources`` (datasheet, derivation, or "assumed"), and a profile that lacks one is refused on load.

Profiles are looked up, first match by name wins, in: the directories in ``EDGEOPT_DEVICE_PROFILES``
(``os.pathsep``-separated), the ``device_profiles`` folder installed inside the package (wheels), and
the source checkout's top-level ``device_profiles`` folder. ``host`` is not a file: it is built by
:func:`host_profile` from the running machine's detected ISA and cores.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import yaml

from edgeopt import settings
from edgeopt.errors import DeviceError
from edgeopt.types import DeviceProfile

SCHEMA_VERSION = 1
PROFILES_ENV = "EDGEOPT_DEVICE_PROFILES"
HOST = "host"
KINDS = ("cpu", "gpu", "npu", "tpu")
DEFAULTS_BY_KIND = {"cpu": HOST, "gpu": "nvidia-h100", "tpu": "coral-edgetpu-usb"}
"""Profile used for a device kind when the user names none."""

_REQUIRED = (
    "schema_version",
    "name",
    "kind",
    "description",
    "peak_ops",
    "memory_bandwidth",
    "idle_power_w",
    "active_power_w",
    "sources",
)
_OPTIONAL = ("isa", "cores")


def search_path() -> list[Path]:
    """Directories searched for ``*.yaml`` profiles, in priority order (existing ones only)."""
    dirs = settings.folders(PROFILES_ENV)
    package = Path(__file__).resolve().parents[1]
    dirs += [package / "device_profiles", package.parent / "device_profiles"]
    seen: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [s.resolve() for s in seen]:
            seen.append(d)
    return seen


def _profile_files() -> dict[str, Path]:
    """Profile name (file stem) -> file, the first directory in the search path winning."""
    found: dict[str, Path] = {}
    for directory in search_path():
        for path in sorted(directory.glob("*.yaml")):
            found.setdefault(path.stem, path)
    return found


def list_profiles(*, include_host: bool = False) -> list[DeviceProfile]:
    """Every profile on the search path, validated, sorted by name (plus ``host`` if asked)."""
    profiles = [load_profile(path) for path in _profile_files().values()]
    if include_host:
        profiles.append(host_profile())
    return sorted(profiles, key=lambda p: p.name)


def get_profile(name: str | os.PathLike[str]) -> DeviceProfile:
    """The profile called ``name``, ``host`` for this machine, or the profile in a ``.yaml`` file path."""
    text = os.fspath(name)
    if text == HOST:
        return host_profile()
    if text.endswith((".yaml", ".yml")) or os.sep in text:
        return load_profile(Path(text))
    files = _profile_files()
    if text not in files:
        known = ", ".join([HOST, *sorted(files)])
        raise DeviceError(
            f"unknown device profile {text!r} (known: {known})",
            hint=f"pick one of those, pass a path to a .yaml profile, or add a directory to {PROFILES_ENV}",
        )
    return load_profile(files[text])


def default_profile_for(kind: str) -> DeviceProfile:
    """The profile assumed for a device ``kind`` when none is named (``cpu`` is this host)."""
    if kind not in DEFAULTS_BY_KIND:
        raise DeviceError(
            f"no default device profile for kind {kind!r} (defaults exist for: {', '.join(DEFAULTS_BY_KIND)})",
            hint="name a device profile explicitly with --device",
        )
    return get_profile(DEFAULTS_BY_KIND[kind])


# --- loading and validation -----------------------------------------------------------------------


def _fail(path: Path, field: str, problem: str) -> DeviceError:
    return DeviceError(
        f"invalid device profile {path}: field {field!r} {problem}",
        hint=f"fix {path.name} (see device_profiles/*.yaml for the schema, version {SCHEMA_VERSION})",
    )


def _number(path: Path, field: str, value: Any, *, allow_zero: bool = False) -> float:
    """A positive (or non-negative) finite float; numeric strings like ``3.35e12`` are accepted."""
    if isinstance(value, bool):
        raise _fail(path, field, f"must be a number, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _fail(path, field, f"must be a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise _fail(path, field, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")
    return number


def _text(path: Path, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _fail(path, field, "must be a non-empty string")
    return value


def load_profile(path: Path) -> DeviceProfile:
    """Read and validate one profile file; every problem is a DeviceError naming the file and field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DeviceError(f"cannot read device profile {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        reason = " ".join(str(exc).split())
        raise DeviceError(f"device profile {path} is not valid YAML: {reason}", hint="fix the YAML syntax") from None
    if not isinstance(data, dict):
        raise _fail(path, "<top level>", "must be a mapping of fields")
    return _validate(path, data)


def _validate(path: Path, data: dict[str, Any]) -> DeviceProfile:
    for key in _REQUIRED:
        if key not in data:
            raise _fail(path, key, "is required")
    unknown = sorted(set(data) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise _fail(path, unknown[0], f"is not a known field (known: {', '.join(_REQUIRED + _OPTIONAL)})")
    if data["schema_version"] != SCHEMA_VERSION:
        raise _fail(path, "schema_version", f"must be {SCHEMA_VERSION}, got {data['schema_version']!r}")
    name = _text(path, "name", data["name"])
    if name != path.stem:
        raise _fail(path, "name", f"must match the file name {path.stem!r}, got {name!r}")
    if name == HOST:
        raise _fail(path, "name", f"{HOST!r} is reserved for the detected machine")
    kind = data["kind"]
    if kind not in KINDS:
        raise _fail(path, "kind", f"must be one of {', '.join(KINDS)}, got {kind!r}")
    description = _text(path, "description", data["description"])

    peak = data["peak_ops"]
    if not isinstance(peak, dict) or not peak:
        raise _fail(path, "peak_ops", "must map precisions (fp32, fp16, int8...) to ops/s")
    peak_ops = {str(k): _number(path, f"peak_ops.{k}", v) for k, v in peak.items()}
    figures: dict[str, Any] = {
        "memory_bandwidth": _number(path, "memory_bandwidth", data["memory_bandwidth"]),
        "idle_power_w": _number(path, "idle_power_w", data["idle_power_w"], allow_zero=True),
        "active_power_w": _number(path, "active_power_w", data["active_power_w"]),
    }
    if figures["active_power_w"] < figures["idle_power_w"]:
        raise _fail(path, "active_power_w", "must be >= idle_power_w")

    isa = data.get("isa", [])
    if not isinstance(isa, list) or not all(isinstance(f, str) and f for f in isa):
        raise _fail(path, "isa", "must be a list of ISA flag names")
    cores = data.get("cores")
    if cores is not None and (isinstance(cores, bool) or not isinstance(cores, int) or cores <= 0):
        raise _fail(path, "cores", f"must be a positive integer, got {cores!r}")
    if kind == "cpu" and (not isa or cores is None):
        raise _fail(path, "isa" if not isa else "cores", "is required for a cpu profile")

    sources = data["sources"]
    if not isinstance(sources, dict) or not all(isinstance(v, str) and v.strip() for v in sources.values()):
        raise _fail(path, "sources", "must map each figure's field name to a non-empty description")
    needed = [f"peak_ops.{k}" for k in peak_ops] + list(figures) + (["cores"] if cores is not None else [])
    for key in needed:
        if key not in sources:
            raise _fail(path, f"sources.{key}", "is missing: every figure must say where it comes from")
    return DeviceProfile(
        name=name,
        kind=kind,
        description=description,
        peak_ops=peak_ops,
        isa=tuple(isa),
        cores=cores,
        sources={str(k): str(v) for k, v in sources.items()},
        path=path,
        **figures,
    )


# --- host and roofline ----------------------------------------------------------------------------


def host_profile() -> DeviceProfile:
    """This machine as a profile named ``host``: figures from the closest shipped CPU profile.

    AMX -> ``x86-amx``; AVX512_BF16 -> ``x86-avx512-bf16``; AVX-512 VNNI -> ``x86-avx512-vnni``; NEON ->
    ``raspberry-pi-5``; otherwise ``x86-avx2-2core``
    (AVX-VNNI alone too: no shipped profile has 256-bit VNNI, so its int8 peak is understated). ISA and
    cores are the detected ones; peak ops are scaled by detected cores over the base profile's cores. Power
    and bandwidth are the base profile's, and ``sources`` says so.
    """
    from edgeopt.measure import host as hostinfo
    isa = tuple(hostinfo.cpu_isa())
    cores = hostinfo.physical_cores() or os.cpu_count() or 1
    family = hostinfo.int8_family(isa)
    if family == "AMX":
        base_name = "x86-amx"
    elif "avx512_bf16" in isa:
        base_name = "x86-avx512-bf16"
    elif "avx512_vnni" in isa:
        base_name = "x86-avx512-vnni"
    elif family == "NEON":
        base_name = "raspberry-pi-5"
    else:
        base_name = "x86-avx2-2core"
    base = get_profile(base_name)
    ratio = cores / (base.cores or cores)
    scaled = f"scaled from {base_name} by detected cores ({cores}/{base.cores})"
    sources = {
        key: f"{scaled}: {text}" if key.startswith("peak_ops.") else f"from {base_name}: {text}"
        for key, text in base.sources.items()
    }
    sources["isa"] = "detected on this machine (edgeopt.measure.host.cpu_isa)"
    sources["cores"] = "detected on this machine (edgeopt.measure.host.physical_cores)"
    cpu = hostinfo.cpu_name()
    return DeviceProfile(
        name=HOST,
        kind="cpu",
        description=f"this machine ({cpu}, {cores} cores), figures from {base_name}",
        peak_ops={k: v * ratio for k, v in base.peak_ops.items()},
        memory_bandwidth=base.memory_bandwidth,
        idle_power_w=base.idle_power_w,
        active_power_w=base.active_power_w,
        isa=isa,
        cores=cores,
        sources=sources,
        path=None,
    )


def peak_ops_for(device: DeviceProfile, precision: str) -> tuple[str, float]:
    """The precision actually used and its peak ops/s: exact match, then the base of ``int8-dynamic``
    style names, then fp32. Raises DeviceError when none of those is in the profile."""
    for candidate in (precision, precision.split("-")[0], "fp32"):
        if candidate in device.peak_ops:
            return candidate, float(device.peak_ops[candidate])
    raise DeviceError(
        f"device {device.name!r} has no peak ops for {precision!r} nor fp32 (it has: {', '.join(device.peak_ops)})",
        hint="use a precision the device supports, or add it to the profile's peak_ops",
    )


def roofline_seconds(flops: float, bytes_moved: float, device: DeviceProfile, precision: str) -> float:
    """Lower bound on run time: ``max(flops / peak_ops[precision], bytes_moved / memory_bandwidth)``.

    ``precision`` falls back as in :func:`peak_ops_for`. Negative inputs are a ValueError.
    """
    if flops < 0 or bytes_moved < 0:
        raise ValueError(f"flops and bytes_moved must be >= 0, got {flops}, {bytes_moved}")
    _, peak = peak_ops_for(device, precision)
    return max(flops / peak, bytes_moved / device.memory_bandwidth)
