"""The manifest: everything an artifact claims, as plain JSON data."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import platform
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from edgeopt.artifact.report_html import HTML_NAME
from edgeopt.artifact.write import MANIFEST_SCHEMA_VERSION
from edgeopt.compression.deploy_guard import with_deployed
from edgeopt.evaluate.task_metrics import metric_unit
from edgeopt.graph.index_bounds import index_limits
from edgeopt.graph.layouts import read_layouts
from edgeopt.types import Dataset, DeviceProfile, Graph, PassSpec, TargetInfo, TensorSpec
from edgeopt.version import __version__

if TYPE_CHECKING:
    from edgeopt.search.candidates import Candidate, CandidateContext
    from edgeopt.search.run import Search


class RequestFields(Protocol):
    """What the manifest records of the deploy's request (``edgeopt.pipeline.request.DeployRequest`` has it)."""

    source: object
    precision: str
    max_drop: float
    batches: tuple[int, ...]
    slo_ms: float | None
    force_precision: bool
    threads: int | None
    budget_s: float | None

RECORDED_PACKAGES = (
    "onnx",
    "onnxruntime",
    "onnxslim",
    "numpy",
    "torch",
    "scikit-learn",
    "skl2onnx",
    "openvino",
    "nncf",
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def tensor_dict(spec: TensorSpec) -> dict:
    return {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape)}


def input_dicts(graph: Graph) -> list[dict]:
    """The graph's inputs, each with the ``layout`` (``NHWC``, ``NCHW``...) its importer recorded, if any."""
    layouts = read_layouts(graph.path)
    return [tensor_dict(s) | ({"layout": layouts[s.name]} if s.name in layouts else {}) for s in graph.inputs]


def recorded_index_limits(artifact: Path, manifest: Mapping[str, Any]) -> dict[str, int]:
    """The bounds of integer inputs that index a table (``edgeopt.graph.index_bounds``) as the deploy recorded them in
    ``graph.index_limits``. An artifact written before they were recorded: read from its model file when that
    is ONNX, else none (synthetic integers then stay in [0, 10))."""
    recorded = (manifest.get("graph") or {}).get("index_limits")
    if isinstance(recorded, Mapping):
        return {str(k): int(v) for k, v in recorded.items()}
    model = Path(artifact) / str(manifest.get("model_file", ""))
    if model.suffix == ".onnx" and model.is_file():
        from edgeopt.graph.index_bounds import index_limits

        return index_limits(model)
    return {}


def pass_dict(spec: PassSpec) -> dict:
    return {"name": spec.name, "params": _jsonable(dict(spec.params))}


def environment() -> dict:
    packages = {}
    for name in RECORDED_PACKAGES:
        try:
            packages[name] = md.version(name)
        except md.PackageNotFoundError:
            continue
    from edgeopt.measure.host import cpu_name

    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "packages": packages,
    }


def source_description(source: object) -> str:
    if isinstance(source, (str, Path)):
        return str(source)
    return f"{type(source).__module__}.{type(source).__qualname__} (in-memory object)"


def data_description(dataset: Dataset) -> dict:
    return {
        "source": dataset.source,
        "samples": len(dataset),
        "synthetic": dataset.synthetic,
        "labels": dataset.labels is not None,
    }


def stream_section(evaluation: Dataset) -> dict | None:
    """How the model is fed (``edgeopt.data.stream``), None for a plain batched model: ``state`` pairs (output fed
    back as input; ``edgeopt.load`` predictors and ``edgeopt profile`` read them), inputs ``fed_whole`` (no
    batch axis at 0), the ``steps`` of the evaluation stream, and ``constant_inputs``: one-element inputs fed
    whole that hold one value throughout the evaluation data (a sample rate), so a re-profile feeds it too."""
    if not (evaluation.state or evaluation.fed_whole):
        return None
    constants = {}
    for name in evaluation.fed_whole:
        values = np.asarray(evaluation.arrays[name])
        if values.size == len(values) and values.size and values.dtype.kind in "biuf" and np.all(values == values[0]):
            constants[name] = values.reshape(-1)[0].item()
    return {
        "state": [{"output": p.output, "input": p.input} for p in evaluation.state],
        "fed_whole": list(evaluation.fed_whole),
        "steps": len(evaluation) if evaluation.state else None,
        "constant_inputs": constants,
        "evaluation": (f"one stream of {len(evaluation)} calls, each candidate feeding back its own state from the "
                       "data's first state; answers compared step by step with the fp32 reference's stream")
        if evaluation.state else "one call per sample, inputs without a batch axis fed whole",
    }


def manifest_state(manifest: Mapping[str, Any]) -> dict[str, str]:
    """The state pairs an artifact's manifest records (``stream_section``), output -> input; ``{}`` for none."""
    return {p["output"]: p["input"] for p in (manifest.get("stream") or {}).get("state", [])}


