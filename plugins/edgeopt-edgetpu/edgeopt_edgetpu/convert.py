"""Run ONNX → TFLite conversions in the converter toolchain's interpreter, in a subprocess with a timeout.

A job crosses as a JSON file, the calibration samples as an ``.npz`` (arrays by graph input name), both
written under the compile's ``workdir``. The child runs ``convert_worker.py --serve`` by path (``-P -s``: no
user site, no script folder on ``sys.path``) and is kept for the next job (``ConverterProcess``); for each
job it works from a scratch folder under ``workdir`` (cwd and temp dir), so nothing is written elsewhere.
A crash or the time limit (``EDGEOPT_LITERT_TIMEOUT_S``, default 600 s per job) kills the child and
becomes ``CompileError``. When no route builds the model, the job fails with ``ConversionError`` (E510) naming
the converter, the route, the stage (onnx2torch, litert-torch, onnx2tf, check), the first failing ONNX node
and a hint that fits the failure; a quantizer failure is a ``ConversionError`` of stage ``quantize``.

The routes are tried in the order ``EDGEOPT_LITERT_ROUTES`` gives (comma-separated, default ``torch,onnx2tf``;
see ``convert_worker.py``).
"""

from __future__ import annotations

import atexit
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
from edgeopt.plugin import CompileError, ConversionError, Dataset, Graph, stop_child

from edgeopt_edgetpu.toolchain import Toolchain

WORKER = Path(__file__).with_name("convert_worker.py")
TIMEOUT_ENV = "EDGEOPT_LITERT_TIMEOUT_S"
ROUTES_ENV = "EDGEOPT_LITERT_ROUTES"
ROUTES = ("torch", "onnx2tf")
CONVERTERS = {"torch": "onnx2torch+litert-torch", "onnx2tf": "onnx2tf+TensorFlow Lite converter"}
DEFAULT_TIMEOUT_S = 600.0
CALIBRATION_SAMPLES = 128
"""At most this many calibration samples are passed to the quantizer (one invoke each)."""


@dataclass(frozen=True)
class ConvertJob:
    """What ``convert_worker.py`` reads (as JSON)."""

    onnx: str
    out: str
    result: str
    precision: str
    """``fp32``, ``fp16``, ``int8-dynamic`` or ``int8``."""
    inputs: tuple[dict, ...]
    """``{"name", "shape", "dtype"}`` per graph input, in graph order (static shapes)."""
    calibration: str = ""
    """An ``.npz`` of samples by input name: quantizer calibration (int8), and the sample each route's fp32 model
    is checked on against ONNX Runtime (every precision)."""
    granularity: str = "per-channel"
    """Int8 weight scales: ``per-channel`` or ``per-tensor``."""
    outputs: tuple[str, ...] = ()
    """The graph's output names, in order."""
    routes: tuple[str, ...] = ROUTES
    """Conversion routes to try, in order (``torch``, ``onnx2tf``)."""


@dataclass(frozen=True)
class ConvertResult:
    seconds: float
    """Wall time of the subprocess, interpreter start and imports included."""
    timings: dict[str, float] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    route: str = "torch"
    """The route that built the model."""
    attempts: tuple[dict, ...] = ()
    """Routes that failed before it: ``{"route", "stage", "error", "node", "op", "kind"}`` each."""
    signature: dict = field(default_factory=dict)
    """``{"name", "inputs", "outputs"[, "output_perms"]}``: signature keys in graph order (see the runner)."""


def routes() -> tuple[str, ...]:
    """The routes to try, from ``EDGEOPT_LITERT_ROUTES`` (unknown names refused) or the default order."""
    raw = os.environ.get(ROUTES_ENV, "").strip()
    if not raw:
        return ROUTES
    chosen = tuple(r.strip() for r in raw.split(",") if r.strip())
    unknown = [r for r in chosen if r not in ROUTES]
    if unknown or not chosen:
        raise CompileError(f"{ROUTES_ENV}={raw!r} names unknown routes {unknown}",
                           hint=f"a comma-separated list of {', '.join(ROUTES)}")
    return chosen


