"""``edgetpu_compiler``: run it in a subprocess when it is on PATH and read what it reports.

The compiler (Coral's Debian package ``edgetpu-compiler``, x86-64 Linux only) writes
``<name>_edgetpu.tflite`` and ``<name>_edgetpu.log`` next to ``-o``. Its stdout gives the op counts
(``Number of operations that will run on Edge TPU: N``) and the on-chip memory it used for caching
parameters; the ``.log`` lists each operator with a count and a status (``Mapped to Edge TPU`` or the
reason it was not). Both are parsed into ``CompilerReport``. Without the compiler nothing runs and
the compile-ready int8 model stays in the artifact (``compiler_status`` says so).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from edgeopt.plugin import CompileError

COMPILER = "edgetpu_compiler"
INSTALL_HINT = ("install Coral's edgetpu-compiler (x86-64 Linux: apt-get install edgetpu-compiler from "
                "https://packages.cloud.google.com/apt coral-edgetpu-stable), then run "
                "`edgetpu_compiler -s model.tflite` on the artifact's model")
_UNITS = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3}
_NUMBER = r"([0-9]+(?:\.[0-9]+)?)\s*(B|KiB|MiB|GiB)"
_FIELDS = {
    "on_chip_bytes": re.compile(rf"On-chip memory used for caching model parameters:\s*{_NUMBER}"),
    "on_chip_remaining_bytes": re.compile(rf"On-chip memory remaining for caching model parameters:\s*{_NUMBER}"),
    "off_chip_bytes": re.compile(rf"Off-chip memory used for streaming uncached model parameters:\s*{_NUMBER}"),
}
_COUNTS = {
    "edgetpu_ops": re.compile(r"Number of operations that will run on Edge TPU:\s*(\d+)"),
    "cpu_ops": re.compile(r"Number of operations that will run on CPU:\s*(\d+)"),
    "total_ops": re.compile(r"Total number of operations:\s*(\d+)"),
    "subgraphs": re.compile(r"Number of Edge TPU subgraphs:\s*(\d+)"),
}
_VERSION = re.compile(r"Edge TPU Compiler version\s+(\S+)")
_LOG_ROW = re.compile(r"^([A-Z][A-Z0-9_]+)\s+(\d+)\s+(.+?)\s*$")


@dataclass(frozen=True)
class CompilerReport:
    """What ``edgetpu_compiler`` said about one model."""

    version: str = ""
    edgetpu_ops: int | None = None
    cpu_ops: int | None = None
    total_ops: int | None = None
    subgraphs: int | None = None
    on_chip_bytes: float | None = None
    on_chip_remaining_bytes: float | None = None
    off_chip_bytes: float | None = None
    operators: tuple[dict, ...] = field(default_factory=tuple)
    """Rows of the operation log: ``{"op", "count", "status"}``."""


def compiler_path() -> str | None:
    return shutil.which(COMPILER)


def parse_output(stdout: str, log: str = "") -> CompilerReport:
    """Parse the compiler's stdout and its ``_edgetpu.log`` text."""
    values: dict = {}
    version = _VERSION.search(stdout)
    for key, pattern in _FIELDS.items():
        found = pattern.search(stdout)
        if found:
            values[key] = float(found.group(1)) * _UNITS[found.group(2)]
    for key, pattern in _COUNTS.items():
        found = pattern.search(stdout)
        if found:
            values[key] = int(found.group(1))
    if "edgetpu_ops" not in values and values.get("total_ops") is not None and "not all operations" not in stdout:
        values["edgetpu_ops"], values["cpu_ops"] = values["total_ops"], 0  # every op mapped: no split printed
    rows = []
    for line in log.splitlines():
        row = _LOG_ROW.match(line.strip())
        if row and row.group(1) not in ("OPERATOR",):
            rows.append({"op": row.group(1), "count": int(row.group(2)), "status": row.group(3)})
    return CompilerReport(version=version.group(1) if version else "", operators=tuple(rows), **values)


def run_compiler(model: Path, out_dir: Path, *, timeout_s: float = 300.0) -> tuple[Path, CompilerReport]:
    """Compile ``model`` into ``out_dir``; return the ``_edgetpu.tflite`` path and the parsed report."""
    exe = compiler_path()
    if exe is None:
        raise CompileError(f"{COMPILER} is not on PATH", hint=INSTALL_HINT)
    command = [exe, "-s", "-o", str(out_dir), str(model)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=out_dir, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CompileError(f"{COMPILER} did not finish within {timeout_s:g} s") from exc
    compiled = out_dir / f"{model.stem}_edgetpu.tflite"
    log_file = out_dir / f"{model.stem}_edgetpu.log"
    if done.returncode != 0 or not compiled.is_file():
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-2:])
        raise CompileError(f"{COMPILER} failed (exit {done.returncode}): {tail}",
                           hint="see the compatibility report (edgetpu_report.json) for ops it cannot map")
    log = log_file.read_text(errors="replace") if log_file.is_file() else ""
    return compiled, parse_output(done.stdout, log)
