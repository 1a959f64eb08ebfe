"""ONNX → TFLite in the converter toolchain: onnx2torch, litert-torch, ai-edge-quantizer. No TensorFlow.

Run as a script by the interpreter that has the converter packages (``toolchain.py`` finds it), never
imported by edgeopt itself: it uses only the standard library, numpy, onnx, torch and the converters,
so it runs in a toolchain environment that does not have edgeopt installed.

``python convert_worker.py JOB.json`` reads a job (``ConvertJob`` in ``convert.py``, as JSON), writes
``job["out"]`` (the ``.tflite``) and ``job["result"]`` (JSON: seconds per step, versions, notes) and
exits 0; on failure it writes ``{"error": ..., "stage": ...}`` to the result file and exits 2.
``python convert_worker.py --serve`` imports the converters once and runs job after job (``serve``).

Steps: the ONNX graph becomes a ``torch.nn.Module`` (onnx2torch), litert-torch lowers it to an fp32
``.tflite`` with the graph's exact static input shapes, and for quantized precisions
ai-edge-quantizer rewrites that model:

- ``int8``: ``static_wi8_ai8`` recipe (int8 per-channel weights, int8 activations, int8 model I/O),
  activation ranges the global min/max over ``job["calibration"]`` (an ``.npz`` holding one array per input);
  ``job["granularity"] == "per-tensor"`` gives one weight scale per tensor instead;
- ``int8-dynamic``: ``dynamic_wi8_afp32`` (int8 weights, activations quantized on the fly);
- ``fp16``: fp16 weights (``FLOAT_CASTING``, 16 bits) dequantized to fp32 at load time.

onnx2torch imports torchvision for its NonMaxSuppression/RoiAlign converters only. Where torchvision
cannot be imported (PyPI's Linux torchvision wheels are CUDA builds that do not load beside a CPU-only
torch), a placeholder module is registered whose functions raise, so every other op still converts and
a graph that does use those two ops fails with a message naming torchvision.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import types
from pathlib import Path

STAGES = ("onnx2torch", "litert-torch", "quantize")


_PLACEHOLDER: list[str] = []


def _torchvision_placeholder() -> str | None:
    """Register a placeholder ``torchvision`` when the real one does not import; return why, or None."""
    if _PLACEHOLDER:
        return _PLACEHOLDER[0]
    try:
        import torchvision  # noqa: F401
    except Exception as exc:  # broken binary build (missing CUDA libraries) or not installed
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}"

        def unavailable(*args: object, **kwargs: object) -> None:
            raise RuntimeError(f"this graph needs torchvision (NonMaxSuppression/RoiAlign), which does not import "
                               f"here ({reason})")

        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        tv, ops = types.ModuleType("torchvision"), types.ModuleType("torchvision.ops")
        for fn in ("nms", "batched_nms", "roi_align", "roi_pool", "deform_conv2d", "box_convert"):
            setattr(ops, fn, unavailable)
        tv.ops = ops  # type: ignore[attr-defined]
        sys.modules["torchvision"], sys.modules["torchvision.ops"] = tv, ops
        _PLACEHOLDER.append(reason)
        return reason
    return None


ONNX2TORCH_OPSET = 17
"""The newest default-domain opset onnx2torch 1.5 converts completely (it lacks e.g. ReduceMean-18)."""
_REDUCE_OPS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum",
               "ReduceLogSumExp", "ReduceSumSquare")


def prepare_for_onnx2torch(model):  # noqa: ANN001, ANN201 - onnx.ModelProto
    """Make the graph convertible by onnx2torch without changing what any node computes.

    Reshape's ``allowzero=1`` (which onnx2torch refuses) is dropped where the constant shape has no 0.
    For opset >= 18: Reduce ops whose ``axes`` input is an initializer get it back as an attribute (and
    lose ``noop_with_empty_axes=0``, the old behaviour); then, only if every node's schema is the same
    at 17 as at the graph's opset, the graph is declared opset 17. Returns ``(model, note or None)``;
    the model on disk is never changed.
    """
    import onnx
    from onnx import defs, helper, numpy_helper

    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:  # allowzero=1 (torch's exporter) means nothing when no dim of the shape is 0
        if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in inits:
            allow = next((a for a in node.attribute if a.name == "allowzero"), None)
            if allow is not None and allow.i == 1 and 0 not in numpy_helper.to_array(inits[node.input[1]]).tolist():
                node.attribute.remove(allow)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset <= ONNX2TORCH_OPSET:
        return model, None
    for node in model.graph.node:
        noop = next((a.i for a in node.attribute if a.name == "noop_with_empty_axes"), 0)
        if node.op_type not in _REDUCE_OPS or noop:
            continue
        if len(node.input) > 1 and node.input[1] in inits:
            axes = [int(a) for a in numpy_helper.to_array(inits[node.input[1]]).reshape(-1)]
            del node.input[1]
            node.attribute.append(helper.make_attribute("axes", axes))
        elif len(node.input) > 1 and node.input[1]:
            continue  # computed axes: leave it, the schema check below keeps the opset
        kept = [a for a in node.attribute if a.name != "noop_with_empty_axes"]
        del node.attribute[:]
        node.attribute.extend(kept)

    def since(op: str, version: int) -> int:
        return defs.get_schema(op, version).since_version

    def unchanged(node) -> bool:  # noqa: ANN001
        if node.domain not in ("", "ai.onnx"):
            return True
        if node.op_type in _REDUCE_OPS:
            return (len(node.input) < 2 or not node.input[1]) and not any(
                a.name == "noop_with_empty_axes" for a in node.attribute)
        return since(node.op_type, opset) == since(node.op_type, ONNX2TORCH_OPSET)

    changed = sorted({n.op_type for n in model.graph.node if not unchanged(n)})
    if changed:
        return model, f"graph kept at opset {opset} for onnx2torch: {', '.join(changed)} changed after opset 17"
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            entry.version = ONNX2TORCH_OPSET
    return model, f"graph expressed at opset {ONNX2TORCH_OPSET} for onnx2torch (from {opset}; no node changes meaning)"


def _constant(module, node):  # noqa: ANN001, ANN202 - torch.fx objects
    """The tensor a ``get_attr`` node reads, or None for anything computed."""
    if getattr(node, "op", None) != "get_attr":
        return None
    value = module
    for part in node.target.split("."):
        value = getattr(value, part)
    return value


def freeze_constant_shapes(module, sample: tuple):  # noqa: ANN001, ANN201 - torch.fx.GraphModule
    """Turn onnx2torch's Reshape modules whose shape is a constant into ``torch.reshape`` with literal dims.

    onnx2torch reads a Reshape's shape tensor at run time, which torch.export (inside litert-torch) sees as a
    data-dependent size and refuses. With static input shapes the target shape is known: ``0`` entries are
    resolved against the input's propagated shape, ``-1`` is left for torch. Returns how many were frozen.
    """
    import torch
    from torch.fx.passes.shape_prop import ShapeProp

    ShapeProp(module).propagate(*sample)
    frozen = 0
    for node in list(module.graph.nodes):
        if node.op != "call_module" or type(module.get_submodule(node.target)).__name__ != "OnnxReshape":
            continue
        shape = _constant(module, node.args[1]) if len(node.args) == 2 else None
        meta = node.args[0].meta.get("tensor_meta") if hasattr(node.args[0], "meta") else None
        if shape is None or meta is None:
            continue
        dims = tuple(int(meta.shape[i]) if int(d) == 0 else int(d) for i, d in enumerate(shape.tolist()))
        with module.graph.inserting_after(node):
            replacement = module.graph.call_function(torch.reshape, (node.args[0], dims))
        node.replace_all_uses_with(replacement)
        module.graph.erase_node(node)
        frozen += 1
    if frozen:
        module.graph.eliminate_dead_code()
        module.recompile()
    return frozen


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for dist in ("torch", "onnx2torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert", "litert-converter"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return found


def _recipe(precision: str, granularity: str = "per-channel"):  # noqa: ANN202 - ai-edge-quantizer's recipe type
    from ai_edge_quantizer import qtyping, recipe, recipe_manager
    from ai_edge_quantizer.algorithm_manager import AlgorithmName

    if precision == "int8" and granularity == "per-tensor":
        manager = recipe_manager.RecipeManager()
        manager.add_static_config(".*", recipe.TFLOperationName.ALL_SUPPORTED, 8, 8,
                                  weight_granularity=qtyping.QuantGranularity.TENSORWISE)
        return manager.get_quantization_recipe()
    if precision == "int8":
        return recipe.static_wi8_ai8()
    if precision == "int8-dynamic":
        return recipe.dynamic_wi8_afp32()
    if precision == "fp16":
        manager = recipe_manager.RecipeManager()
        manager.add_weight_only_config(".*", recipe.TFLOperationName.ALL_SUPPORTED, 16,
                                       algorithm_key=AlgorithmName.FLOAT_CASTING)
        return manager.get_quantization_recipe()
    raise ValueError(f"no quantization recipe for precision {precision!r}")


def convert(job: dict) -> dict:
    """Run one job; return the result dict (raises with ``stage`` set on the exception)."""
    import numpy as np
    import onnx
    import torch

    timings: dict[str, float] = {}
    notes: list[str] = []
    stage = STAGES[0]
    try:
        placeholder = _torchvision_placeholder()
        if placeholder:
            notes.append(f"torchvision not importable ({placeholder}); placeholder used for onnx2torch")
        from onnx2torch import convert as onnx_to_torch

        started = time.perf_counter()
        model, lowered = prepare_for_onnx2torch(onnx.load(job["onnx"]))
        if lowered:
            notes.append(lowered)
        module = onnx_to_torch(model).eval()
        timings["onnx2torch_s"] = time.perf_counter() - started

        stage = STAGES[1]
        import litert_torch

        names = [spec["name"] for spec in job["inputs"]]
        rng = np.random.default_rng(0)
        sample = tuple(torch.from_numpy(rng.standard_normal(spec["shape"]).astype(spec["dtype"]))
                       for spec in job["inputs"])
        frozen = freeze_constant_shapes(module, sample)
        if frozen:
            notes.append(f"{frozen} Reshape(s) with constant shapes given literal dims for torch.export")
        started = time.perf_counter()
        with torch.no_grad():
            edge = litert_torch.convert(module, sample)
        float_path = Path(job["out"]).with_suffix(".fp32.tflite") if job["precision"] != "fp32" else Path(job["out"])
        edge.export(str(float_path))
        timings["litert_torch_s"] = time.perf_counter() - started

        if job["precision"] != "fp32":
            stage = STAGES[2]
            from ai_edge_quantizer import quantizer

            started = time.perf_counter()
            qt = quantizer.Quantizer(str(float_path), _recipe(job["precision"], job.get("granularity", "per-channel")))
            calibration = None
            if qt.need_calibration:
                arrays = np.load(job["calibration"])
                signature = _signature(float_path)
                keys = signature["inputs"]
                if len(keys) != len(names):
                    raise ValueError(f"the converted model has inputs {keys}, the graph {names}")
                samples = len(arrays[names[0]])
                feeds = [{key: arrays[name][i : i + 1] for key, name in zip(keys, names, strict=True)}
                         for i in range(samples)]
                calibration = _calibrate(float_path, _recipe(job["precision"], job.get("granularity", "per-channel")),
                                         {signature["name"]: feeds})
                timings["calibration_samples"] = float(samples)
            result = qt.quantize(calibration)
            result.export_model(job["out"], overwrite=True)
            timings["quantize_s"] = time.perf_counter() - started
            float_path.unlink()
        return {"timings": timings, "versions": _versions(), "notes": notes}
    except Exception as exc:
        exc.stage = stage  # type: ignore[attr-defined]
        raise


def _calibrate(float_path: Path, recipe: object, data: dict) -> dict:
    """Activation ranges as the global min/max over every sample (ai-edge-quantizer's ``Quantizer.calibrate``
    keeps a moving average of per-sample ranges instead, which clips the extremes of in-range data)."""
    from ai_edge_quantizer import calibrator, recipe_manager
    from ai_edge_quantizer.utils import qsv_utils

    manager = recipe_manager.RecipeManager()
    manager.load_quantization_recipe(recipe)
    calib = calibrator.Calibrator(float_path.read_bytes(), num_threads=1, qsv_update_func=qsv_utils.min_max_update)
    calib.calibrate(data, manager)
    return calib.get_model_qsvs()


def _signature(path: Path) -> dict:
    """``{"name": signature key, "inputs": [input keys in order]}`` of a converted model's only signature."""
    from ai_edge_litert.interpreter import Interpreter

    signatures = Interpreter(model_path=str(path)).get_signature_list()
    name = next(iter(signatures))
    return {"name": name, "inputs": list(signatures[name]["inputs"])}


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
        text = str(exc).strip()
        result_path.write_text(json.dumps({
            "error": f"{type(exc).__name__}: {text.splitlines()[0][:500] if text else ''}",
            "stage": getattr(exc, "stage", "setup"),
            "traceback": traceback.format_exc()[-4000:],
        }))
        return 2
    finally:
        if scratch:
            os.chdir("/")
    result_path.write_text(json.dumps(result))
    return 0


def serve() -> None:
    """Serve jobs until stdin closes: one job-file path per line in, one exit code per line out.

    Replies go to the original stdout; everything else printed (litert-torch's progress lines, native
    logs) is sent to stderr, so it never mixes into the replies. The converters are imported once, up front.
    """
    import os

    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    _torchvision_placeholder()
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
