"""bench/run_gpu_bench.py without a GPU: it refuses with the reason and writes nothing; its report code
renders and fills docs/gpu.md's section (so a GPU run cannot fail at the end on formatting)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeopt_cuda.status import current_status

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def bench():  # noqa: ANN201
    spec = importlib.util.spec_from_file_location("run_gpu_bench", ROOT / "bench" / "run_gpu_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_gpu_bench"] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("run_gpu_bench", None)


@pytest.mark.skipif(current_status().available, reason="a GPU is usable here: the benchmark would run")
def test_without_a_gpu_it_says_why_and_writes_nothing(bench, tmp_path: Path, capsys) -> None:
    assert bench.main(["--out", str(tmp_path)]) == 2
    assert "the cuda target is unavailable here: " + current_status().reason in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_quality_and_report_section(bench, tmp_path: Path) -> None:
    ref = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]])
    cand = ref + np.array([[0.01, -0.01, 0.0], [0.0, 0.0, 0.0]])
    q = bench.quality(ref, cand, np.array([1, 0]), 3)
    assert q["accuracy"] == 100.0 and q["max_rel_error"] == pytest.approx(0.01 / 0.7) and q["cosine"] > 0.999
    row = {
        "details": {"chosen": "fp16 converted, fp32 I/O (CUDA EP)", "profile_sweep": {
            "latency": {"1": {"p90": 0.0004}, "8": {"error": "CompileError: no"}}, "batch": 1, "slo_ms": 2.0,
            "energy": {"joules_per_inference": 0.012, "method": "nvml"}}},
        "quality": q,
        "latency": {"p50_s": 0.0003, "p90_s": 0.0004, "vs_plain_p50": 0.8},
        "energy": {"joules_per_inference": 0.02, "joules_above_idle_per_inference": 0.01},
    }
    report = {
        "command": "python bench/run_gpu_bench.py", "started": "2026-01-01 00:00:00", "wall_s": 60.0,
        "machine": {"gpu": {"name": "GPU"}, "idle_w": 70.0, "packages": {"edgeopt": "0.1.0", "tensorrt": None}},
        "results": [{"model": "digits CNN", "data": "real", "runtimes": {"edgeopt fp16": row},
                     "failures": {"edgeopt auto": "CompileError: x"}}],
    }
    section = bench.render(report)
    assert section.startswith(bench.BEGIN) and section.endswith(bench.END)
    assert "| edgeopt fp16 | fp16 converted, fp32 I/O (CUDA EP) | 0.300 | 0.400 | 0.80x | 2.000e-02 |" in section
    assert "chosen batch 1 (SLO 2.0 ms); energy 1.200e-02 J/inference (nvml)" in section
    assert "**edgeopt auto failed**: CompileError: x" in section
    doc = tmp_path / "gpu.md"
    doc.write_text(f"# head\n\n{bench.BEGIN}\nold\n{bench.END}\n\ntail\n")
    bench.write_section(doc, section)
    text = doc.read_text()
    assert text.startswith("# head") and text.endswith("tail\n") and "old" not in text and section in text


def test_docs_gpu_md_has_the_section_and_says_it_is_not_measured() -> None:
    text = (ROOT / "docs" / "gpu.md").read_text()
    assert "<!-- gpu-bench:begin -->" in text and "<!-- gpu-bench:end -->" in text
    assert "Not yet measured on a GPU" in text
