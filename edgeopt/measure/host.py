"""Facts about the host CPU that decide which kernels (and so which quantization settings) are fast.

Read from ``/proc/cpuinfo`` on Linux; elsewhere from numpy's runtime CPU dispatch table and
``platform``. Flag names are normalized to Linux's x86 spelling, plus ``neon``/``dotprod``/``i8mm``
for Arm, so a device profile written by hand and one detected here compare equal.
"""

from __future__ import annotations

import functools
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ISA_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "neon",
    "dotprod",
    "i8mm",
    "bf16",
)
"""Every flag ``cpu_isa`` can report, in the order it reports them."""

AMX_FLAGS = ("amx_int8", "amx_tile", "amx")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", *AMX_FLAGS)
ARM_FLAGS = ("neon", "asimd", "dotprod", "i8mm")
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")
"""Native bf16 dot products: AVX512_BF16 (``vdpbf16ps``), AMX-BF16 tiles, Arm's BF16 extension (``bfdot``)."""


def computes_bf16(isa: Iterable[str]) -> bool:
    """Whether a CPU with these ISA flags computes bf16 natively (rather than emulating it through fp32)."""
    return bool(set(isa) & set(BF16_FLAGS))


def int8_family(isa: Iterable[str]) -> str:
    """The integer dot-product family of a CPU with these ISA flags, which decides how int8 should be laid out.

    ``AMX`` (tile int8 units), ``VNNI`` (AVX-512 VNNI or AVX-VNNI: u8*s8 accumulates in int32), ``AVX2``
    (no VNNI: u8*s8 pairs saturate in int16), ``NEON`` (Arm: signed dot products), else ``CPU``.
    """
    flags = set(isa)
    if flags & set(AMX_FLAGS):
        return "AMX"
    if flags & set(VNNI_FLAGS):
        return "VNNI"
    if "avx2" in flags:
        return "AVX2"
    if flags & set(ARM_FLAGS):
        return "NEON"
    return "CPU"

_CPUINFO_ALIASES = {
    # Arm /proc/cpuinfo "Features" spelling -> ours
    "asimd": "neon",
    "asimddp": "dotprod",
}

_NUMPY_ALIASES = {
    "AVX2": "avx2",
    "FMA3": "fma",
    "F16C": "f16c",
    "AVX512F": "avx512f",
    "AVX512VNNI": "avx512_vnni",
    "AVX512BF16": "avx512_bf16",
    "NEON": "neon",
    "ASIMD": "neon",
    "ASIMDDP": "dotprod",
}

_DARWIN_SYSCTL = {
    "hw.optional.arm.FEAT_DotProd": "dotprod",
    "hw.optional.arm.FEAT_I8MM": "i8mm",
}


def _ordered(flags: set[str]) -> tuple[str, ...]:
    return tuple(f for f in ISA_FLAGS if f in flags)


def parse_cpuinfo(text: str) -> tuple[str, ...]:
    """Normalized ISA flags from the text of ``/proc/cpuinfo`` (first ``flags``/``Features`` line)."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            raw = {_CPUINFO_ALIASES.get(word, word) for word in value.lower().split()}
            return _ordered(raw)
    return ()


def _numpy_flags() -> set[str]:
    try:  # numpy's own dispatch table: the one portable source that needs no extra package
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # pragma: no cover - numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return set()
    return {ours for theirs, ours in _NUMPY_ALIASES.items() if features.get(theirs)}


def _sysctl(name: str) -> str:
    try:
        done = subprocess.run(["sysctl", "-n", name], capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


@functools.lru_cache(maxsize=1)
def cpu_isa() -> tuple[str, ...]:
    """The host's kernel-relevant ISA flags, a subset of ``ISA_FLAGS`` in that order."""
    cpuinfo = Path("/proc/cpuinfo")
    if sys.platform.startswith("linux") and cpuinfo.is_file():
        flags = parse_cpuinfo(cpuinfo.read_text(errors="replace"))
        if flags:
            return flags
    found = _numpy_flags()
    if platform.machine().lower() in ("arm64", "aarch64"):
        found.add("neon")
        if sys.platform == "darwin":
            found.update(ours for key, ours in _DARWIN_SYSCTL.items() if _sysctl(key) == "1")
    return _ordered(found)


def physical_cores() -> int:
    """Physical cores (what compute-bound kernels scale with); logical CPUs when psutil cannot tell."""
    try:
        import psutil

        count = psutil.cpu_count(logical=False)
    except ImportError:  # pragma: no cover - psutil is a core dependency
        count = None
    return count or os.cpu_count() or 1


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    """The CPU's marketing name (``AMD EPYC``, ``Apple M2``...), or the machine type when unknown."""
    cpuinfo = Path("/proc/cpuinfo")
    if sys.platform.startswith("linux") and cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            if sep and key.strip().lower() in ("model name", "hardware", "cpu model") and value.strip():
                return value.strip()
    if sys.platform == "darwin":
        name = _sysctl("machdep.cpu.brand_string")
        if name:
            return name
    return platform.processor() or platform.machine() or "unknown"


def host_state(sysfs: Path = Path("/sys/devices/system/cpu")) -> dict:
    """How busy and how clocked the host is right now, recorded with every profile: a timing taken on a
    loaded machine or a ``powersave`` governor reads slower than the same model on a quiet one.

    ``load_average``: 1, 5 and 15 minute load averages (``os.getloadavg``; None where it does not exist);
    ``cpus``: logical CPUs; ``cpu_governor``: the frequency governors of the CPUs' ``cpufreq`` policies
    (``/sys``, Linux), each with how many policies use it, e.g. ``{"performance": 2}``; None when unreadable
    (containers and VMs often expose no cpufreq).
    """
    try:
        load: list[float] | None = [round(x, 2) for x in os.getloadavg()]
    except (OSError, AttributeError):
        load = None
    governors: dict[str, int] = {}
    for path in sorted(sysfs.glob("cpufreq/policy*/scaling_governor")) or sorted(
            sysfs.glob("cpu[0-9]*/cpufreq/scaling_governor")):
        try:
            name = path.read_text().strip()
        except OSError:
            continue
        if name:
            governors[name] = governors.get(name, 0) + 1
    return {"load_average": load, "cpus": os.cpu_count(), "cpu_governor": governors or None}
