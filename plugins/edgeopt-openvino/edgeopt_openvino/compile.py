"""Compile a plan for OpenVINO: check its passes here, build the IR in an isolated worker process.

Passes: ``ov-convert`` (ONNX → IR; ``compress_to_fp16`` stores weights in fp16; ``inference_precision``
``f32``/``bf16``/``f16`` fixes the arithmetic of the model's float parts, written beside the IR as
``inference.json`` so the artifact carries it, hashed, to every later load) and, for int8,
``nncf-quantize`` (``NncfInt8Options``; the plan's ``keep_fp32``, ``calibration`` and ``granularity``
fields are applied to it). Conversion and quantization run in a child process (the core's
``IsolatedWorker``) with a time limit (``EDGEOPT_ISOLATION_TIMEOUT_S``), so a crash or a hang in
OpenVINO or NNCF fails one candidate instead of the deploy. One worker is kept for the life of this
process and serves builds one at a time: importing NNCF (it pulls in torch) costs seconds, and a
deploy builds many int8 models (its plans, then the core's sensitivity probes and fallbacks). After
a crash or a timeout the next build starts a fresh worker. Each build runs from inside its own
output directory with a private temp folder there (``build_ir_in_worker``), so nothing is written
outside ``workdir``. ``EDGEOPT_ISOLATION=0`` runs builds in this process instead (for debuggers).
"""

from __future__ import annotations

import atexit
import json
import threading
from pathlib import Path

from edgeopt.plugin import (
    Compiled,
    CompileError,
    Dataset,
    Graph,
    IsolatedWorker,
    ModelError,
    PassSpec,
    Plan,
    batch_size_of,
    in_isolated_worker,
    isolation_enabled,
)

from edgeopt_openvino.build import MODEL_XML, BuildJob, BuildResult, build_ir, build_ir_in_worker
from edgeopt_openvino.devices import TargetSpec
from edgeopt_openvino.options import NncfInt8Options
from edgeopt_openvino.plan import CONVERT, QUANTIZE

BUILD_FUNCTION = "edgeopt_openvino.build:build_ir_in_worker"
_WHAT = "OpenVINO conversion / NNCF quantization"


