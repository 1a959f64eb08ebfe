"""ONNX → ncnn with pnnx, in a subprocess with a timeout, writing only under the workdir.

pnnx names the converted blobs ``in0, in1, ...`` and ``out0, out1, ...`` in graph order; the names,
per-sample shapes and precision go into ``io.json`` beside ``model.ncnn.param``/``model.ncnn.bin``
so the runner needs nothing but the compiled directory. The result is loaded and run once on zeros
before it is returned, so a conversion that produced a model ncnn cannot run fails here, not later.
"""

from __future__ import annotations

import importlib.metadata as md
import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import onnx
from edgeopt.plugin import Compiled, CompileError, Graph, PassSpec, Plan, TensorSpec

PARAM_FILE = "model.ncnn.param"
BIN_FILE = "model.ncnn.bin"
IO_FILE = "io.json"
DEFAULT_TIMEOUT_S = 300.0
TIMEOUT_ENV = "EDGEOPT_NCNN_CONVERT_TIMEOUT_S"
PNNX_ENV = "EDGEOPT_PNNX"


def pnnx_executable() -> Path | None:
    """The pnnx binary: ``$EDGEOPT_PNNX``, else the one inside the installed ``pnnx`` wheel (not imported:
    importing pnnx imports torch)."""
    given = os.environ.get(PNNX_ENV)
    if given:
        path = Path(given)
        return path if path.is_file() and os.access(path, os.X_OK) else None
    spec = importlib.util.find_spec("pnnx")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / ("pnnx.exe" if os.name == "nt" else "pnnx")
        if path.is_file() and os.access(path, os.X_OK):
            return path
    return None


def convert_timeout_s() -> float:
    raw = os.environ.get(TIMEOUT_ENV, "")
    try:
        value = float(raw) if raw.strip() else DEFAULT_TIMEOUT_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise CompileError(f"{TIMEOUT_ENV}={raw!r} is not a positive number of seconds")
    return value


def _shape_arg(specs: tuple[TensorSpec, ...]) -> str:
    """pnnx's ``inputshape=[1,3,224,224]f32,[1,16]f32``: one sample, symbolic dims as 1."""
    shapes = (",".join(str(d if isinstance(d, int) and d > 0 else 1) for d in s.shape) for s in specs)
    return ",".join(f"[{shape}]f32" for shape in shapes)


def _tail(text: str, lines: int = 6) -> str:
    kept = [line for line in text.strip().splitlines() if line.strip()][-lines:]
    return " | ".join(kept) or "(no output)"


def _io(graph: Graph, *, fp16: bool) -> dict:
    def entry(spec: TensorSpec, blob: str) -> dict:
        sample = [d if isinstance(d, int) else 1 for d in spec.shape[1:]]
        return {"name": spec.name, "blob": blob, "sample_shape": sample}

    return {
        "inputs": [entry(s, f"in{i}") for i, s in enumerate(graph.inputs)],
        "outputs": [entry(s, f"out{i}") for i, s in enumerate(graph.outputs)],
        "fp16": fp16,
    }


def run_pnnx(model: Path, graph: Graph, *, fp16: bool, scratch: Path) -> tuple[Path, Path]:
    """Convert ``model`` in ``scratch`` (its cwd and temp dir); return the ncnn param and bin files."""
    exe = pnnx_executable()
    if exe is None:
        raise CompileError("the pnnx converter is not installed", hint=f"pip install --no-deps pnnx, or set {PNNX_ENV}")
    outputs = {key: scratch / name for key, name in (
        ("pnnxparam", "model.pnnx.param"), ("pnnxbin", "model.pnnx.bin"), ("pnnxpy", "model_pnnx.py"),
        ("pnnxonnx", "model.pnnx.onnx"), ("ncnnparam", PARAM_FILE), ("ncnnbin", BIN_FILE), ("ncnnpy", "model_ncnn.py"),
    )}
    args = [str(exe), str(model), f"inputshape={_shape_arg(graph.inputs)}", f"fp16={int(fp16)}", "device=cpu"]
    args += [f"{key}={path}" for key, path in outputs.items()]
    timeout = convert_timeout_s()
    env = {**os.environ, "TMPDIR": str(scratch), "TMP": str(scratch), "TEMP": str(scratch)}
    try:
        done = subprocess.run(args, cwd=scratch, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CompileError(
            f"pnnx did not finish converting {graph.path.name} within {timeout:g} s",
            hint=f"raise {TIMEOUT_ENV} for a very large model",
        ) from exc
    except OSError as exc:
        raise CompileError(f"cannot run pnnx at {exe}: {exc.strerror or exc}") from exc
    param, weights = outputs["ncnnparam"], outputs["ncnnbin"]
    if done.returncode != 0 or not param.is_file() or not weights.is_file():
        raise CompileError(
            f"pnnx could not convert {graph.path.name} to ncnn (exit {done.returncode}): "
            f"{_tail(done.stderr + done.stdout)}",
            hint="the model may use an op ncnn lacks; try another target (edgeopt targets)",
        )
    layers = [line.split()[0] for line in param.read_text().splitlines()[2:] if line.strip()]
    leftover = [layer for layer in layers if "." in layer or "::" in layer]
    if leftover:
        raise CompileError(
            f"pnnx left ops ncnn cannot run in {graph.path.name}: {', '.join(sorted(set(leftover)))}",
            hint="these ops have no ncnn layer; try another target (edgeopt targets)",
        )
    return param, weights


def compile_plan(graph: Graph, plan: Plan, workdir: Path) -> Compiled:
    """Convert ``graph`` for ``plan`` into ``workdir`` (param, bin, io.json); never touch ``graph.path``."""
    params = dict(plan.passes[0].params) if plan.passes else {}
    fp16 = bool(params.get("fp16", plan.precision == "fp16"))
    workdir.mkdir(parents=True, exist_ok=True)
    scratch = workdir / ".pnnx"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        model = scratch / "model.onnx"
        onnx.save(onnx.load(str(graph.path), load_external_data=True), str(model))
        param, weights = run_pnnx(model, graph, fp16=fp16, scratch=scratch)
        shutil.move(str(param), workdir / PARAM_FILE)
        shutil.move(str(weights), workdir / BIN_FILE)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    (workdir / IO_FILE).write_text(json.dumps(_io(graph, fp16=fp16), indent=2))
    from edgeopt_ncnn.runner import NcnnRunner

    NcnnRunner(workdir, threads=1).check()
    return Compiled(
        directory=workdir,
        model_file=PARAM_FILE,
        files=(PARAM_FILE, BIN_FILE, IO_FILE),
        plan=plan,
        runtime=f"ncnn {md.version('ncnn')} (pnnx {md.version('pnnx')})",
        passes=(PassSpec("pnnx", {"fp16": fp16, "inputshape": _shape_arg(graph.inputs)}),),
        notes=plan.notes,
    )
