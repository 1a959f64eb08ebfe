"""Shared helpers for the security tests: the real CLI in a subprocess (with its peak memory), tiny models."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgeopt.errors import exit_status_for_code

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits" / "digits_cnn.onnx"
FAST = ("--precision", "fp32", "--runs", "3", "--timing-s", "0.05")
"""deploy options that keep a full CLI deploy of the digits CNN to a few seconds."""


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str
    maxrss_bytes: int
    """Peak resident memory of the edgeopt process (from wait4), so a test can prove nothing big was read."""
    seconds: float

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error[")]


def run_cli(
    *args: str,
    cwd: Path,
    env: Mapping[str, str] | None = None,
    preexec: Callable[[], None] | None = None,
    timeout: float = 300,
) -> CliResult:
    """``python -m edgeopt ARGS`` in ``cwd``; extra ``env`` entries on top of ours."""
    full_env = {**os.environ, **(env or {})}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.monotonic()
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter
            [sys.executable, "-m", "edgeopt", *args], cwd=cwd, stdout=out, stderr=err, env=full_env, preexec_fn=preexec
        )
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                os.kill(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.monotonic() - start
        out.seek(0)
        err.seek(0)
        return CliResult(
            returncode=proc.returncode,
            stdout=out.read().decode("utf-8", "replace"),
            stderr=err.read().decode("utf-8", "replace"),
            maxrss_bytes=usage.ru_maxrss * 1024,
            seconds=seconds,
        )


def assert_one_line_error(
    result: CliResult, *, code: str | Sequence[str], mentions: Sequence[str] = (), cwd: Path | None = None
) -> str:
    """The error class's exit status, exactly one ``error[CODE]`` line naming every ``mentions``
    (case-insensitive), a hint, no traceback, nothing on stdout,
    and (with ``cwd``) no artifact or temp dir left in ``cwd``. Returns the line."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.error_lines
    assert len(lines) == 1, result.stderr
    codes = (code,) if isinstance(code, str) else tuple(code)
    assert any(lines[0].startswith(f"error[{c}]") for c in codes), lines[0]
    status = exit_status_for_code(lines[0][len("error["):].split("]")[0])
    assert result.returncode == status, f"exit {result.returncode}, not {status}\n{result.stderr}"
    for needle in mentions:
        assert needle.lower() in lines[0].lower(), f"{needle!r} not in {lines[0]!r}"
    hints = [line for line in result.stderr.splitlines() if line.strip().startswith("hint:")]
    assert len(hints) == 1 and len(hints[0].strip()) > len("hint: ") + 10, result.stderr
    assert result.stdout == "", result.stdout
    if cwd is not None:
        assert not list(cwd.glob("*.edgeopt")), "a failed command left an artifact behind"
        assert not list(cwd.glob(".*.tmp-*")), "a failed command left a temp dir behind"
    return lines[0]


def save(model: onnx.ModelProto, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model.SerializeToString())
    return path


def matmul_model(weight: TensorProto | None = None, *, n: int = 16) -> onnx.ModelProto:
    """y = x @ w with x [1, n]; ``weight`` replaces the default [n, 4] initializer ``w``."""
    w = weight if weight is not None else numpy_helper.from_array(np.ones((n, 4), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, list(w.dims)[-1] if w.dims else 4])],
        initializer=[w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def external_weight(name: str, dims: Sequence[int], *, location: str, offset: int = 0) -> TensorProto:
    """A float tensor whose data is declared to live at ``location`` (nothing is read or written here)."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(dims))
    tensor.data_location = TensorProto.EXTERNAL
    length = 4 * int(np.prod(dims))
    for key, value in (("location", location), ("offset", str(offset)), ("length", str(length))):
        tensor.external_data.add(key=key, value=value)
    return tensor


def run_cli_many(jobs: Mapping[str, tuple[Sequence[str], Path, Mapping[str, str] | None]]) -> dict[str, CliResult]:
    """Several independent CLI runs at once (label -> (args, cwd, env)); most of each run is interpreter
    start-up, so running them side by side keeps a group of CLI checks affordable."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {label: pool.submit(run_cli, *args, cwd=cwd, env=env) for label, (args, cwd, env) in jobs.items()}
        return {label: future.result() for label, future in futures.items()}
