"""The NVML meter and GPU facts, against a fake ``pynvml`` module injected through ``sys.modules``."""

from __future__ import annotations

import sys
import types

import pytest
from cuda_models import gpu_profile
from edgeopt.plugin import DeviceError, EnergyMeter, metered
from edgeopt.testing import PluginManager

import edgeopt_cuda
from edgeopt_cuda.nvml import METHOD, NvmlMeter, device_handle, facts_note, gpu_facts, nvml_index, nvml_meters


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801 - pynvml's own naming
    pass


def fake_pynvml(
    *, energy: list[int] | None = None, init_error: Exception | None = None, energy_error: Exception | None = None
) -> types.ModuleType:
    """A ``pynvml`` stand-in: the energy counter returns ``energy`` values in order (mJ), then repeats the last."""
    readings = list(energy or [1000])
    nvml = types.ModuleType("pynvml")
    nvml.NVMLError = NVMLError
    nvml.NVML_CLOCK_SM, nvml.NVML_CLOCK_MEM, nvml.NVML_TEMPERATURE_GPU = 1, 2, 0
    nvml.calls = []

    def init() -> None:
        if init_error is not None:
            raise init_error

    def energy_read(handle: str) -> int:
        nvml.calls.append(handle)
        if energy_error is not None:
            raise energy_error
        return readings.pop(0) if len(readings) > 1 else readings[0]

    def unsupported(*_: object) -> int:
        raise NVMLError_NotSupported("Not Supported")

    nvml.nvmlInit = init
    nvml.nvmlDeviceGetHandleByIndex = lambda i: f"index:{i}"
    nvml.nvmlDeviceGetHandleByUUID = lambda u: f"uuid:{u}"
    nvml.nvmlDeviceGetName = lambda h: b"NVIDIA H100 80GB HBM3"
    nvml.nvmlDeviceGetUUID = lambda h: "GPU-1234"
    nvml.nvmlDeviceGetTotalEnergyConsumption = energy_read
    nvml.nvmlSystemGetDriverVersion = lambda: "580.65.06"
    nvml.nvmlSystemGetCudaDriverVersion = lambda: 13000
    nvml.nvmlDeviceGetPowerManagementLimit = lambda h: 700000
    nvml.nvmlDeviceGetEnforcedPowerLimit = lambda h: 650000
    nvml.nvmlDeviceGetPowerManagementDefaultLimit = unsupported
    nvml.nvmlDeviceGetClockInfo = lambda h, kind: {1: 1980, 2: 2619}[kind]
    nvml.nvmlDeviceGetMaxClockInfo = lambda h, kind: {1: 1980, 2: 2619}[kind]
    nvml.nvmlDeviceGetTemperature = lambda h, kind: 41
    nvml.nvmlDeviceGetPerformanceState = lambda h: 0
    return nvml


@pytest.fixture(autouse=True)
def _no_cuda_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_meter_turns_the_millijoule_counter_into_joules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(energy=[5_000, 10_000, 13_500, 13_500, 20_250]))
    meter = NvmlMeter()  # the construction reads the counter once (5 J): it checks the GPU supports it
    assert isinstance(meter, EnergyMeter)
    assert (meter.name, meter.method, meter.gpu) == ("nvml:0", "nvml", "NVIDIA H100 80GB HBM3")
    meter.start()
    reading = meter.stop()
    assert reading.joules == pytest.approx(3.5) and reading.method == METHOD
    meter.start()
    assert meter.stop().joules == pytest.approx(6.75)


def test_meter_works_inside_the_cores_metered_block(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_pynvml(energy=[0, 100_000, 142_000])
    meter = NvmlMeter(nvml=nvml)
    with metered([meter]) as held:
        pass
    assert held.joules == pytest.approx(42.0) and held.method == "nvml"


def test_counter_going_backwards_is_an_error_not_a_negative_reading() -> None:
    meter = NvmlMeter(nvml=fake_pynvml(energy=[0, 9_000, 1_000]))
    meter.start()
    with pytest.raises(DeviceError, match="went backwards"):
        meter.stop()


def test_stop_before_start_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="before start"):
        NvmlMeter(nvml=fake_pynvml()).stop()


@pytest.mark.parametrize(
    "nvml",
    [
        fake_pynvml(init_error=NVMLError("NVML Shared Library Not Found")),
        fake_pynvml(energy_error=NVMLError_NotSupported("Not Supported")),  # pre-Volta GPUs
    ],
    ids=["no-driver", "not-supported"],
)
def test_unavailable_nvml_means_no_meter(nvml: types.ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DeviceError, match="NVML energy counter unavailable"):
        NvmlMeter(nvml=nvml)
    assert nvml_meters("gpu", nvml=nvml) == []
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    assert edgeopt_cuda.edgeopt_energy_meters(gpu_profile()) == []


def test_missing_nvidia_ml_py_means_no_meter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # `import pynvml` raises ImportError
    with pytest.raises(DeviceError, match="nvidia-ml-py is not installed"):
        NvmlMeter()
    assert nvml_meters("gpu") == []
    assert gpu_facts() is None


def test_only_gpu_profiles_get_the_meter(monkeypatch: pytest.MonkeyPatch) -> None:
    nvml = fake_pynvml()
    assert nvml_meters("cpu", nvml=nvml) == [] and nvml.calls == []
    assert [m.method for m in nvml_meters("gpu", nvml=nvml)] == ["nvml"]


def test_hook_through_the_plugin_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(energy=[1, 2, 3]))
    pm = PluginManager()
    pm.register(edgeopt_cuda, "cuda")
    meters = pm.energy_meters(gpu_profile())
    assert [(m.name, m.method) for m in meters] == [("nvml:0", "nvml")]


def test_cuda_visible_devices_maps_to_the_nvml_device() -> None:
    assert nvml_index(0, env={}) == 0
    assert nvml_index(0, env={"CUDA_VISIBLE_DEVICES": "2,3"}) == 2
    assert nvml_index(1, env={"CUDA_VISIBLE_DEVICES": "2,3"}) == 3
    assert nvml_index(0, env={"CUDA_VISIBLE_DEVICES": "GPU-8f2c"}) == "GPU-8f2c"
    with pytest.raises(DeviceError, match="not among CUDA_VISIBLE_DEVICES"):
        nvml_index(1, env={"CUDA_VISIBLE_DEVICES": "0"})
    nvml = fake_pynvml()
    assert device_handle(nvml, 0, env={"CUDA_VISIBLE_DEVICES": "MIG-aa11"}) == "uuid:MIG-aa11"
    assert device_handle(nvml, 0, env={"CUDA_VISIBLE_DEVICES": "1"}) == "index:1"


def test_gpu_facts_record_power_limit_and_clocks_and_skip_what_is_unsupported() -> None:
    facts = gpu_facts(nvml=fake_pynvml())
    assert facts is not None
    assert facts["power_limit_w"] == 700.0 and facts["enforced_power_limit_w"] == 650.0
    assert "default_power_limit_w" not in facts  # NVML said "not supported"
    assert (facts["sm_clock_mhz"], facts["mem_clock_mhz"], facts["cuda_driver"]) == (1980, 2619, "13.0")
    assert facts_note(facts) == (
        "GPU 0: NVIDIA H100 80GB HBM3, driver 580.65.06 (CUDA 13.0), power limit 700 W (enforced 650 W), "
        "SM clock 1980/1980 MHz, memory clock 2619/2619 MHz, 41 C, P0"
    )
    assert gpu_facts(nvml=fake_pynvml(init_error=NVMLError("no driver"))) is None
