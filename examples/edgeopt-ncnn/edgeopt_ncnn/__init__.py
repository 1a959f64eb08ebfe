"""edgeopt target ``ncnn``: Tencent's ncnn inference framework, built for phones and small CPUs.

A third-party-style plugin: its own distribution, found by edgeopt only through the ``edgeopt``
entry point, using nothing but edgeopt's public API. ONNX graphs are converted with pnnx (the
converter binary shipped in the ``pnnx`` wheel, run in a subprocess with a timeout) and run with the
``ncnn`` Python package. Precisions: ``fp32`` and ``fp16`` (weights stored as fp16 by pnnx, fp16
storage and arithmetic in ncnn where the CPU has it). Neither package is imported to list targets.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from edgeopt.plugin import hookimpl

if TYPE_CHECKING:
    from edgeopt.plugin import Compiled, Dataset, DeviceProfile, Graph, Plan, RunSettings, TargetInfo, TargetRegister

    from edgeopt_ncnn.runner import NcnnRunner

EDGEOPT_HOOK_API = 1
TARGET = "ncnn"
PRECISIONS = ("fp32", "fp16")
TOLERANCES = {"fp32": 1e-4, "fp16": 1e-2}
"""max|out - ref| / max|ref|: fp32 kernels reorder sums; fp16 storage rounds weights and activations."""

try:
    __version__ = md.version("edgeopt-ncnn")
except md.PackageNotFoundError:  # imported from a source tree
    __version__ = "0.1.0"

__all__ = ["EDGEOPT_HOOK_API", "PRECISIONS", "TARGET", "TOLERANCES", "ncnn_status"]


def ncnn_status() -> tuple[bool, str]:
    """Whether ncnn and the pnnx converter are present, and if not, what to install (nothing is imported)."""
    from edgeopt_ncnn.convert import pnnx_executable

    missing = []
    if importlib.util.find_spec("ncnn") is None:
        missing.append("the ncnn runtime is not installed (pip install ncnn)")
    if pnnx_executable() is None:
        missing.append("the pnnx converter is not installed (pip install --no-deps pnnx, or set EDGEOPT_PNNX)")
    return not missing, "; ".join(missing)


@hookimpl
def edgeopt_register_targets(register: TargetRegister) -> None:
    available, reason = ncnn_status()
    register.add_target(
        TARGET,
        description="Tencent ncnn on this CPU (ONNX converted with pnnx)",
        precisions=PRECISIONS,
        available=available,
        reason=reason,
        device_kinds=("cpu",),
        tolerances=TOLERANCES,
    )


@hookimpl
def edgeopt_plan(graph: Graph, target: TargetInfo, device: DeviceProfile, precision: str) -> list[Plan] | None:
    if target.name != TARGET:
        return None
    from edgeopt_ncnn.plan import plan_candidates

    return plan_candidates(graph, device, precision)


@hookimpl
def edgeopt_compile(
    graph: Graph, plan: Plan, target: TargetInfo, device: DeviceProfile, calibration: Dataset, workdir: Path
) -> Compiled | None:
    if target.name != TARGET:
        return None
    from edgeopt_ncnn.convert import compile_plan

    return compile_plan(graph, plan, Path(workdir))


@hookimpl
def edgeopt_runner(
    compiled: Compiled, target: TargetInfo, device: DeviceProfile, settings: RunSettings
) -> NcnnRunner | None:
    if target.name != TARGET:
        return None
    from edgeopt_ncnn.runner import NcnnRunner

    return NcnnRunner(compiled.directory, threads=settings.threads or compiled.plan.threads)
