"""edgeopt targets ``openvino`` (CPU), ``openvino-gpu`` and ``openvino-npu``: OpenVINO IR, fp32/fp16/bf16/NNCF int8.

Registered through the ``edgeopt`` entry point like any third-party plugin; it uses only edgeopt's
public API. OpenVINO and NNCF are imported inside the hooks that need them, so listing targets works
(and says what to install) where they are missing. See docs/openvino.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgeopt.plugin import hookimpl

from edgeopt_openvino.devices import TARGETS, absent_reason, device_present, openvino_status, target_spec

if TYPE_CHECKING:
    from edgeopt.plugin import Compiled, Dataset, DeviceProfile, Graph, Plan, RunSettings, TargetInfo, TargetRegister

    from edgeopt_openvino.runner import OpenVinoRunner

EDGEOPT_HOOK_API = 1
PRECISIONS = ("fp32", "fp16", "bf16", "int8")
TARGET_NAMES = tuple(spec.name for spec in TARGETS)

__all__ = ["EDGEOPT_HOOK_API", "PRECISIONS", "TARGET_NAMES"]


@hookimpl
def edgeopt_register_targets(register: TargetRegister) -> None:
    status = openvino_status()
    precisions = PRECISIONS if status.has_nncf else tuple(p for p in PRECISIONS if p != "int8")
    found = ", ".join(status.devices) or "none"
    for spec in TARGETS:
        if status.problem:
            available, reason = False, status.problem
        elif not device_present(spec.ov_device, status.devices):
            available, reason = False, absent_reason(spec, status.devices)
        else:
            available, reason = True, ""
        version = f"OpenVINO {status.version.split('-')[0]}" if status.version else "OpenVINO"
        offered = precisions if device_present(spec.ov_device, status.bf16_devices) else tuple(
            p for p in precisions if p != "bf16")
        description = f"{spec.description.replace('OpenVINO', version, 1)} (devices found: {found})"
        if not status.has_nncf:
            description += "; int8 needs NNCF: pip install nncf"
        register.add_target(
            spec.name,
            description=description,
            precisions=offered,
            available=available,
            reason=reason,
            device_kinds=(spec.kind,),
            compression_speedups=("structured",),
        )


@hookimpl
def edgeopt_plan(graph: Graph, target: TargetInfo, device: DeviceProfile, precision: str) -> list[Plan] | None:
    if target.name not in TARGET_NAMES:
        return None
    from edgeopt_openvino.plan import plan_candidates

    return plan_candidates(graph, target_spec(target.name), device, precision)


@hookimpl
def edgeopt_compile(
    graph: Graph, plan: Plan, target: TargetInfo, device: DeviceProfile, calibration: Dataset, workdir: Path
) -> Compiled | None:
    if target.name not in TARGET_NAMES:
        return None
    from edgeopt_openvino.compile import compile_plan

    return compile_plan(graph, plan, target_spec(target.name), calibration, workdir)


@hookimpl
def edgeopt_runner(
    compiled: Compiled, target: TargetInfo, device: DeviceProfile, settings: RunSettings
) -> OpenVinoRunner | None:
    if target.name not in TARGET_NAMES:
        return None
    from edgeopt_openvino.compile import read_compute
    from edgeopt_openvino.runner import OpenVinoRunner

    return OpenVinoRunner(
        compiled.model_path,
        ov_device=target_spec(target.name).ov_device,
        precision=compiled.plan.precision,
        batch=settings.batch,
        threads=settings.threads or compiled.plan.threads,
        compute=read_compute(compiled),
    )
