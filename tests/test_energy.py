"""Energy: RAPL over a fake powercap tree (with wraparound), the hook, estimates, metering."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeopt.builtin import rapl
from edgeopt.errors import DeviceError
from edgeopt.measure import energy
from edgeopt.measure.devices import get_profile
from edgeopt.measure.energy import RaplMeter, estimate_energy, metered, rapl_available, rapl_domains
from edgeopt.plugin.manager import PluginManager
from edgeopt.types import EnergyMeter, EnergyReading

MAX_RANGE = 262_143_328_850


def make_zone(root: Path, zone: str, name: str, energy_uj: int, max_range: int = MAX_RANGE) -> Path:
    d = root / zone
    d.mkdir(parents=True)
    (d / "name").write_text(name + "\n")
    (d / "energy_uj").write_text(f"{energy_uj}\n")
    (d / "max_energy_range_uj").write_text(f"{max_range}\n")
    return d


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """Two packages plus the sub-zones and mmio duplicate a real Linux tree also shows."""
    root = tmp_path / "powercap"
    (root / "intel-rapl").mkdir(parents=True)  # the control type itself, no counters
    make_zone(root, "intel-rapl:0", "package-0", 1_000_000)
    make_zone(root, "intel-rapl:0:0", "core", 500_000)
    make_zone(root, "intel-rapl:1", "package-1", MAX_RANGE - 100)
    make_zone(root, "intel-rapl-mmio:0", "package-0", 7)
    return root


def set_energy(zone: Path, value: int) -> None:
    (zone / "energy_uj").write_text(f"{value}\n")


def test_only_package_zones_are_read(powercap: Path) -> None:
    assert [z.name for z in rapl_domains(powercap)] == ["intel-rapl:0", "intel-rapl:1"]
    assert rapl_available(powercap)


def test_rapl_meter_sums_packages_and_handles_wraparound(powercap: Path) -> None:
    meter = RaplMeter(root=powercap)
    assert isinstance(meter, EnergyMeter)
    meter.start()
    set_energy(powercap / "intel-rapl:0", 3_500_000)  # +2.5 J
    set_energy(powercap / "intel-rapl:1", 400)  # wrapped: +100 +400 µJ
    set_energy(powercap / "intel-rapl:0:0", 9_999_999_999)  # sub-zone, must not count
    reading = meter.stop()
    assert reading.method == "rapl"
    assert reading.joules == pytest.approx(2.5 + 500e-6)


def test_rapl_meter_stop_before_start_and_missing_tree(tmp_path: Path, powercap: Path) -> None:
    with pytest.raises(RuntimeError):
        RaplMeter(root=powercap).stop()
    with pytest.raises(DeviceError):
        RaplMeter(root=tmp_path / "nothing")


def test_rapl_unavailable_when_counter_unreadable(tmp_path: Path) -> None:
    root = tmp_path / "powercap"
    zone = make_zone(root, "intel-rapl:0", "package-0", 5)
    (zone / "energy_uj").unlink()
    (zone / "energy_uj").mkdir()  # reading it fails with an OSError, even as root
    assert rapl_domains(root) and not rapl_available(root)
    assert not rapl_available(tmp_path / "absent")


def test_hook_gives_rapl_for_cpu_only_when_readable(powercap: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, gpu = get_profile("x86-avx2-2core"), get_profile("nvidia-h100")
    monkeypatch.setattr(energy, "RAPL_ROOT", powercap)
    meters = rapl.edgeopt_energy_meters(cpu)
    assert len(meters) == 1 and isinstance(meters[0], RaplMeter) and meters[0].root == powercap
    assert rapl.edgeopt_energy_meters(gpu) == []
    monkeypatch.setattr(energy, "RAPL_ROOT", powercap.parent / "absent")
    assert rapl.edgeopt_energy_meters(cpu) == []


def test_hook_on_this_machine_through_the_plugin_manager() -> None:
    pm = PluginManager()
    pm.register(rapl, "edgeopt.builtin.rapl")
    status = {s.name: s for s in pm.plugins()}["edgeopt.builtin.rapl"]
    assert status.status == "ok" and "edgeopt_energy_meters" in status.hooks
    meters = pm.energy_meters(get_profile("x86-avx2-2core"))
    if rapl_available():
        assert [m.method for m in meters] == ["rapl"]
    else:  # this build machine has no RAPL
        assert meters == []


def test_estimate_is_power_times_latency_and_labelled() -> None:
    pi = get_profile("raspberry-pi-5")  # 2.7 W idle, 7 W active
    full = estimate_energy(0.5, pi)
    assert full.joules == pytest.approx(3.5)
    assert full.method == "estimated:device-profile(power x latency)"
    assert estimate_energy(2.0, pi, utilization=0.0).joules == pytest.approx(5.4)
    assert estimate_energy(1.0, pi, utilization=0.5).joules == pytest.approx(2.7 + 4.3 / 2)
    with pytest.raises(ValueError):
        estimate_energy(1.0, pi, utilization=1.5)
    with pytest.raises(ValueError):
        estimate_energy(-1.0, pi)


class CountingMeter:
    def __init__(self, name: str, joules: float) -> None:
        self.name, self.method, self.joules = name, name, joules
        self.events: list[str] = []

    def start(self) -> None:
        self.events.append("start")

    def stop(self) -> EnergyReading:
        self.events.append("stop")
        return EnergyReading(self.joules, self.method)


def test_metered_reads_every_meter_around_the_block() -> None:
    a, b = CountingMeter("rapl", 2.0), CountingMeter("nvml", 0.5)
    with metered([a, b]) as result:
        assert result.readings == []
        a.events.append("body")
    assert a.events == ["start", "body", "stop"] and b.events == ["start", "stop"]
    assert [r.method for r in result.readings] == ["rapl", "nvml"]
    assert result.joules == pytest.approx(2.5) and result.method == "rapl+nvml"


def test_metered_stops_meters_and_propagates_errors() -> None:
    a = CountingMeter("rapl", 1.0)
    with pytest.raises(KeyError), metered([a]) as result:
        raise KeyError("boom")
    assert a.events == ["start", "stop"] and result.readings == []
    with metered([]) as empty:
        pass
    assert empty.readings == [] and empty.joules == 0
