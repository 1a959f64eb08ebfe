"""GPU energy and facts from NVML (``nvidia-ml-py``, imported as ``pynvml``).

``NvmlMeter`` reads ``nvmlDeviceGetTotalEnergyConsumption`` — millijoules the board has used since the
driver loaded, a 64-bit counter — when the core's harness starts and stops a timed region; the
difference is the board's energy in that region (method ``nvml``). It covers the whole GPU board
(under MIG: the whole GPU, not one instance) and nothing of the host CPU. NVML refreshes the counter
every few tens of milliseconds, so regions much shorter than a second read coarse values; the harness
times for ``budget_s`` (2 s by default). Volta and newer data-centre/desktop GPUs support it; Jetson
has no NVML and older GPUs answer "not supported": then no meter is offered.

``gpu_facts`` records what shapes the measurement — power limit, clocks, temperature, performance
state — so it can go into ``Compiled.notes`` next to the figures.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import ModuleType
from typing import Any

from edgeopt.plugin import DeviceError, EnergyReading

METHOD = "nvml"


def _module(nvml: ModuleType | None) -> ModuleType:
    if nvml is not None:
        return nvml
    import pynvml

    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def nvml_index(cuda_index: int = 0, *, env: Mapping[str, str] | None = None) -> int | str:
    """The NVML device (index, or UUID string) behind CUDA device ``cuda_index``.

    NVML numbers GPUs in PCI bus order and ignores ``CUDA_VISIBLE_DEVICES``; CUDA numbers the visible
    ones. An entry of ``CUDA_VISIBLE_DEVICES`` that is a UUID (``GPU-...``/``MIG-...``) is returned as is,
    a number is taken as the NVML index (exact with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``).
    """
    env = os.environ if env is None else env
    visible = [v.strip() for v in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    if not visible:
        return cuda_index
    if cuda_index >= len(visible):
        raise DeviceError(
            f"CUDA device {cuda_index} is not among CUDA_VISIBLE_DEVICES={env['CUDA_VISIBLE_DEVICES']}",
            hint="set CUDA_VISIBLE_DEVICES to include the GPU to measure",
        )
    entry = visible[cuda_index]
    return int(entry) if entry.isdigit() else entry


def device_handle(nvml: ModuleType, cuda_index: int = 0, *, env: Mapping[str, str] | None = None) -> Any:
    """NVML handle of CUDA device ``cuda_index`` (NVML must be initialised)."""
    which = nvml_index(cuda_index, env=env)
    if isinstance(which, str):
        return nvml.nvmlDeviceGetHandleByUUID(which)
    return nvml.nvmlDeviceGetHandleByIndex(which)


class NvmlMeter:
    """Board energy of one GPU between ``start()`` and ``stop()``, from NVML's total-energy counter.

    Raises ``DeviceError`` at construction when NVML cannot start or the GPU has no energy counter.
    ``nvml`` is the ``pynvml`` module (injectable for tests).
    """

    method = METHOD

    def __init__(self, cuda_index: int = 0, *, nvml: ModuleType | None = None) -> None:
        try:
            self._nvml = _module(nvml)
            self._nvml.nvmlInit()
            self._handle = device_handle(self._nvml, cuda_index)
            self.gpu = _text(self._nvml.nvmlDeviceGetName(self._handle))
            self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle)
        except ImportError as exc:
            raise DeviceError(f"nvidia-ml-py is not installed ({exc})", hint="pip install nvidia-ml-py") from exc
        except DeviceError:
            raise
        except Exception as exc:  # pynvml.NVMLError_*: no library, no driver, not supported on this GPU
            raise DeviceError(
                f"NVML energy counter unavailable for CUDA device {cuda_index}: {exc}",
                hint="needs an NVIDIA driver with NVML and a Volta-or-newer GPU; energy will be estimated instead",
            ) from exc
        self.name = f"nvml:{cuda_index}"
        self._start: int | None = None

    def _read(self) -> int:
        try:
            return int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception as exc:  # pynvml.NVMLError_*
            raise DeviceError(f"reading the NVML energy counter failed: {exc}") from exc

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> EnergyReading:
        if self._start is None:
            raise RuntimeError("NvmlMeter.stop() called before start()")
        end, start = self._read(), self._start
        self._start = None
        if end < start:
            raise DeviceError(
                f"the NVML energy counter went backwards ({start} mJ -> {end} mJ): the driver was reloaded",
                hint="re-run the measurement",
            )
        return EnergyReading(joules=(end - start) / 1000.0, method=METHOD)


def nvml_meters(device_kind: str, *, nvml: ModuleType | None = None, cuda_index: int = 0) -> list[NvmlMeter]:
    """``[NvmlMeter]`` for a GPU device profile when NVML's energy counter works now; ``[]`` otherwise."""
    if device_kind != "gpu":
        return []
    try:
        return [NvmlMeter(cuda_index, nvml=nvml)]
    except DeviceError:
        return []


