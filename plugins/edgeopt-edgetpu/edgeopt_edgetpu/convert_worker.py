"""ONNX → TFLite in the converter toolchain: routes tried in order, each result checked, then ai-edge-quantizer.

Run as a script by the interpreter that has the converter packages (``toolchain.py`` finds it), never imported
by edgeopt itself at run time: it and its sibling modules (``SIBLINGS``, loaded by path) use only the standard
library, numpy, onnx, onnxruntime, torch and the converters, so it runs in a toolchain environment that does
not have edgeopt installed.

``python convert_worker.py JOB.json`` reads a job (``ConvertJob`` in ``convert.py``, as JSON), writes
``job["out"]`` (the ``.tflite``) and ``job["result"]`` (JSON: the route that built the model, every route
tried, the signature keys in graph order, seconds per step, versions, notes) and exits 0; on failure it writes
``{"error", "stage", "route", "node", "op", "kind", "attempts"}`` and exits 2.
``python convert_worker.py --serve`` imports the converters once and runs job after job (``serve``).

Routes (``job["routes"]``, in order; the first that builds a model that matches ONNX Runtime wins):

- ``torch`` (``route_torch.py``): onnx2torch, the module specialized to the static input shapes, litert-torch;
- ``onnx2tf`` (``route_onnx2tf.py``): onnx2tf and TensorFlow's converter, where the toolchain has them.

Each route's fp32 model is run on one sample (the first calibration sample) beside ONNX Runtime on the same
graph: a model whose outputs differ (shape, or more than ``MATCH_TOLERANCE`` of the output's range) counts as
that route failing, and the next route is tried. Quantized precisions are then written by ``litert_quantize``.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import time
import traceback
from pathlib import Path

ROUTES = ("torch", "onnx2tf")
SIBLINGS = ("convert_common", "torch_specialize", "route_torch", "route_onnx2tf", "litert_quantize")
MATCH_TOLERANCE = 1e-3
"""A route's fp32 model may differ from ONNX Runtime by this fraction of each output's largest magnitude."""


def load_siblings() -> None:
    """Load the sibling modules by path under their plain names (run as a script: no package, nothing of the
    plugin's folder on ``sys.path``)."""
    for name in SIBLINGS:
        if name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]


def _module(name: str):  # noqa: ANN202 - a module
    if __package__:
        return importlib.import_module(f"{__package__}.{name}")
    load_siblings()
    return sys.modules[name]


