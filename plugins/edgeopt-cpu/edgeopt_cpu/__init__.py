"""edgeopt target ``cpu``: ONNX Runtime's CPU execution provider (fp32, int8 static QDQ, int8 dynamic).

Registered through the ``edgeopt`` entry point like any third-party plugin; it uses only edgeopt's
public API. ONNX Runtime is imported inside the hooks that need it, so listing targets works (and
says what to install) even where it is missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgeopt.plugin import hookimpl

if TYPE_CHECKING:
    from edgeopt.plugin import Compiled, Dataset, DeviceProfile, Graph, Plan, RunSettings, TargetInfo, TargetRegister

    from edgeopt_cpu.runner import OrtCpuRunner

EDGEOPT_HOOK_API = 1
TARGET = "cpu"
PRECISIONS = ("fp32", "int8", "int8-dynamic")

__all__ = ["EDGEOPT_HOOK_API", "PRECISIONS", "TARGET", "ort_cpu_status"]


def ort_cpu_status() -> tuple[bool, str]:
    """Whether ONNX Runtime with its CPU provider can be used here, and if not, what to do."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        return False, f"onnxruntime is not importable ({exc}); pip install onnxruntime"
    providers = ort.get_available_providers()
    if "CPUExecutionProvider" not in providers:
        return (
            False,
            f"this onnxruntime build has no CPUExecutionProvider ({', '.join(providers)}); pip install onnxruntime",
        )
    return True, ""


@hookimpl
def edgeopt_register_targets(register: TargetRegister) -> None:
    available, reason = ort_cpu_status()
    register.add_target(
        TARGET,
        description="ONNX Runtime CPU execution provider",
        precisions=PRECISIONS,
        available=available,
        reason=reason,
        device_kinds=("cpu",),
        compression_speedups=("structured",),
    )


@hookimpl
def edgeopt_plan(graph: Graph, target: TargetInfo, device: DeviceProfile, precision: str) -> list[Plan] | None:
    if target.name != TARGET:
        return None
    from edgeopt_cpu.plan import plan_candidates

    return plan_candidates(graph, device, precision)


@hookimpl
def edgeopt_compile(
    graph: Graph, plan: Plan, target: TargetInfo, device: DeviceProfile, calibration: Dataset, workdir: Path
) -> Compiled | None:
    if target.name != TARGET:
        return None
    from edgeopt_cpu.compile import compile_plan

    return compile_plan(graph, plan, calibration, workdir)


@hookimpl
def edgeopt_runner(
    compiled: Compiled, target: TargetInfo, device: DeviceProfile, settings: RunSettings
) -> OrtCpuRunner | None:
    if target.name != TARGET:
        return None
    from edgeopt_cpu.runner import OrtCpuRunner

    return OrtCpuRunner(compiled.model_path, threads=settings.threads, batch=settings.batch)
