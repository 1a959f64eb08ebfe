"""The built-in plugin that offers the RAPL energy meter (``edgeopt.measure.energy.RaplMeter``) for CPU devices."""

from __future__ import annotations

from edgeopt.measure.energy import RaplMeter, rapl_available
from edgeopt.plugin import hookimpl
from edgeopt.types import DeviceProfile, EnergyMeter

EDGEOPT_HOOK_API = 1


@hookimpl
def edgeopt_energy_meters(device: DeviceProfile) -> list[EnergyMeter]:
    """A RAPL meter for CPU devices when the counters are readable; nothing otherwise."""
    if device.kind != "cpu" or not rapl_available():
        return []
    return [RaplMeter()]
