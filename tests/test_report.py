"""Markdown report rendering (edgeopt.artifact.report)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from edgeopt.artifact.report import render_markdown
from edgeopt.artifact.write import verify_artifact, write_artifact


def full_manifest() -> dict:
    """A manifest shaped like the one deploy writes."""
    return {
        "schema_version": 1,
        "edgeopt_version": "0.1.0",
        "created": "2026-11-23T11:00:00+00:00",
        "source": {"path": "/models/resnet50.onnx", "format": "onnx", "fingerprint": "ab" * 32, "opset": 9,
                   "size_bytes": 100 * 1024**2},
        "graph": {
            "fingerprint": "cd" * 32, "opset": 17,
            "inputs": [{"name": "data_0", "dtype": "float32", "shape": [1, 3, 224, 224]}],
            "outputs": [{"name": "softmax", "dtype": "float32", "shape": [1, 1000]}],
            "notes": ["opset upgraded 9 -> 17"], "params": 25_600_000, "flops": 8.2e9,
        },
        "target": {"name": "cpu", "plugin": "edgeopt-cpu", "plugin_version": "0.1.0"},
        "device": {"name": "host", "kind": "cpu", "description": "AMD EPYC, 2 cores, AVX2"},
        "runtime": "onnxruntime 1.32.0",
        "plan": {
            "precision": "int8", "label": "int8 static per-channel minmax",
            "passes": [
                {"name": "ort_optimize", "params": {"level": "extended"}},
                {"name": "quantize_static", "params": {"per_channel": True, "calibrate": "minmax"}},
                {"name": "noop"},
            ],
        },
        "metrics": {
            "metric": "accuracy", "reference": 76.0, "candidate": 75.5, "drop": 0.5, "max_drop": 1.0,
            "units": "points", "samples": 200, "synthetic_data": False,
            "fidelity": {"top1_agreement": 98.5, "cosine": 0.99912, "sqnr_db": 31.2, "max_abs_error": 0.02},
        },
        "profile": {
            "latency": {
                "1": {"p50": 0.0123, "p90": 0.0131, "p99": 0.014, "min": 0.012, "mean": 0.0125, "stdev": 0.0004,
                      "throughput": 81.3, "runs": 50, "batch": 1, "method": "measured:wallclock"},
                "8": {"p50": 0.08, "p90": 0.085, "p99": 0.09, "min": 0.079, "mean": 0.081, "stdev": 0.001,
                      "throughput": 100.0, "runs": 20, "batch": 8, "method": "measured:wallclock"},
                "64": {"error": "batch 64 exceeds the model's fixed batch 8"},
            },
            "memory": {"load_bytes": 50 * 1024**2, "peak_bytes": 300 * 1024**2, "method": "measured:rss"},
            "size_bytes": 25 * 1024**2,
            "size_method": "measured:file",
            "energy": {"joules_per_inference": 0.0021, "method": "estimated:tdp"},
            "roofline": {"seconds": 0.004, "method": "estimated:roofline"},
        },
        "candidates": [
            {"label": "fp32", "precision": "fp32", "status": "baseline", "reason": "", "latency_p50_s": 0.03,
             "metric": "accuracy", "candidate": 76.0, "drop": 0.0,
             "fidelity": {"cosine": 1.0, "top1_agreement": 100.0}},
            {"label": "int8 static per-channel minmax", "precision": "int8", "status": "accepted", "reason": "",
             "latency_p50_s": 0.0123, "metric": "accuracy", "candidate": 75.5, "drop": 0.5,
             "fidelity": {"cosine": 0.99912}},
            {"label": "int8 | dynamic", "precision": "int8-dynamic", "status": "refused",
             "reason": "drop 3.2 points > max 1.0", "latency_p50_s": 0.02, "drop": 3.2, "fidelity": None},
            {"label": "fp16", "precision": "fp16", "status": "failed", "reason": "compile error: op X"},
        ],
        "data": {
            "calibration": {"source": "calib.npz", "samples": 100, "synthetic": False, "labels": False},
            "evaluation": {"source": "eval.npz", "samples": 200, "synthetic": False, "labels": True},
        },
        "warnings": ["calibration used 200 samples only"],
        "environment": {"python": "3.11.7", "platform": "Linux-6.1-x86_64", "cpu": "AMD EPYC 7B13",
                        "packages": {"onnxruntime": "1.32.0", "onnx": "1.23.0"}},
    }


def test_full_manifest_renders_every_section() -> None:
    md = render_markdown(full_manifest())
    assert md.startswith("# edgeopt report: resnet50.onnx → cpu on host\n")
    for heading in ("## Warnings", "## Summary", "## Latency by batch size", "## Candidates measured",
                    "## Passes applied", "## Model", "## Environment"):
        assert heading in md, heading
    assert "| Precision chosen | int8 — int8 static per-channel minmax |" in md
    assert "p50 12.3 ms, p90 13.1 ms (measured:wallclock, 50 runs)" in md
    assert "81.3 samples/s at batch 1" in md
    assert "100.00 MiB → 25.00 MiB (-75.0%) (measured:file)" in md
    assert "76 → 75.5 points (drop 0.5, budget 1)" in md
    assert "top-1 agreement 98.5%" in md and "cosine 0.99912" in md and "SQNR 31.2 dB" in md
    assert "| Calibration data | 100 samples, unlabelled, from calib.npz |" in md
    assert "| Evaluation data | 200 samples, labelled, from eval.npz |" in md
    assert "2.1 mJ (estimated:tdp)" in md
    assert "4 ms (estimated:roofline) vs 12.3 ms measured" in md
    assert "| Memory | load 50.00 MiB, peak 300.00 MiB (measured:rss) |" in md
    assert "| int8 static per-channel minmax | int8 | accepted (chosen) | 12.3 ms | 75.5 (0.5) | cosine" in md
    assert "| int8 \\| dynamic | int8-dynamic | refused | 20 ms | drop 3.2 |  | drop 3.2 points > max 1.0 |" in md
    assert "| fp16 | fp16 | failed |  |  |  | compile error: op X |" in md
    assert "| 64 | not supported |" in md and "exceeds the model's fixed batch 8" in md
    assert "opset 17, 2.56e+07 params, 8.2e+09 flops" in md
    assert "1. `ort_optimize` — level=extended" in md
    assert "2. `quantize_static` — per_channel=True, calibrate=minmax" in md and "3. `noop`\n" in md
    assert "opset upgraded 9 -> 17" in md and "| input | data_0 | float32 | [1, 3, 224, 224] |" in md
    assert "| onnxruntime | 1.32.0 |" in md and "| python | 3.11.7 |" in md
    assert "- **calibration used 200 samples only**" in md
    assert "synthetic" not in md


def test_tables_are_well_formed() -> None:
    md = render_markdown(full_manifest())
    for block in md.split("\n\n"):
        lines = block.splitlines()
        if lines and lines[0].startswith("|"):
            columns = {line.replace("\\|", "").count("|") for line in lines}
            assert len(columns) == 1, block


@pytest.mark.parametrize("manifest", [{}, {"schema_version": 1}, {"metrics": None, "profile": "junk"}, []])
def test_sparse_manifest_renders_title_only(manifest) -> None:
    assert render_markdown(manifest) == "# edgeopt report\n"


def test_partial_manifest_skips_missing_sections() -> None:
    m = {"target": {"name": "cpu"}, "metrics": {"metric": "fidelity:cosine", "reference": 100.0, "candidate": 99.9,
                                                 "drop": 0.1, "samples": 32, "synthetic_data": True, "units": "points"},
         "profile": {"latency": {"1": {"p50": 2e-5}}, "energy": {"joules_per_inference": None}}}
    md = render_markdown(m)
    assert md.startswith("# edgeopt report → cpu\n")
    assert "Fidelity (fidelity:cosine) | 100 → 99.9 points (drop 0.1) |" in md
    assert "synthetic data only" in md  # loud even when deploy recorded no warning
    assert "32 samples, synthetic" in md
    assert "p50 20.0 µs (measured:wallclock" not in md and "p50 20.0 µs (method unknown)" in md
    for absent in ("Energy", "Roofline", "## Candidates", "## Passes", "## Environment", "## Latency by batch"):
        assert absent not in md


def test_missing_numbers_do_not_break_rendering() -> None:
    m = full_manifest()
    m["metrics"]["candidate"] = None  # e.g. a non-finite value written as null
    m["profile"]["latency"]["1"]["p90"] = None
    m["candidates"][0]["latency_p50_s"] = "fast"
    md = render_markdown(m)
    assert "76 → n/a points" in md and "p50 12.3 ms (measured:wallclock, 50 runs)" in md


def test_report_of_a_written_artifact_lists_files(tmp_path: Path) -> None:
    model = tmp_path / "model.onnx"
    model.write_bytes(b"\x08\x07onnx")
    manifest = full_manifest()
    out = write_artifact(tmp_path / "art", files={"model.onnx": model}, manifest=manifest,
                         report_md=render_markdown(manifest))
    written = verify_artifact(out)
    assert (out / "report.md").read_text(encoding="utf-8") == render_markdown(manifest)
    md = render_markdown(written)
    assert "## Files" in md and "| `model.onnx` | 6 B |" in md
    assert written["files"]["model.onnx"]["sha256"][:16] in md
    assert render_markdown(copy.deepcopy(written)) == md
