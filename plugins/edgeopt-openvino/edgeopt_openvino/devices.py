"""Which OpenVINO devices exist here, and which edgeopt target runs on each.

One edgeopt target per OpenVINO device family: ``openvino`` (CPU), ``openvino-gpu`` (Intel GPU),
``openvino-npu`` (Intel NPU). The target name alone decides the OpenVINO device, so a deploy job,
its manifest and ``edgeopt.load`` need nothing else (no environment variable, no extra option); the
``--device`` flag keeps its edgeopt meaning, a device *profile* with the figures of that hardware.
A target whose device OpenVINO does not report is registered unavailable, with the devices it did
find. With several GPUs (``GPU.0``, ``GPU.1``) the target uses OpenVINO's default ``GPU`` (``GPU.0``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import Any

INSTALL_HINT = "pip install edgeopt-openvino (openvino, nncf)"
"""What to install when OpenVINO itself is missing."""
NNCF_HINT = "pip install nncf"
"""What to install when only NNCF (int8) is missing."""


@dataclass(frozen=True)
class TargetSpec:
    """One edgeopt target and the OpenVINO device it compiles for."""

    name: str
    ov_device: str
    """OpenVINO device name given to ``Core.compile_model`` (``CPU``, ``GPU``, ``NPU``)."""
    kind: str
    """edgeopt device-profile kind (``cpu``, ``gpu``, ``npu``)."""
    description: str
    absent_hint: str
    """What to do when OpenVINO does not report the device."""


TARGETS: tuple[TargetSpec, ...] = (
    TargetSpec("openvino", "CPU", "cpu", "OpenVINO runtime on the host CPU", "use a machine with an x86-64 or Arm CPU"),
    TargetSpec(
        "openvino-gpu",
        "GPU",
        "gpu",
        "OpenVINO runtime on an Intel GPU",
        "install Intel's GPU compute runtime (OpenCL) on a machine with an Intel GPU, or use target 'openvino'",
    ),
    TargetSpec(
        "openvino-npu",
        "NPU",
        "npu",
        "OpenVINO runtime on an Intel NPU",
        "install Intel's NPU driver on a machine with an Intel NPU (Core Ultra), or use target 'openvino'",
    ),
)


def target_spec(name: str) -> TargetSpec:
    """The spec of target ``name``; ``KeyError`` for a name this plugin does not register."""
    for spec in TARGETS:
        if spec.name == name:
            return spec
    raise KeyError(name)


@dataclass(frozen=True)
class OpenVinoStatus:
    """What this machine offers OpenVINO: its version and devices, or why it cannot be used."""

    version: str | None
    devices: tuple[str, ...] = ()
    problem: str = ""
    """Why OpenVINO is unusable here (not importable, cannot list devices); empty when usable."""
    has_nncf: bool = False
    bf16_devices: tuple[str, ...] = ()
    """Devices that report ``BF16`` among their ``OPTIMIZATION_CAPABILITIES``."""


def openvino_status() -> OpenVinoStatus:
    """Import OpenVINO and list its devices; never raises (a failure becomes ``problem``)."""
    has_nncf = importlib.util.find_spec("nncf") is not None
    try:
        import openvino as ov
    except ImportError as exc:
        return OpenVinoStatus(None, problem=f"openvino is not importable ({exc}); {INSTALL_HINT}", has_nncf=has_nncf)
    try:
        core = ov.Core()
        devices = tuple(core.available_devices)
    except Exception as exc:  # OpenVINO's RuntimeError from a broken plugin library
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return OpenVinoStatus(
            ov.__version__, problem=f"OpenVINO cannot list its devices ({first}); reinstall openvino", has_nncf=has_nncf
        )
    bf16 = tuple(d for d in devices if "BF16" in capabilities(core, d))
    return OpenVinoStatus(ov.__version__, devices, has_nncf=has_nncf, bf16_devices=bf16)


def device_present(ov_device: str, devices: tuple[str, ...]) -> bool:
    """Whether ``ov_device`` (``GPU``) or one of its numbered instances (``GPU.0``) is in ``devices``."""
    return any(d == ov_device or d.startswith(f"{ov_device}.") for d in devices)


def absent_reason(spec: TargetSpec, devices: tuple[str, ...]) -> str:
    """``OpenVINO reports no GPU device here (available: CPU); <what to do>``."""
    found = ", ".join(devices) or "none"
    return f"OpenVINO reports no {spec.ov_device} device here (available: {found}); {spec.absent_hint}"


def capabilities(core: Any, ov_device: str) -> tuple[str, ...]:
    """``OPTIMIZATION_CAPABILITIES`` of a device (``FP32``, ``FP16``, ``INT8``, ``BF16``...); empty if unknown."""
    try:
        return tuple(str(c) for c in core.get_property(ov_device, "OPTIMIZATION_CAPABILITIES"))
    except Exception:  # a device without the property: nothing is known about it
        return ()


def computes_fp16(ov_device: str) -> bool:
    """Whether OpenVINO can run fp16 arithmetic on ``ov_device`` here (``FP16`` among its capabilities)."""
    import openvino as ov

    return "FP16" in capabilities(ov.Core(), ov_device)


def computes_bf16(ov_device: str) -> bool:
    """Whether OpenVINO can run bf16 arithmetic on ``ov_device`` here (``BF16`` among its capabilities: CPUs
    with AVX512_BF16 or AMX, Arm CPUs with the BF16 extension)."""
    import openvino as ov

    return "BF16" in capabilities(ov.Core(), ov_device)
