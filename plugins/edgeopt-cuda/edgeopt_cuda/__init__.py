"""edgeopt target ``cuda``: ONNX Runtime's CUDA and TensorRT execution providers on an NVIDIA GPU.

fp32 and fp16 on the CUDA EP (TensorRT too when present), int8 QDQ on the TensorRT EP, IO binding and
CUDA graphs in the runner, GPU board energy from NVML. Registered through the ``edgeopt`` entry point
like any third-party plugin, using only edgeopt's public API. ONNX Runtime, NVML and the converter are
imported inside the functions that need them, so listing targets works everywhere and says exactly
what is missing (see ``status.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgeopt.plugin import hookimpl

if TYPE_CHECKING:
    from edgeopt.plugin import (
        Compiled,
        Dataset,
        DeviceProfile,
        EnergyMeter,
        Graph,
        Plan,
        RunSettings,
        TargetInfo,
        TargetRegister,
    )

    from edgeopt_cuda.runner import OrtCudaRunner

EDGEOPT_HOOK_API = 1
TARGET = "cuda"
DESCRIPTION = "ONNX Runtime CUDA / TensorRT execution providers (NVIDIA GPU)"
TOLERANCES = {"tf32": 5e-3}
"""``tf32`` has no core default: operands keep 10 mantissa bits (relative rounding 4.9e-4 each), and a few
dozen layers compound that; fp32, fp16 and int8 use the core's defaults. Not yet checked on a GPU."""

__all__ = ["DESCRIPTION", "EDGEOPT_HOOK_API", "TARGET"]


@hookimpl
def edgeopt_register_targets(register: TargetRegister) -> None:
    from edgeopt_cuda.status import current_status

    status = current_status()
    if status.available and not status.tensorrt:
        description = f"{DESCRIPTION}; no int8: {status.tensorrt_reason}"
    else:
        description = DESCRIPTION
    register.add_target(
        TARGET,
        description=description,
        precisions=("fp32", "tf32", "fp16", "int8") if status.tensorrt else ("fp32", "tf32", "fp16"),
        available=status.available,
        reason=status.reason,
        device_kinds=("gpu",),
        tolerances=TOLERANCES,
        compression_speedups=("structured",),  # "2:4" once tensorrt_options sets trt_sparsity_enable
    )


@hookimpl
def edgeopt_plan(graph: Graph, target: TargetInfo, device: DeviceProfile, precision: str) -> list[Plan] | None:
    if target.name != TARGET:
        return None
    from edgeopt_cuda.plan import plan_candidates
    from edgeopt_cuda.status import current_status

    status = current_status()
    return plan_candidates(graph, device, precision, tensorrt=status.tensorrt, tensorrt_reason=status.tensorrt_reason)


@hookimpl
def edgeopt_compile(
    graph: Graph, plan: Plan, target: TargetInfo, device: DeviceProfile, calibration: Dataset, workdir: Path
) -> Compiled | None:
    if target.name != TARGET:
        return None
    from edgeopt_cuda.compile import compile_plan
    from edgeopt_cuda.status import current_status

    return compile_plan(graph, plan, calibration, workdir, status=current_status())


@hookimpl
def edgeopt_runner(
    compiled: Compiled, target: TargetInfo, device: DeviceProfile, settings: RunSettings
) -> OrtCudaRunner | None:
    if target.name != TARGET:
        return None
    from edgeopt.plugin import TargetUnavailable

    from edgeopt_cuda.config import read_config
    from edgeopt_cuda.runner import OrtCudaRunner, cache_root_for
    from edgeopt_cuda.status import current_status

    status = current_status()
    if not status.available:
        raise TargetUnavailable(f"target {TARGET!r} cannot run here: {status.reason}", hint=status.reason)
    config = read_config(compiled.directory, precision=compiled.plan.precision)
    return OrtCudaRunner(
        compiled.model_path,
        config=config,
        cache_root=cache_root_for(compiled.directory),
        batch=settings.batch,
        threads=settings.threads,
    )


@hookimpl
def edgeopt_energy_meters(device: DeviceProfile) -> list[EnergyMeter]:
    """An NVML board-energy meter for GPU device profiles when NVML's counter works; nothing otherwise."""
    from edgeopt_cuda.nvml import nvml_meters

    return list(nvml_meters(device.kind))
