"""Compile a plan: convert in the toolchain subprocess, then (``edgetpu``) judge and compile for the Edge TPU.

Files written under ``workdir`` and shipped in the artifact:

- ``model.tflite``: the LiteRT model (``model_file``);
- ``io.json``: the graph's input/output names, shapes and dtypes, the built batch, and the converted model's
  signature keys in graph order (with any output permutation the route left), the runner's contract;
- ``edgetpu``: ``edgetpu_report.json`` (the compatibility report, the ``edgetpu_compiler`` result or why
  it did not run, the Coral latency/energy estimate) and, when the compiler ran,
  ``model_edgetpu.tflite`` + ``model_edgetpu.log``.

An ``edgetpu`` plan converts the graph after ``edgetpu_rewrite.edgetpu_activations`` (hard-swish and
hard-sigmoid in ops the Edge TPU maps), written beside the candidate; the manifest's convert pass records
the route that built the model and any routes that failed first. An ``edgetpu`` plan is refused
(``CompileError`` carrying the report's summary) when the model is not full-integer or not one op would be
mapped: there is nothing to compile for the Edge TPU then.
"""

from __future__ import annotations

import json
from pathlib import Path

from edgeopt.plugin import (
    Compiled,
    CompileError,
    Dataset,
    DeviceProfile,
    Graph,
    PassSpec,
    Plan,
    UnsupportedModelError,
    batch_size_of,
    default_profile_for,
    host_profile,
    inspect_model,
    load_model,
)

from edgeopt_edgetpu import compiler
from edgeopt_edgetpu.compat import REPORT_FILE, CompatReport, analyze_file
from edgeopt_edgetpu.convert import (
    CALIBRATION_SAMPLES,
    CONVERTERS,
    ConvertJob,
    input_specs,
    routes,
    run_conversion,
    write_calibration,
)
from edgeopt_edgetpu.devices import coral_present
from edgeopt_edgetpu.edgetpu_rewrite import edgetpu_activations
from edgeopt_edgetpu.estimate import estimate
from edgeopt_edgetpu.plan import CONVERT, EDGETPU_COMPILE, QUANTIZE, RECIPES
from edgeopt_edgetpu.runner import IO_FILE, runtime_version
from edgeopt_edgetpu.toolchain import require_toolchain

MODEL_FILE = "model.tflite"


def parse_plan(plan: Plan) -> tuple[str, int | None]:
    """``(precision, Edge TPU runtime or None)`` from the plan's passes; ``CompileError`` when malformed."""
    names = [p.name for p in plan.passes]
    expected = [CONVERT] + ([QUANTIZE] if plan.precision != "fp32" else [])
    if names[: len(expected)] != expected or any(n not in (CONVERT, QUANTIZE, EDGETPU_COMPILE) for n in names):
        raise CompileError(f"unexpected passes {names} for a {plan.precision} LiteRT plan",
                           hint=f"passes: {CONVERT} [, {QUANTIZE}] [, {EDGETPU_COMPILE}]")
    if plan.precision != "fp32" and plan.passes[1].params.get("recipe") != RECIPES.get(plan.precision):
        raise CompileError(f"precision {plan.precision!r} needs recipe {RECIPES.get(plan.precision)!r}",
                           hint="plan it with edgeopt_plan")
    runtime = None
    if EDGETPU_COMPILE in names:
        runtime = int(plan.passes[names.index(EDGETPU_COMPILE)].params.get("runtime", 14))
    return plan.precision, runtime


def _io(graph: Graph, signature: dict) -> dict:
    return {
        "batch": batch_size_of(graph.inputs),
        "inputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in graph.inputs],
        "outputs": [{"name": s.name, "shape": list(s.shape), "dtype": s.dtype} for s in graph.outputs],
        "signature": signature,
    }


def _source(graph: Graph, workdir: Path, edgetpu: bool) -> tuple[Path, list[str]]:
    """The ONNX file to convert and notes: the graph itself, or for the Edge TPU its rewritten copy."""
    if not edgetpu:
        return Path(graph.path).resolve(), []
    model, done = edgetpu_activations(load_model(graph))
    if not done:
        return Path(graph.path).resolve(), []
    path = workdir / ".edgetpu-source.onnx"
    path.write_bytes(model.SerializeToString())
    return path, ["for the Edge TPU, rewritten with mapped ops (MUL, ADD+RELU6): "
                  + ", ".join(f"{n} {k}" for k, n in sorted(done.items()))]


