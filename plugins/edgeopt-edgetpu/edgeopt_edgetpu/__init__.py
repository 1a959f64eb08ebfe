"""edgeopt targets ``tflite`` (LiteRT on a CPU) and ``edgetpu`` (Coral Edge TPU), TensorFlow-free by default.

The normalized ONNX graph is converted to ``.tflite`` by the first route that builds it (onnx2torch +
litert-torch, then onnx2tf where the toolchain has it; ``convert_worker.py``) and quantized by ai-edge-quantizer
in a converter toolchain run as a subprocess (``toolchain.py``, ``convert.py``);
models run on the LiteRT interpreter (``ai-edge-litert``) in this process. For ``edgetpu`` a
compatibility report (``compat.py``, rules in ``edgetpu_ops.py``) is computed before any compile and
stored in the artifact; ``edgetpu_compiler`` runs when it is on PATH. Registered through the
``edgeopt`` entry point like any third-party plugin. See docs/edgetpu.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from edgeopt.plugin import hookimpl

from edgeopt_edgetpu.devices import coral_present, runtime_problem
from edgeopt_edgetpu.plan import EDGETPU, TFLITE, precisions_for

if TYPE_CHECKING:
    import typer
    from edgeopt.plugin import Compiled, Dataset, DeviceProfile, Graph, Plan, RunSettings, TargetInfo, TargetRegister

    from edgeopt_edgetpu.runner import LiteRtRunner

EDGEOPT_HOOK_API = 1
TARGETS = (TFLITE, EDGETPU)
TOLERANCES = {"fp32": 1e-4, "fp16": 1e-2, "int8-dynamic": 0.1, "int8": 0.1}

__all__ = ["EDGEOPT_HOOK_API", "TARGETS"]


def _availability() -> tuple[bool, str]:
    from edgeopt_edgetpu.toolchain import SETUP_HINT, find_toolchain

    problem = runtime_problem()
    if problem:
        return False, problem
    if find_toolchain() is None:
        return False, f"the ONNX → TFLite converter is not set up; {SETUP_HINT}"
    return True, ""


@hookimpl
def edgeopt_register_targets(register: TargetRegister) -> None:
    available, reason = _availability()
    coral = coral_present()
    register.add_target(
        TFLITE,
        description="LiteRT (TFLite) interpreter on the CPU: ARM boards, phones, x86; fp32, fp16 weights, int8",
        precisions=precisions_for(TFLITE),
        available=available,
        reason=reason,
        device_kinds=("cpu",),
        tolerances=TOLERANCES,
        compression_speedups=("structured",),
    )
    where = f"Coral attached ({coral})" if coral else "no Coral attached: runs int8 on the host CPU, Coral estimated"
    register.add_target(
        EDGETPU,
        description=f"Coral Edge TPU: full-int8 TFLite, compatibility report, edgetpu_compiler if on PATH ({where})",
        precisions=precisions_for(EDGETPU),
        available=available,
        reason=reason,
        device_kinds=("tpu", "cpu"),
        tolerances={"int8": TOLERANCES["int8"]},
        compression_speedups=("structured",),
        emulated="" if coral else "no Coral attached: its int8 model would run on the host CPU, as target tflite does",
    )


@hookimpl
def edgeopt_plan(graph: Graph, target: TargetInfo, device: DeviceProfile, precision: str) -> list[Plan] | None:
    if target.name not in TARGETS:
        return None
    from edgeopt_edgetpu.plan import plan_candidates

    return plan_candidates(graph, target.name, device, precision)


@hookimpl
def edgeopt_compile(
    graph: Graph, plan: Plan, target: TargetInfo, device: DeviceProfile, calibration: Dataset, workdir: Path
) -> Compiled | None:
    if target.name not in TARGETS:
        return None
    from edgeopt_edgetpu.compile import compile_plan

    return compile_plan(graph, plan, device, calibration, workdir)


@hookimpl
def edgeopt_runner(
    compiled: Compiled, target: TargetInfo, device: DeviceProfile, settings: RunSettings
) -> LiteRtRunner | None:
    if target.name not in TARGETS:
        return None
    from edgeopt_edgetpu.runner import LiteRtRunner

    edgetpu = target.name == EDGETPU and bool(coral_present())
    runner = LiteRtRunner(compiled.model_path, batch=settings.batch, threads=settings.threads, edgetpu=edgetpu)
    runner.on_device = device.kind != "tpu" or runner.on_edgetpu  # a Coral profile without a Coral: host CPU
    return runner


@hookimpl
def edgeopt_cli_commands(app: typer.Typer) -> None:
    from edgeopt_edgetpu.cli import register

    register(app)