class BuildWorker:
    """The process's build worker: started on first use, one build at a time, stopped at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._worker: IsolatedWorker | None = None

    def build(self, job: BuildJob) -> BuildResult:
        """Run ``job`` in the worker, or in this process when isolation is off or this process already is an
        isolated worker (the core runs every candidate build in one); crashes and timeouts become
        ``CompileError``."""
        if not isolation_enabled():
            return build_ir(job)
        if in_isolated_worker():  # the core's build worker already isolates this build: no second process
            return build_ir_in_worker(job)
        with self._lock:
            if self._worker is None:
                self._worker = IsolatedWorker()
                atexit.register(self.close)
            try:
                return self._worker.call(BUILD_FUNCTION, job, what=_WHAT)
            except ModelError as exc:  # the worker crashed or timed out: this plan failed, not the model
                raise CompileError(exc.message, hint="OpenVINO or NNCF failed hard on this plan; try another "
                                   "precision") from exc

    @property
    def starts(self) -> int:
        """Worker processes started so far (1 for a process whose builds never crashed)."""
        return self._worker.starts if self._worker is not None else 0

    def close(self) -> None:
        """Stop the worker (a later build starts a new one)."""
        with self._lock:
            if self._worker is not None:
                self._worker.close()
                self._worker = None


BUILDER = BuildWorker()


INFERENCE_FILE = "inference.json"
"""Beside the IR when the plan fixes the inference precision: ``{"INFERENCE_PRECISION_HINT": "bf16"}``."""
COMPUTE_CHOICES = ("f32", "bf16", "f16")


def parse_passes(plan: Plan) -> tuple[bool, NncfInt8Options | None, str | None]:
    """``(compress_to_fp16, int8 options or None, inference precision or None)`` from the plan's passes;
    ``CompileError`` if malformed."""
    if not plan.passes or plan.passes[0].name != CONVERT:
        raise CompileError(
            f"an OpenVINO plan starts with the {CONVERT!r} pass, got {[p.name for p in plan.passes]}",
            hint=f"passes: {CONVERT} [, {QUANTIZE}]",
        )
    params = dict(plan.passes[0].params)
    fp16 = params.pop("compress_to_fp16", plan.precision == "fp16")
    compute = params.pop("inference_precision", "bf16" if plan.precision == "bf16" else None)
    if params or not isinstance(fp16, bool) or compute not in (None, *COMPUTE_CHOICES):
        raise CompileError(f"invalid {CONVERT} parameters {dict(plan.passes[0].params)}",
                           hint=f"{CONVERT} takes compress_to_fp16 (true/false) and inference_precision "
                                f"({', '.join(COMPUTE_CHOICES)})")
    int8 = None
    for spec in plan.passes[1:]:
        if spec.name != QUANTIZE or int8 is not None:
            raise CompileError(f"unexpected pass {spec.name!r} in an OpenVINO plan",
                               hint=f"passes: {CONVERT} [, {QUANTIZE}]")
        int8 = NncfInt8Options.from_params(spec.params).for_plan(plan)
    if plan.precision == "int8" and int8 is None:
        raise CompileError(f"an int8 plan needs the {QUANTIZE!r} pass", hint=f"add PassSpec({QUANTIZE!r}, ...)")
    return fp16, int8, compute


def read_compute(compiled: Compiled) -> str | None:
    """The inference precision a compiled plan fixed (``inference.json`` beside the IR), or None."""
    if INFERENCE_FILE not in compiled.files:
        return None
    try:
        hint = json.loads((Path(compiled.directory) / INFERENCE_FILE).read_text())["INFERENCE_PRECISION_HINT"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CompileError(f"{INFERENCE_FILE} beside the IR is unreadable ({exc})",
                           hint="re-run `edgeopt deploy`") from exc
    if hint not in COMPUTE_CHOICES:
        raise CompileError(f"{INFERENCE_FILE} names an unknown inference precision {hint!r}",
                           hint="re-run `edgeopt deploy`")
    return hint


def compile_plan(graph: Graph, plan: Plan, spec: TargetSpec, calibration: Dataset, workdir: Path) -> Compiled:
    """Write ``workdir/model.xml`` + ``model.bin`` for ``plan``; never touch ``graph.path``."""
    fp16, int8, compute = parse_passes(plan)
    if int8 is not None and int8.target_device not in ("ANY", spec.ov_device):
        raise CompileError(f"int8 options target {int8.target_device}, the plan's target {spec.name!r} runs on "
                           f"{spec.ov_device}", hint=f"set target_device to {spec.ov_device!r}")
    batch = batch_size_of(graph.inputs)
    feeds = tuple(calibration.batches(batch)) if int8 is not None and len(calibration) else ()
    workdir = Path(workdir)
    job = BuildJob(str(graph.path), str(workdir), batch, fp16, int8, feeds)
    result = BUILDER.build(job)
    files = result.files
    convert = dict(result.convert)
    if compute is not None:
        (workdir / INFERENCE_FILE).write_text(json.dumps({"INFERENCE_PRECISION_HINT": compute}) + "\n")
        files, convert["inference_precision"] = (*files, INFERENCE_FILE), compute
    passes = [PassSpec(CONVERT, convert)]
    if result.quantize is not None:
        passes.append(PassSpec(QUANTIZE, {**result.quantize, "nncf": result.nncf}))
    kept = [f"kept in float: {name} -> {', '.join(ops)}" for name, ops in result.kept_fp32_ops.items()]
    return Compiled(
        directory=workdir,
        model_file=MODEL_XML,
        files=files,
        plan=plan,
        runtime=f"openvino {result.openvino}",
        passes=tuple(passes),
        notes=(*plan.notes, *result.notes, *kept),
    )