def timeout_s() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        value = DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def input_specs(graph: Graph) -> tuple[dict, ...]:
    """The graph inputs as the worker needs them; ``CompileError`` for a dynamic dimension."""
    specs = []
    for spec in graph.inputs:
        if not spec.is_static:
            raise CompileError(f"input {spec.name!r} has dynamic shape {list(spec.shape)}; TFLite needs static shapes",
                               hint="fix it with --input-shape NAME=1x...")
        specs.append({"name": spec.name, "shape": [int(d) for d in spec.shape], "dtype": spec.dtype})
    return tuple(specs)


def write_calibration(calibration: Dataset, graph: Graph, path: Path, *, limit: int = CALIBRATION_SAMPLES) -> int:
    """Write up to ``limit`` samples per graph input to ``path`` (npz); return how many."""
    arrays = {}
    for spec in graph.inputs:
        if spec.name not in calibration.arrays:
            raise CompileError(f"the calibration data has no input {spec.name!r}",
                               hint="give --calib data with one array per model input")
        arrays[spec.name] = np.ascontiguousarray(calibration.arrays[spec.name][:limit], dtype=spec.dtype)
    np.savez(path, **arrays)
    return len(next(iter(arrays.values()))) if arrays else 0


class ConverterProcess:
    """One ``convert_worker.py --serve`` child of one toolchain interpreter, serving jobs one at a time.

    Importing torch and litert-torch costs several seconds, and a deploy converts several plans (and the
    conformance suite many), so the child is kept and reused; ``starts`` counts children started. A child
    that dies or runs past the time limit is killed, the job fails with ``CompileError`` and the next job
    starts a fresh child. Its stderr (converter logs) goes to an unlinked temp file whose tail is quoted
    in errors.
    """

    def __init__(self, toolchain: Toolchain) -> None:
        self.toolchain = toolchain
        self.starts = 0
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._lock = threading.Lock()

    def _start(self, deadline: float) -> subprocess.Popen[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        env.update(PYTHONNOUSERSITE="1", TF_CPP_MIN_LOG_LEVEL="2", HF_HUB_OFFLINE="1", CUDA_VISIBLE_DEVICES="")
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the child
        proc = subprocess.Popen(  # noqa: S603 - our own worker script, run by the resolved toolchain interpreter
            [str(self.toolchain.python), "-P", "-s", str(WORKER), "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env, cwd="/", text=True,
        )
        self.starts += 1
        self._proc = proc
        if self._read_line(proc, deadline) != "ready":
            raise CompileError(f"the converter toolchain did not start{self._tail()}",
                               hint=f"check it with `{self.toolchain.python} -c 'import litert_torch'`")
        return proc

    def _read_line(self, proc: subprocess.Popen[str], deadline: float) -> str | None:
        """One reply line, None when the child closed its stdout; TimeoutError past ``deadline``."""
        assert proc.stdout is not None
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                raise TimeoutError
        line = proc.stdout.readline()
        return line.strip() if line else None

    def _tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        lines = [x for x in self._stderr.read()[-4000:].decode("utf-8", "replace").splitlines() if x.strip()]
        return f": {lines[-1][:300]}" if lines else ""

    def run(self, job_file: Path, *, timeout_s: float) -> int:
        """Send one job; return the worker's exit code for it (0 ok, 2 failed with a result file)."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            try:
                proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start(deadline)
                assert proc.stdin is not None
                proc.stdin.write(f"{job_file}\n")
                proc.stdin.flush()
                line = self._read_line(proc, deadline)
            except TimeoutError:
                self.close()
                raise ConversionError(f"the TFLite conversion did not finish within {timeout_s:g} s; stopped it",
                                      converter="convert_worker", hint=f"raise {TIMEOUT_ENV} if the model is just big"
                                      ) from None
            except (BrokenPipeError, OSError):
                line = None
            if line is None or not line.lstrip("-").isdigit():
                tail = self._tail()
                self.close()
                raise ConversionError(f"the converter process died during the conversion{tail}",
                                      converter="convert_worker",
                                      hint=f"the graph crashed a converter: try another route order with "
                                      f"{ROUTES_ENV}, or target 'cpu'")
            return int(line)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_child(proc)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


_PROCESSES: dict[Path, ConverterProcess] = {}


def converter_process(toolchain: Toolchain) -> ConverterProcess:
    """The process-wide converter child for ``toolchain`` (created on first use, closed at exit)."""
    if toolchain.python not in _PROCESSES:
        if not _PROCESSES:
            atexit.register(close_all)
        _PROCESSES[toolchain.python] = ConverterProcess(toolchain)
    return _PROCESSES[toolchain.python]


def close_all() -> None:
    for process in _PROCESSES.values():
        process.close()


def run_conversion(toolchain: Toolchain, job: ConvertJob, workdir: Path) -> ConvertResult:
    """Run ``job`` in ``toolchain``'s converter child, from a scratch folder under ``workdir``."""
    scratch = workdir / ".convert-tmp"
    scratch.mkdir(exist_ok=True)
    job_file = workdir / ".convert-job.json"
    job_file.write_text(json.dumps({**asdict(job), "scratch": str(scratch.resolve())}))
    started = time.perf_counter()
    try:
        converter_process(toolchain).run(job_file, timeout_s=timeout_s())
    finally:
        job_file.unlink(missing_ok=True)
        shutil.rmtree(scratch, ignore_errors=True)
    seconds = time.perf_counter() - started
    result_file = Path(job.result)
    result = json.loads(result_file.read_text()) if result_file.is_file() else None
    result_file.unlink(missing_ok=True)
    if result is None:
        raise CompileError("the TFLite converter wrote no result", hint="run the deploy again with EDGEOPT_DEBUG=1")
    if "error" in result:
        raise conversion_error(result, job)
    return ConvertResult(seconds, dict(result.get("timings", {})), dict(result.get("versions", {})),
                         tuple(result.get("notes", ())), str(result.get("route", "torch")),
                         tuple(result.get("attempts", ())), dict(result.get("signature", {})))


def _where(attempt: dict) -> str:
    node, op = attempt.get("node", ""), attempt.get("op", "")
    if node:
        return f" at node {node!r}" + (f" ({op})" if op else "")
    return f" at op {op}" if op else ""


def conversion_error(result: dict, job: ConvertJob) -> ConversionError:
    """The ``ConversionError`` for a failed job's result, with the hint its failure calls for."""
    attempts = list(result.get("attempts") or [result])
    tried = [a for a in attempts if a.get("kind") != "unavailable"]
    missing = [a["route"] for a in attempts if a.get("kind") == "unavailable"]
    route = result.get("route", "")
    stage = result.get("stage", "")
    if stage == "quantize":
        message = f"ONNX → TFLite conversion ({job.precision}): the quantizer failed on the model route {route!r} " \
                  f"built: {result['error']}"
        return ConversionError(message, converter="ai-edge-quantizer", route=route,
                               hint="try --precision int8-dynamic or fp32, or report it to ai-edge-quantizer")
    parts = [f"route {a['route']!r} ({CONVERTERS.get(a['route'], a['route'])}) stage {a['stage']}{_where(a)}: "
             f"{a['error']}" for a in tried]
    parts += [f"route {a['route']!r}: {a['error']}" for a in attempts if a.get("kind") == "unavailable"]
    first = tried[0] if tried else attempts[0]
    kinds = {a.get("kind", "") for a in tried}
    if "onnx2tf" in missing:
        hint = ("add the second route with `edgeopt edgetpu toolchain --create --with-onnx2tf` (TensorFlow in the "
                "converter environment only), or use target 'cpu'")
    elif "data-dependent-shape" in kinds:
        hint = "fix every input's shape with --input-shape NAME=1x...; a shape computed from data cannot be converted"
    elif "unsupported-op" in kinds:
        ops = sorted({a["op"] for a in tried if a.get("op")})
        hint = (f"{', '.join(ops) or 'this op'} is not supported by the LiteRT converters here; use target 'cpu' "
                "or replace the op before export")
    else:
        hint = f"choose another route order with {ROUTES_ENV}, or use target 'cpu'"
    return ConversionError(f"ONNX → TFLite conversion ({job.precision}) failed: " + "; ".join(parts),
                           converter=CONVERTERS.get(first.get("route", ""), first.get("route", "")),
                           route=first.get("route", ""), node=first.get("node", ""), op=first.get("op", ""),
                           hint=hint)