def gpu_facts(*, nvml: ModuleType | None = None, cuda_index: int = 0) -> dict[str, Any] | None:
    """Name, driver, power limits (W), clocks (MHz), temperature and P-state of the GPU; None without NVML.

    Each value that NVML cannot give on this GPU is left out rather than failing the rest.
    """
    try:
        nvml = _module(nvml)
        nvml.nvmlInit()
        handle = device_handle(nvml, cuda_index)
    except Exception:  # no pynvml, no driver: there are no facts to record
        return None
    reads = {
        "name": lambda: _text(nvml.nvmlDeviceGetName(handle)),
        "uuid": lambda: _text(nvml.nvmlDeviceGetUUID(handle)),
        "driver": lambda: _text(nvml.nvmlSystemGetDriverVersion()),
        "cuda_driver": lambda: _cuda_version(nvml.nvmlSystemGetCudaDriverVersion()),
        "power_limit_w": lambda: nvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000.0,
        "enforced_power_limit_w": lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle) / 1000.0,
        "default_power_limit_w": lambda: nvml.nvmlDeviceGetPowerManagementDefaultLimit(handle) / 1000.0,
        "sm_clock_mhz": lambda: int(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
        "mem_clock_mhz": lambda: int(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_MEM)),
        "max_sm_clock_mhz": lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_SM)),
        "max_mem_clock_mhz": lambda: int(nvml.nvmlDeviceGetMaxClockInfo(handle, nvml.NVML_CLOCK_MEM)),
        "temperature_c": lambda: int(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
        "pstate": lambda: f"P{int(nvml.nvmlDeviceGetPerformanceState(handle))}",
    }
    facts: dict[str, Any] = {"cuda_index": cuda_index}
    for key, read in reads.items():
        try:
            facts[key] = read()
        except Exception:  # pynvml.NVMLError_NotSupported and friends: leave this one out
            continue
    return facts


def _cuda_version(value: int) -> str:
    return f"{value // 1000}.{value % 1000 // 10}"


def facts_note(facts: Mapping[str, Any]) -> str:
    """One line for ``Compiled.notes``, e.g. ``GPU: NVIDIA H100 ..., power limit 700 W (enforced 700 W)...``."""
    parts = [f"GPU {facts.get('cuda_index', 0)}: {facts.get('name', 'unknown NVIDIA GPU')}"]
    if "driver" in facts:
        cuda = f" (CUDA {facts['cuda_driver']})" if "cuda_driver" in facts else ""
        parts.append(f"driver {facts['driver']}{cuda}")
    if "power_limit_w" in facts:
        enforced = facts.get("enforced_power_limit_w")
        shown = f" (enforced {enforced:g} W)" if enforced is not None else ""
        parts.append(f"power limit {facts['power_limit_w']:g} W{shown}")
    if "sm_clock_mhz" in facts:
        parts.append(f"SM clock {facts['sm_clock_mhz']}/{facts.get('max_sm_clock_mhz', '?')} MHz")
    if "mem_clock_mhz" in facts:
        parts.append(f"memory clock {facts['mem_clock_mhz']}/{facts.get('max_mem_clock_mhz', '?')} MHz")
    if "temperature_c" in facts:
        parts.append(f"{facts['temperature_c']} C")
    if "pstate" in facts:
        parts.append(facts["pstate"])
    return ", ".join(parts)
