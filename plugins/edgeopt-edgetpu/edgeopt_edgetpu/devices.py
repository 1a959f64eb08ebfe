"""Is a Coral Edge TPU attached, and can the LiteRT runtime be imported? Cheap checks, no device opened.

A Coral USB Accelerator enumerates as USB ``1a6e:089a`` (before its firmware is loaded) or ``18d1:9302``
(after); the M.2/Mini PCIe modules and the Dev Board's SoM show up as ``/dev/apex_N`` (gasket driver).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

CORAL_USB_IDS = (("1a6e", "089a"), ("18d1", "9302"))
RUNTIME_HINT = "pip install ai-edge-litert (or tflite-runtime on boards where only that exists)"


def runtime_problem() -> str:
    """Why no LiteRT interpreter can be imported here, or empty when one can."""
    if importlib.util.find_spec("ai_edge_litert") or importlib.util.find_spec("tflite_runtime"):
        return ""
    return f"no LiteRT interpreter is installed; {RUNTIME_HINT}"


def coral_present(*, sysfs: Path = Path("/sys/bus/usb/devices"), dev: Path = Path("/dev")) -> str:
    """A description of the attached Coral (``usb 18d1:9302``, ``pcie /dev/apex_0``), or empty when none."""
    for apex in sorted(dev.glob("apex_*")) if dev.is_dir() else []:
        return f"pcie {apex}"
    if sysfs.is_dir():
        for device in sorted(sysfs.iterdir()):
            try:
                ids = ((device / "idVendor").read_text().strip(), (device / "idProduct").read_text().strip())
            except OSError:
                continue
            if ids in CORAL_USB_IDS:
                return f"usb {ids[0]}:{ids[1]}"
    return ""
