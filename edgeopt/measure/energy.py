"""Energy: the RAPL meter (offered by the built-in plugin ``edgeopt.builtin.rapl``), device-profile estimates,
and metering a region.

Measured energy comes only from counters that really measure (here RAPL package domains; other
plugins add NVML or vendor tools through ``edgeopt_energy_meters``). When no meter works, callers
use :func:`estimate_energy`, whose method label says it is an estimate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from edgeopt.errors import DeviceError
from edgeopt.types import DeviceProfile, EnergyMeter, EnergyReading

RAPL_ROOT = Path("/sys/class/powercap")
"""Where Linux exposes powercap zones; package zones are ``intel-rapl:<n>`` (also on AMD)."""

ESTIMATE_METHOD = "estimated:device-profile(power x latency)"

_PACKAGE_ZONE = re.compile(r"intel-rapl:\d+")


def _read_int(path: Path) -> int:
    return int(path.read_text(encoding="ascii").strip())


def rapl_domains(root: Path | None = None) -> list[Path]:
    """Package-level RAPL zone directories under ``root`` (sub-zones like core/dram are excluded)."""
    root = RAPL_ROOT if root is None else root
    if not root.is_dir():
        return []
    zones = []
    for zone in sorted(root.iterdir()):
        if not _PACKAGE_ZONE.fullmatch(zone.name):
            continue
        try:
            name = (zone / "name").read_text(encoding="ascii").strip()
        except OSError:
            continue
        if name.startswith("package"):
            zones.append(zone)
    return zones


def rapl_available(root: Path | None = None) -> bool:
    """True when at least one package zone exists and all of them can be read right now."""
    zones = rapl_domains(root)
    if not zones:
        return False
    try:
        for zone in zones:
            _read_int(zone / "energy_uj")
            _read_int(zone / "max_energy_range_uj")
    except (OSError, ValueError):  # energy_uj is root-only on most kernels since 5.10
        return False
    return True


class RaplMeter:
    """Sum of RAPL package energy between ``start()`` and ``stop()``, counter wraparound handled.

    ``root`` defaults to ``/sys/class/powercap`` (injectable for tests). Each zone's counter counts
    up to ``max_energy_range_uj`` and restarts at 0; one wrap per zone per region is corrected.
    """

    name = "rapl"
    method = "rapl"

    def __init__(self, root: Path | None = None) -> None:
        self.root = RAPL_ROOT if root is None else Path(root)
        self.zones = rapl_domains(self.root)
        if not self.zones:
            raise DeviceError(
                f"no RAPL package zones under {self.root}",
                hint="RAPL needs Linux on x86 with the intel_rapl driver; energy will be estimated instead",
            )
        try:
            self.ranges = [_read_int(zone / "max_energy_range_uj") for zone in self.zones]
        except (OSError, ValueError) as exc:
            raise DeviceError(f"cannot read RAPL max_energy_range_uj under {self.root}: {exc}") from None
        self._start: list[int] | None = None

    def _read(self) -> list[int]:
        try:
            return [_read_int(zone / "energy_uj") for zone in self.zones]
        except OSError as exc:
            raise DeviceError(
                f"cannot read RAPL counter: {exc}",
                hint="reading energy_uj usually needs root (or a udev rule granting read access)",
            ) from None

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> EnergyReading:
        if self._start is None:
            raise RuntimeError("RaplMeter.stop() called before start()")
        end = self._read()
        total_uj = 0
        for wrap, before, after in zip(self.ranges, self._start, end, strict=True):
            delta = after - before
            if delta < 0:  # the counter wrapped around once
                delta += wrap
            total_uj += delta
        self._start = None
        return EnergyReading(joules=total_uj / 1e6, method=self.method)


def estimate_energy(latency_s: float, device: DeviceProfile, *, utilization: float = 1.0) -> EnergyReading:
    """Energy of ``latency_s`` seconds of work: ``(idle + (active - idle) * utilization) * latency``.

    ``utilization`` is the fraction of the device's active-over-idle power drawn (0..1).
    """
    if latency_s < 0:
        raise ValueError(f"latency_s must be >= 0, got {latency_s}")
    if not 0.0 <= utilization <= 1.0:
        raise ValueError(f"utilization must be within [0, 1], got {utilization}")
    watts = device.idle_power_w + (device.active_power_w - device.idle_power_w) * utilization
    return EnergyReading(joules=watts * latency_s, method=ESTIMATE_METHOD)


@dataclass
class Metered:
    """Filled when a :func:`metered` block ends: one reading per meter, in the meters' order."""

    readings: list[EnergyReading] = field(default_factory=list)

    @property
    def joules(self) -> float:
        """Total over all meters (they measure different domains, e.g. CPU package and GPU)."""
        return sum(r.joules for r in self.readings)

    @property
    def method(self) -> str:
        """The meters' methods joined with ``+``, e.g. ``rapl+nvml``."""
        return "+".join(r.method for r in self.readings)


@contextmanager
def metered(meters: Sequence[EnergyMeter]) -> Iterator[Metered]:
    """Start every meter, run the block, stop them (also when it raises) and fill the yielded holder.

    Readings are recorded only when the block completes; an exception from the block propagates.
    """
    holder = Metered()
    started: list[EnergyMeter] = []
    try:
        for meter in meters:
            meter.start()
            started.append(meter)
        yield holder
    except BaseException:
        for meter in started:
            meter.stop()
        raise
    holder.readings = [meter.stop() for meter in started]
