"""Render the CPU benchmark's raw results (the ``benchmarks.json`` dict) as ``docs/benchmarks.md``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LIGHT_NOTE = (
    "These `light_*` models from the onnx wheel's test data have constant weights (every weight tensor is a "
    "`ConstantOfShape` of 0.02), so every class gets the same score: the ORT fp32 output is a near-uniform "
    "softmax (about 1/1000 per class) and all classes tie, so top-1 agreement cannot be computed and cosine "
    "mostly tells whether a runtime still outputs a roughly uniform, non-zero vector. The relative L1 error "
    "(sum |candidate - fp32| / sum |fp32|) is the more telling column here. Their latency is real: the "
    "shapes and op counts are those of SqueezeNet 1.0 and ResNet-50. The original files store weights as "
    "generators, so their size on disk is tiny; runtimes that fold the constants store the full tensors."
)


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.3f}" if seconds < 1e-2 else f"{seconds * 1e3:.2f}"


def _size(n: int | None) -> str:
    if not n:
        return "—"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def _quality(row: Mapping[str, Any], labelled: bool) -> list[str]:
    q = row.get("quality")
    if not q:
        return ["—"] * (2 if labelled else 3)
    top1 = "n/a (ties)" if q["top1_agreement"] is None else f"{q['top1_agreement']:.1f}%"
    if labelled:
        return [f"{q['accuracy']:.2f}%", f"{q['cosine']:.5f} / {top1}"]
    return [f"{q['cosine']:.5f}", f"{q['rel_l1_error']:.2e}", top1]


def _table(result: Mapping[str, Any]) -> list[str]:
    rows = result["runtimes"]
    labelled = any("accuracy" in (r.get("quality") or {}) for r in rows.values())
    quality_heads = ["accuracy (labels)", "cosine / top-1 vs fp32"] if labelled else [
        "cosine vs fp32", "rel. L1 error", "top-1 agree"]
    heads = ["runtime", "p50 ms", "p90 ms", "p50 / ORT fp32", *quality_heads, "size on disk", "build s", "runs"]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    for name, row in rows.items():
        lat = row.get("latency", {})
        ratio = lat.get("vs_ort_fp32_p50")
        lines.append("| " + " | ".join([
            f"**{name}**" if name.startswith("edgeopt") and "diagnostic" not in name else name,
            _ms(lat.get("p50_s")), _ms(lat.get("p90_s")), "—" if ratio is None else f"{ratio:.2f}×",
            *_quality(row, labelled), _size(row.get("size_bytes")), f"{row.get('build_s', 0):.1f}",
            str(lat.get("runs", "—")),
        ]) + " |")
    for name in result.get("failures", {}):
        cells = ["FAILED"] + ["—"] * (len(heads) - 2)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _details(result: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for name, row in result["runtimes"].items():
        d = row.get("details", {})
        facts = []
        if "quantized" in d:
            q = d["quantized"]
            facts.append(
                f"quantized from the {d.get('quantized_from')}; result opset {q['opset']}, "
                f"{q['quantize_linear']} QuantizeLinear / {q['dequantize_linear']} DequantizeLinear, "
                f"{q['weighted_nodes_int8_weights']}/{q['weighted_nodes']} weighted nodes with int8 weights, "
                f"nodes fed by DQ: {q['nodes_fed_by_dq']}"
            )
        if "config" in d:
            facts.append("config " + ", ".join(f"{k}={v}" for k, v in d["config"].items()))
        if "candidates" in d:
            cands = "; ".join(
                f"{c['label']}: {c['status']}{' (' + c['reason'] + ')' if c.get('reason') else ''}"
                + (f", p50 {_ms(c['latency_p50_s'])} ms" if c.get("latency_p50_s") else "")
                for c in d["candidates"]
            )
            facts.append(f"threads {d.get('threads')}; candidates — {cands}")
        if "quality_error" in row:
            facts.append(f"quality not computed: {row['quality_error']}")
        notes = [*facts, *row.get("notes", [])]
        if notes:
            lines.append(f"- **{name}**: " + " · ".join(n.replace("\n", " ") for n in notes))
    checked = [n for n, r in result["runtimes"].items() if "litter_in_cwd" in r.get("details", {})]
    if checked and not any(result["runtimes"][n]["details"]["litter_in_cwd"] for n in checked):
        lines.append(f"- files left in the working directory by {', '.join(checked)}: none")
    for name, failure in result.get("failures", {}).items():
        hint = f" (hint: {failure['hint']})" if failure.get("hint") else ""
        lines.append(f"- **{name} FAILED** after {failure['build_s']:.1f} s: `{failure['error']}`{hint}")
    return lines


def _verdicts(result: Mapping[str, Any]) -> list[str]:
    lines = []
    diagnostic = next((r for n, r in result["runtimes"].items() if "diagnostic" in n), None)
    for v in result.get("verdicts", []):
        if v["status"] == "failed":
            lines.append(f"- {v['edgeopt']}: **failed** (see above)")
        elif v["beaten_by"]:
            lines.append(f"- {v['edgeopt']}: **BEHIND** — {', '.join(v['beaten_by'])} is at least as accurate and "
                         "more than 5% faster at p50")
        else:
            extra = ""
            if v.get("faster_but_less_accurate_than"):
                extra = f" (faster than {', '.join(v['faster_but_less_accurate_than'])} but less accurate than it)"
            lines.append(f"- {v['edgeopt']}: at or ahead of the ORT defaults{extra}")
    ratio = (diagnostic or {}).get("latency", {}).get("vs_ort_fp32_p50")
    if ratio is not None:
        lines.append(f"- the edgeopt auto model file in a plain ORT session (diagnostic row): {ratio:.2f}× ORT fp32 "
                     "p50; its gap to the edgeopt auto row is the SDK Predictor's per-call cost plus timing noise")
    return lines


def _reference(result: Mapping[str, Any]) -> list[str]:
    ref = result.get("reference")
    if not ref:
        return []
    return [
        f"ORT fp32 output on the evaluation set: mean {ref['output_mean']:.4g}, spread across the {ref['classes']} "
        f"classes of one sample up to {ref['per_sample_class_spread_max']:.3g} (mean "
        f"{ref['per_sample_class_spread_mean']:.3g}), {ref['distinct_top1_classes']} distinct top-1 class(es).",
        "",
    ]


KEPT_MARKER = "<!-- sections below are kept when run_cpu_bench.py regenerates this file -->"


def kept_sections(existing: str) -> str:
    """The marker line (a line of its own) and everything after it in the current file ("" without one)."""
    index = existing.find("\n" + KEPT_MARKER + "\n")
    return existing[index + 1:] if index >= 0 else ""


def render_markdown(report: Mapping[str, Any]) -> str:
    """The whole document: how it was run, the machine, then one section per model."""
    m, d = report["machine"], report["edgeopt_deploy"]
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    lines = [
        "# CPU benchmark: edgeopt vs ONNX Runtime, OpenVINO and NNCF defaults",
        "",
        "Generated by `bench/run_cpu_bench.py` (see `bench/README.md` for the method) down to the line "
        f"`{KEPT_MARKER}`; the sections below that line are measured by the commands they name and kept as they "
        "are when this file is regenerated.",
        "",
        "```",
        report["command"],
        "```",
        "",
        f"- **Machine**: {m['cpu']}, {m['physical_cores']} physical cores / {m['logical_cpus']} logical CPUs, "
        f"ISA flags {', '.join(m['isa']) or 'none detected'} (`edgeopt.measure.host.cpu_isa()`); {m['platform']}",
        f"- **Threads**: {m['threads_given_to_every_runtime']} for every runtime (ORT `intra_op_num_threads`, "
        "OpenVINO `INFERENCE_NUM_THREADS`, edgeopt `threads=`)",
        f"- **Packages**: Python {m['python']}, {packages}",
        f"- **Load average** (1/5/15 min) before {m['load_average_before'][0]:.2f}/{m['load_average_before'][1]:.2f}/"
        f"{m['load_average_before'][2]:.2f}, after {m['load_average_after'][0]:.2f}/{m['load_average_after'][1]:.2f}/"
        f"{m['load_average_after'][2]:.2f}; a load above the core count means other processes shared the CPU "
        "(interleaving spreads that noise over all runtimes alike, it does not remove it)",
        f"- **Run**: started {report['started']}, {report['wall_s']:.0f} s wall in one process; batch 1; timed by "
        "`edgeopt.measure.harness.measure_interleaved` after warm-up, rounds alternating between runtimes",
        f"- **edgeopt.deploy**: `target=\"cpu\"`, `threads={d['threads']}`, `budget_s={d['budget_s']}` (candidate "
        f"search limit), `timing_s={d['timing_s']}`, `cache={d['cache']}` (every deploy does its whole search)",
        "",
        "Latency p50/p90 are per batch-1 inference; `p50 / ORT fp32` < 1 is faster. Size is the model as stored "
        "(OpenVINO: .xml+.bin from `save_model(compress_to_fp16=False)`, the weights actually run; the default fp16 "
        "compression size is in the notes; edgeopt: the artifact's model files). A runtime is marked BEHIND when "
        "ORT fp32 or ORT `quantize_static` is at least as accurate (accuracy with labels, else cosine to fp32) and "
        "more than 5% faster at p50.",
        "",
    ]
    for result in report["results"]:
        lines += [f"## {result['model']}", "", f"`{result['path']}` — {result['data']}. "
                  f"Timed with {result.get('runs_per_round', 1)} consecutive runs per runtime per round.", ""]
        if "light" in result["path"]:
            lines += [LIGHT_NOTE, ""]
        lines += _reference(result)
        lines += _table(result) + [""]
        lines += ["Verdict:", "", *_verdicts(result), "", "Details:", "", *_details(result), ""]
    return "\n".join(lines).rstrip() + "\n"