def prepare_for_onnx2torch(model):  # noqa: ANN001, ANN201 - see convert_common.prepare_for_onnx2torch
    return _module("convert_common").prepare_for_onnx2torch(model)


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("torch", "onnx2torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert", "litert-converter",
                 "tensorflow", "onnx2tf"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


def _sample(job: dict) -> tuple:
    """One input sample per graph input, in graph order: the first calibration sample, else zeros for integer
    inputs and a fixed normal draw for float ones."""
    import numpy as np

    arrays = np.load(job["calibration"]) if job.get("calibration") else None
    rng = np.random.default_rng(0)
    sample = []
    for spec in job["inputs"]:
        if arrays is not None and spec["name"] in arrays:
            sample.append(np.ascontiguousarray(arrays[spec["name"]][:1], dtype=spec["dtype"]))
        elif np.dtype(spec["dtype"]).kind in "iub":
            sample.append(np.zeros(spec["shape"], dtype=spec["dtype"]))
        else:
            sample.append(rng.standard_normal(spec["shape"]).astype(spec["dtype"]))
    return tuple(sample)


def _sanitized(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_]", "_", name)


def _keys_in_order(keys: list[str], names: list[str]) -> list[str] | None:
    """``keys`` (a signature's) in the order of the graph's ``names``: by name, by sanitized name, else by the
    numeric suffix litert-torch gives (``args_0``, ``output_0``...). None when the counts differ."""
    if len(keys) != len(names):
        return None
    for key_of in (lambda k: k, _sanitized):
        table = {key_of(k): k for k in keys}
        if all(key_of(n) in table for n in names):
            return [table[key_of(n)] for n in names]

    def position(key: str) -> tuple[int, str]:
        tail = key.rsplit("_", 1)[-1]
        return (int(tail), key) if tail.isdigit() else (1 << 30, key)

    return sorted(keys, key=position)


def signature_of(path: Path, inputs: list[str], outputs: list[str]) -> dict:
    """``{"name", "inputs", "outputs"}``: the model's only signature, its keys in graph order."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_path=str(path)).get_signature_list()
    name = next(iter(signatures))
    ins = _keys_in_order(list(signatures[name]["inputs"]), inputs)
    outs = _keys_in_order(list(signatures[name]["outputs"]), outputs)
    if ins is None or outs is None:
        raise ValueError(f"the converted model has inputs {list(signatures[name]['inputs'])} and outputs "
                         f"{list(signatures[name]['outputs'])}; the graph {inputs} and {outputs}")
    return {"name": name, "inputs": ins, "outputs": outs}


_CHANNELS_LAST = {3: (0, 2, 1), 4: (0, 3, 1, 2), 5: (0, 4, 1, 2, 3)}
"""Channels-last → channels-first, per rank: what a route that keeps TensorFlow's layout needs undone."""


def mismatch(path: Path, onnx_path: str, sample: tuple, signature: dict, inputs: list[str]) -> str | None:
    """How the fp32 model at ``path`` differs from ONNX Runtime on ``sample``, or None when it matches.

    An output that is the reference transposed channels-last matches too; its permutation back is stored in
    ``signature["output_perms"]`` (one list or None per output) for the runner to apply."""
    import numpy as np
    import onnxruntime as ort
    from ai_edge_litert.interpreter import Interpreter

    session = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    reference = session.run(None, dict(zip(inputs, sample, strict=True)))
    runner = Interpreter(model_path=str(path)).get_signature_runner(signature["name"])
    types = {k: d["dtype"] for k, d in runner.get_input_details().items()}
    got = runner(**{k: a.astype(types[k]) for k, a in zip(signature["inputs"], sample, strict=True)})
    perms: list[list[int] | None] = []
    for key, ref, name in zip(signature["outputs"], reference, [o.name for o in session.get_outputs()], strict=True):
        out, perm = np.asarray(got[key]), None
        back = _CHANNELS_LAST.get(out.ndim)
        if out.shape != ref.shape and back and np.transpose(out, back).shape == ref.shape:
            out, perm = np.transpose(out, back), list(back)
        if out.shape != ref.shape:
            return f"output {name!r} has shape {list(out.shape)}, ONNX Runtime gives {list(ref.shape)}"
        ref64, out64 = ref.astype(np.float64), out.astype(np.float64)
        scale = max(1.0, float(np.max(np.abs(ref64)))) if ref64.size else 1.0
        err = float(np.max(np.abs(out64 - ref64))) if ref64.size else 0.0
        if not err <= MATCH_TOLERANCE * scale:
            return f"output {name!r} differs from ONNX Runtime by {err:.3g} (largest magnitude {scale:.3g})"
        perms.append(perm)
    if any(perms):
        signature["output_perms"] = perms
    return None


class ConversionFailed(Exception):
    """Every route failed; ``attempts`` holds each route's failure (``RouteFailure.to_dict``)."""

    def __init__(self, attempts: list[dict]) -> None:
        super().__init__(attempts[0]["error"] if attempts else "no route to try")
        self.attempts = attempts


def build_float(job: dict, out: Path, notes: list[str], timings: dict) -> tuple[str, dict, list[dict]]:
    """Try the job's routes in order; return ``(route, signature, attempts)`` for the first whose fp32 model
    matches ONNX Runtime, or raise ``ConversionFailed``."""
    common = _module("convert_common")
    inputs = [spec["name"] for spec in job["inputs"]]
    outputs = list(job.get("outputs") or [])
    sample = _sample(job)
    attempts: list[dict] = []
    for route in job.get("routes") or ROUTES:
        if route not in ROUTES:
            attempts.append({"route": route, "stage": "setup", "error": f"unknown route {route!r}", "node": "",
                             "op": "", "kind": "unavailable"})
            continue
        module = _module(f"route_{route}")
        why = module.available()
        if why:
            attempts.append({"route": route, "stage": "setup", "error": why, "node": "", "op": "",
                             "kind": "unavailable"})
            continue
        started, route_notes = time.perf_counter(), []
        try:
            module.build(job["onnx"], out, sample, route_notes)
            if not outputs:
                import onnx

                outputs = [o.name for o in onnx.load(job["onnx"], load_external_data=False).graph.output]
            signature = signature_of(out, inputs, outputs)
            problem = mismatch(out, job["onnx"], sample, signature, inputs)
            if problem:
                raise common.RouteFailure("check", problem, kind="mismatch")
        except common.RouteFailure as failure:
            attempts.append(failure.to_dict(route))
            out.unlink(missing_ok=True)
            continue
        except Exception as exc:  # a converter bug outside the stages a route names
            text = str(exc).strip()
            first = text.splitlines()[0][:400] if text else ""
            attempts.append(common.RouteFailure(route, f"{type(exc).__name__}: {first}").to_dict(route))
            out.unlink(missing_ok=True)
            continue
        timings[f"{route}_s"] = time.perf_counter() - started
        notes.extend(route_notes)
        return route, signature, attempts
    raise ConversionFailed(attempts)


def convert(job: dict) -> dict:
    """Run one job; return the result dict (``ConversionFailed`` or an exception with ``stage`` set)."""
    timings: dict[str, float] = {}
    notes: list[str] = []
    precision = job["precision"]
    float_path = Path(job["out"]).with_suffix(".fp32.tflite") if precision != "fp32" else Path(job["out"])
    route, signature, attempts = build_float(job, float_path, notes, timings)
    if attempts:
        notes.append(f"built by route {route!r} after " + "; ".join(
            f"route {a['route']!r} failed ({a['stage']}: {a['error'][:160]})" for a in attempts))
    if precision != "fp32":
        try:
            started = time.perf_counter()
            samples = _module("litert_quantize").quantize(
                float_path, Path(job["out"]), precision=precision, granularity=job.get("granularity", "per-channel"),
                calibration=job.get("calibration", ""), signature=signature,
                names=[spec["name"] for spec in job["inputs"]])
            timings["quantize_s"] = time.perf_counter() - started
            if samples:
                timings["calibration_samples"] = float(samples)
        except Exception as exc:
            exc.stage, exc.route = "quantize", route  # type: ignore[attr-defined]
            raise
        finally:
            float_path.unlink(missing_ok=True)
    return {"route": route, "attempts": attempts, "signature": signature, "timings": timings,
            "versions": _versions(), "notes": notes}


def failure_result(exc: BaseException) -> dict:
    """The result file's content for a failed job."""
    if isinstance(exc, ConversionFailed):
        first = next((a for a in exc.attempts if a.get("kind") != "unavailable"), exc.attempts[0] if exc.attempts
                     else {"route": "", "stage": "setup", "error": "no route to try", "node": "", "op": "", "kind": ""})
        return {**first, "attempts": exc.attempts}
    text = str(exc).strip()
    return {"error": f"{type(exc).__name__}: {text.splitlines()[0][:500] if text else ''}",
            "stage": getattr(exc, "stage", "setup"), "route": getattr(exc, "route", ""), "node": "", "op": "",
            "kind": "", "attempts": [], "traceback": traceback.format_exc()[-4000:]}


def run_job(job_file: str) -> int:
    """Run the job in ``job_file`` from inside its ``scratch`` folder (cwd and temp dir); 0 ok, 2 failed."""
    import os
    import tempfile

    job = json.loads(Path(job_file).read_text())
    result_path = Path(job["result"])
    scratch = job.get("scratch")
    if scratch:
        os.chdir(scratch)
        os.environ.update(TMPDIR=scratch, TMP=scratch, TEMP=scratch)
        tempfile.tempdir = scratch
    try:
        result = convert(job)
    except Exception as exc:
        result_path.write_text(json.dumps(failure_result(exc)))
        return 2
    finally:
        if scratch:
            os.chdir("/")
    result_path.write_text(json.dumps(result))
    return 0


def serve() -> None:
    """Serve jobs until stdin closes: one job-file path per line in, one exit code per line out.

    Replies go to the original stdout; everything else printed (converters' progress lines, native logs) is
    sent to stderr, so it never mixes into the replies. The torch route's converters are imported once, up front
    (onnx2tf, when a job needs it, on first use).
    """
    import os

    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    load_siblings()
    sys.modules["route_torch"].torchvision_placeholder()
    import ai_edge_quantizer  # noqa: F401
    import litert_torch  # noqa: F401
    import onnx2torch  # noqa: F401

    reply.write("ready\n")
    for line in sys.stdin:
        path = line.strip()
        if not path:
            break
        reply.write(f"{run_job(path)}\n")


def main(argv: list[str]) -> int:
    if len(argv) > 1 and argv[1] == "--serve":
        serve()
        return 0
    return run_job(argv[1])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
