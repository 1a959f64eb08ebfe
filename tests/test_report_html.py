"""report.html (edgeopt.artifact.report_html) and the search/sensitivity sections of report.md."""

from __future__ import annotations

import sys

import pytest

from edgeopt.artifact.report import render_markdown
from edgeopt.artifact.report_html import noise_shares, pareto_front, render_html


def manifest() -> dict:
    cand = {"precision": "int8", "reason": "", "origin": "plan", "keep_fp32": [], "cached": False,
            "metric": "accuracy", "fidelity": {"sqnr_db": 30.0}}
    return {
        "source": {"path": "/m/<net>.onnx"},
        "target": {"name": "cpu"},
        "device": {"name": "host"},
        "plan": {"precision": "int8", "label": "int8 + fp32 {fc2}"},
        "metrics": {"metric": "accuracy", "reference": 98.0, "candidate": 97.5, "drop": 0.5, "max_drop": 1.0,
                    "units": "points", "higher_is_better": True},
        "candidates": [
            {**cand, "label": "fp32", "precision": "fp32", "status": "accepted", "latency_p50_s": 0.004,
             "candidate": 98.0, "drop": 0.0},
            {**cand, "label": "int8 <naive>", "status": "refused", "latency_p50_s": 0.002, "candidate": 40.0,
             "drop": 58.0, "reason": "output 0 collapsed"},
            {**cand, "label": "int8 + fp32 {fc2}", "status": "accepted", "latency_p50_s": 0.003,
             "candidate": 97.5, "drop": 0.5, "origin": "fallback", "keep_fp32": ["fc2"], "cached": True},
            {**cand, "label": "int8 entropy", "status": "skipped", "latency_p50_s": None, "candidate": None,
             "drop": None, "reason": "skipped: search budget (--budget-s) spent before this candidate"},
        ],
        "sensitivity": [
            {"rank": 1, "node": "fc2", "op_type": "Gemm", "contribution_db": 3.0, "sqnr_db": 3.0, "kept_fp32": True},
            {"rank": 2, "node": "fc1", "op_type": "Gemm", "contribution_db": 40.0, "sqnr_db": 40.0},
        ],
        "search": {
            "evaluated": 3, "elapsed_s": 1.5, "budget_s": 10.0, "skipped": ["int8 entropy"], "units": "points",
            "cache": {"enabled": True, "hits": 1, "timing": "re-measured"}, "report_html": "report.html",
            "fallback": {"base": "int8 <naive>", "base_drop": 58.0, "recovered": True,
                         "steps": [{"keep_fp32": ["fc2"], "status": "accepted", "drop": 0.5}]},
            "sensitivity": {"candidate": "int8 <naive>", "method": "activation-sqnr", "samples": 8, "notes": []},
        },
    }


def test_pareto_front_keeps_points_nobody_beats() -> None:
    pts = [(1.0, 90.0), (2.0, 95.0), (2.5, 94.0), (3.0, 99.0), (0.5, 50.0)]
    assert pareto_front(pts, higher_is_better=True) == [4, 0, 1, 3]
    assert pareto_front([(1.0, 0.3), (2.0, 0.1), (3.0, 0.2)], higher_is_better=False) == [0, 1]


def test_noise_shares_sum_to_100_and_follow_the_db() -> None:
    shares = noise_shares([{"contribution_db": 10.0}, {"contribution_db": 20.0}])
    assert sum(shares) == pytest.approx(100.0) and shares[0] == pytest.approx(10 * shares[1])


def test_html_has_both_plots_the_chosen_point_and_escaped_table() -> None:
    page = render_html(manifest())
    assert page.count("<svg") == 2 and "</html>" in page
    assert "Pareto front" in page and "chosen" in page and "budget: drop 1 points" in page
    assert "int8 &lt;naive&gt;" in page and "<naive>" not in page.replace("&lt;naive&gt;", "")
    assert '<tr class="chosen"><td>2</td>' in page
    assert "skipped: search budget" in page and "Per-layer sensitivity" in page
    assert "<script" not in page and "http" not in page.split("<svg", 1)[0]  # offline, no external files
    assert render_html(manifest()) == page  # deterministic


def test_html_without_plottable_candidates_or_matplotlib_still_renders(monkeypatch) -> None:
    m = manifest()
    for c in m["candidates"]:
        c["latency_p50_s"] = None
    m["sensitivity"] = []
    page = render_html(m)
    assert "<svg" not in page and "No candidate has both" in page
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    page = render_html(manifest())
    assert "matplotlib is not installed" in page and "<table>" in page


def test_markdown_links_the_html_and_lists_search_and_sensitivity() -> None:
    md = render_markdown(manifest())
    assert "[report.html](report.html)" in md
    assert "## Search" in md and "Skipped (search budget): int8 entropy" in md
    assert "Mixed-precision fallback from int8 <naive>" in md and "1 node(s) in fp32 → accepted" in md
    assert "## Per-layer sensitivity" in md and "| 1 | `fc2` | Gemm | 3 |" in md