def build_manifest(
    *,
    request: RequestFields,
    graph: Graph,
    summary: Any,
    target: TargetInfo,
    device: DeviceProfile,
    chosen: Candidate,
    candidates: Sequence[Candidate],
    profile: Any,
    plugin_versions: dict[str, str],
    warnings: Sequence[str],
    calibration: Dataset,
    evaluation: Dataset,
    search: Search,
    search_context: CandidateContext,
    search_s: float,
    compression: Mapping[str, Any] | None = None,
    selection: Mapping[str, Any] | None = None,
) -> dict:
    compiled = chosen.compiled
    assert compiled is not None and chosen.metrics is not None
    metrics = chosen.metrics
    manifest = {
        "schema_version": MANIFEST_SCHEMA_VERSION,
        "edgeopt_version": __version__,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "source": {
            "path": source_description(request.source),
            "format": graph.source_format,
            "fingerprint": graph.source_fingerprint,
            "opset": graph.source_opset,
        },
        "graph": {
            "fingerprint": graph.fingerprint,
            "opset": graph.opset,
            "inputs": input_dicts(graph),
            "index_limits": index_limits(graph.path),
            "outputs": [tensor_dict(s) for s in graph.outputs],
            "notes": list(graph.notes),
            "params": summary.params,
            "flops": summary.flops,
            "size_bytes": graph.path.stat().st_size,
        },
        "target": {"name": target.name, "plugin": target.plugin, "plugin_version": plugin_versions.get(target.plugin)},
        "plugins": plugin_versions,
        "device": {
            "name": device.name,
            "kind": device.kind,
            "description": device.description,
            "isa": list(device.isa),
        },
        "runtime": compiled.runtime,
        "model_file": compiled.model_file,
        "plan": {
            "precision": chosen.plan.precision,
            "label": chosen.plan.label,
            "threads": request.threads or chosen.plan.threads,
            "passes": [pass_dict(p) for p in (compiled.passes or chosen.plan.passes)],
            "notes": list(compiled.notes),
        },
        "request": {
            "precision": request.precision,
            "max_drop": request.max_drop,
            "batches": list(request.batches),
            "slo_ms": request.slo_ms,
            "force_precision": request.force_precision,
        },
        "data": {"calibration": data_description(calibration), "evaluation": data_description(evaluation)},
        "metrics": {
            **_jsonable(asdict(metrics)),
            "max_drop": request.max_drop,
            "units": metric_unit(metrics.metric),
        },
        "profile": _jsonable(profile.to_dict()),
        **({"stream": stream} if (stream := stream_section(evaluation)) else {}),
        "candidates": [_jsonable(c.summary()) for c in candidates],
        **({"decision": chosen.choice} if chosen.choice else {}),
        "warnings": list(warnings),
        "environment": environment(),
    }
    manifest = _jsonable(manifest)
    manifest["search"] = search_section(request, search_context, search, chosen, search_s)
    manifest["sensitivity"] = sensitivity_rows(search, chosen)
    if compression:
        manifest["compression"] = with_deployed(compression, manifest["metrics"])
    if selection is not None:
        manifest["selection"] = dict(selection)
    return manifest
def search_section(request: RequestFields, ctx: CandidateContext, search: Search, chosen: Candidate,
                    elapsed: float) -> dict:
    cands = search.candidates
    metric = chosen.metrics.metric if chosen.metrics else None
    section = {
        "precision": request.precision,
        "budget_s": request.budget_s,
        "elapsed_s": round(elapsed, 3),
        "elapsed_covers": "compile, evaluation, fallback and sensitivity; not timing or profiling",
        "metric": metric,
        "units": metric_unit(metric) if metric else None,
        "max_drop": request.max_drop,
        "evaluated": sum(c.status not in ("skipped",) for c in cands),
        "skipped": [c.label for c in cands if c.status == "skipped"],
        "cache": {
            "enabled": ctx.cache is not None,
            "hits": sum(c.cached for c in cands),
            "dir": str(ctx.cache.root) if ctx.cache is not None else None,
            "timing": "re-measured for every candidate; only compile and evaluation are reused",
        },
        "fallback": search.fallback,
        "notes": search.notes,
        "report_html": HTML_NAME,
    }
    if search.sensitivity is not None:
        sens = search.sensitivity
        section["sensitivity"] = {"candidate": sens.candidate, "method": sens.method, "samples": sens.samples,
                                  "seconds": sens.seconds, "notes": list(sens.notes)}
    return section


def sensitivity_rows(search: Search, chosen: Candidate) -> list[dict]:
    if search.sensitivity is None:
        return []
    kept = set(chosen.plan.keep_fp32)
    return [{**asdict(n), "kept_fp32": n.node in kept} for n in sorted(search.sensitivity.nodes, key=lambda n: n.rank)]