def compile_plan(graph: Graph, plan: Plan, device: DeviceProfile, calibration: Dataset, workdir: Path) -> Compiled:
    """Build ``plan`` under ``workdir``; never touches ``graph.path``."""
    precision, runtime = parse_plan(plan)
    if plan.keep_fp32:
        raise CompileError("LiteRT plans cannot keep ONNX nodes in fp32: the quantizer sees TFLite ops, not the "
                           "graph's node names" + (" (and the Edge TPU needs every op in int8)" if runtime else ""),
                           hint="deploy another precision, or raise --max-drop")
    if plan.calibration not in ("", "minmax"):
        raise CompileError(f"calibration {plan.calibration!r} is not offered by ai-edge-quantizer (min/max only)",
                           hint="leave the calibration choice to the plan")
    if plan.granularity not in ("", "per-channel", "per-tensor") or (plan.granularity and precision != "int8"):
        raise CompileError(f"weight granularity {plan.granularity!r} does not apply to a {precision} LiteRT plan",
                           hint="per-channel or per-tensor, for int8 only")
    if runtime is not None and batch_size_of(graph.inputs) != 1:
        raise CompileError(f"the Edge TPU takes batch 1; the graph is built for batch {batch_size_of(graph.inputs)}",
                           hint="deploy with --input-shape NAME=1x...")
    toolchain = require_toolchain()
    workdir = Path(workdir).resolve()  # the converter child works from its own folder: absolute paths only
    workdir.mkdir(parents=True, exist_ok=True)
    specs = input_specs(graph)
    order = routes()
    calib_file = workdir / ".calibration.npz"
    samples = write_calibration(calibration, graph, calib_file, limit=CALIBRATION_SAMPLES if precision == "int8" else 1)
    if precision == "int8" and samples == 0:
        raise CompileError("int8 needs calibration samples and none were given", hint="give --calib data")
    source, rewrite_notes = _source(graph, workdir, runtime is not None)
    job = ConvertJob(str(source), str(workdir / MODEL_FILE), str(workdir / ".convert-result.json"),
                     precision, specs, str(calib_file) if samples else "", plan.granularity or "per-channel",
                     outputs=tuple(s.name for s in graph.outputs), routes=order)
    try:
        result = run_conversion(toolchain, job, workdir)
    finally:
        calib_file.unlink(missing_ok=True)
        if source != Path(graph.path).resolve():
            source.unlink(missing_ok=True)
    (workdir / IO_FILE).write_text(json.dumps(_io(graph, result.signature), indent=1))
    files = [MODEL_FILE, IO_FILE]
    params = {CONVERT: {"converter": CONVERTERS.get(result.route, result.route), "route": result.route,
                        "routes": list(order), "failed_routes": [a["route"] for a in result.attempts],
                        "toolchain": toolchain.source, "seconds": round(result.seconds, 2),
                        **{k: v for k, v in result.versions.items()}}}
    if precision != "fp32":
        params[QUANTIZE] = {**plan.passes[1].params, "calibration_samples": samples}
        if precision == "int8":
            params[QUANTIZE].update(granularity=plan.granularity or "per-channel", calibration="minmax")
    notes = [*plan.notes, *rewrite_notes, *result.notes,
             f"converted by route {result.route!r} ({CONVERTERS.get(result.route, result.route)}) in "
             f"{result.seconds:.1f} s ({toolchain.source} toolchain: {toolchain.python})"]
    if runtime is not None:
        report = analyze_file(workdir / MODEL_FILE, runtime=runtime, onnx_flops=_onnx_flops(graph))
        if not report.compilable:
            raise UnsupportedModelError(f"not compilable for the Edge TPU: {report.summary()}",
                                        hint="see `edgeopt edgetpu check` for the per-op report; "
                                        "use target 'tflite' to run it with LiteRT on a CPU")
        section, extra = _edgetpu(report, workdir, device)
        (workdir / REPORT_FILE).write_text(json.dumps(section, indent=1, default=float))
        files += [REPORT_FILE, *extra]
        params[EDGETPU_COMPILE] = {"runtime": runtime, "compiler": section["compiler"]["status"]}
        notes += [report.summary(), section["compiler"]["message"], _estimate_line(section["estimate"])]
    passes = tuple(PassSpec(p.name, params.get(p.name, dict(p.params))) for p in plan.passes)
    return Compiled(directory=workdir, model_file=MODEL_FILE, files=tuple(files), plan=plan,
                    runtime=runtime_version(), passes=passes, notes=tuple(notes))


def _onnx_flops(graph: Graph) -> float | None:
    try:
        return float(inspect_model(load_model(graph)).flops)
    except Exception:  # FLOPs are a reference figure only; a graph they cannot be counted for still compiles
        return None


def _edgetpu(report: CompatReport, workdir: Path, device: DeviceProfile) -> tuple[dict, list[str]]:
    """The artifact's Edge TPU section and the extra files the compiler wrote."""
    coral = device if device.kind == "tpu" else default_profile_for("tpu")
    section: dict = {"compatibility": report.to_dict()}
    extra: list[str] = []
    if compiler.compiler_path() is None:
        section["compiler"] = {"status": "not-run", "message": f"{compiler.COMPILER} is not on PATH: the artifact "
                               f"holds the compile-ready int8 {MODEL_FILE}; {compiler.INSTALL_HINT}"}
    else:
        compiled, parsed = compiler.run_compiler(workdir / MODEL_FILE, workdir)
        extra = [compiled.name] + ([f"{compiled.stem}.log"] if (workdir / f"{compiled.stem}.log").is_file() else [])
        section["compiler"] = {"status": "compiled", "report": parsed.__dict__,
                               "message": f"{compiler.COMPILER} {parsed.version}: {parsed.edgetpu_ops} ops on the "
                               f"Edge TPU, {parsed.cpu_ops} on the CPU, {parsed.on_chip_bytes or 0:.0f} B on-chip"}
    attached = bool(coral_present()) and section["compiler"]["status"] == "compiled"
    section["estimate"] = estimate(report, coral, host_profile(), attached=attached).to_dict()
    return section, extra


def _estimate_line(est: dict) -> str:
    return (f"Coral estimate on {est['device']} ({est['method']}, a lower bound): {est['latency_s'] * 1e6:.2f} µs "
            f"(Edge TPU {est['edgetpu_s'] * 1e6:.2f} µs + CPU {est['cpu_s'] * 1e6:.2f} µs), "
            f"{est['joules'] * 1e6:.3f} µJ per inference")
