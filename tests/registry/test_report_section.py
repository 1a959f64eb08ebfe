"""The deploy report's "Previous version" section, rendered from a manifest."""

from __future__ import annotations

from edgeopt.artifact.previous_section import html_section, markdown
from edgeopt.artifact.report import render_markdown
from edgeopt.artifact.report_html import render_html

MANIFEST = {
    "plan": {"precision": "int8", "label": "int8 static"},
    "metrics": {"metric": "accuracy", "candidate": 97.0, "units": "points"},
    "profile": {"latency": {"1": {"p50": 0.002, "p90": 0.003, "method": "measured:wallclock"}}, "size_bytes": 1000,
                "energy": {"joules_per_inference": 0.001}},
    "previous": {"ref": "digits:1", "created": "2026-01-01", "precision": "fp32", "plan": "fp32",
                 "metric_value": 98.0, "latency": {"1": {"p50": 0.004, "p90": 0.006}}, "size_bytes": 4000,
                 "joules_per_inference": 0.002, "report": "../v1.edgeopt/report.md",
                 "report_html": "../v1.edgeopt/report.html"},
}


def test_section_links_the_previous_report_and_shows_changes():
    md = markdown(MANIFEST)
    assert "[its report](../v1.edgeopt/report.md)" in md
    assert "| latency p50 (batch 1, measured:wallclock) | 4 ms | 2 ms | -50.0% |" in md
    assert "| size | 3.9 KiB | 1.0 KiB | -75.0% |" in md
    assert "## Previous version" in render_markdown(MANIFEST)
    assert "href='../v1.edgeopt/report.html'" in html_section(MANIFEST)
    assert "Previous version" in render_html(MANIFEST)


def test_no_section_without_a_previous_version_and_a_note_when_replaced():
    plain = {k: v for k, v in MANIFEST.items() if k != "previous"}
    assert markdown(plain) == "" and html_section(plain) == ""
    assert "Previous version" not in render_markdown(plain)
    replaced = {**MANIFEST, "previous": {**MANIFEST["previous"], "report": None, "report_html": None,
                                         "note": "its artifact was at this path and was replaced by this deploy"}}
    md = markdown(replaced)
    assert "its report" not in md and "replaced by this deploy" in md
