"""``report.md``: the manifest of a deploy rendered for people.

Pure function of the manifest (no I/O), defensive about missing fields: a section whose data is absent is
left out rather than filled with guesses. Every number is printed with the method that produced it.
The sections are ``edgeopt.artifact.report_summary`` (title, warnings, summary) and
``edgeopt.artifact.report_sections`` (the details), formatted with ``edgeopt.artifact.report_format``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from edgeopt.artifact import report_sections, report_summary


def render_markdown(manifest: Mapping[str, Any]) -> str:
    """Render a deploy manifest (see ``docs/architecture.md``) as Markdown."""
    m = manifest if isinstance(manifest, Mapping) else {}
    parts = [
        report_summary.title(m),
        report_summary.warnings(m),
        report_summary.summary(m),
        _previous(m),
        report_sections.latency(m),
        _runtimes(m),
        report_sections.candidates(m),
        report_sections.search(m),
        report_sections.sensitivity(m),
        report_sections.compression(m),
        report_sections.passes(m),
        report_sections.model(m),
        report_sections.environment(m),
        report_sections.files(m),
    ]
    return "\n\n".join(s for s in parts if s).rstrip() + "\n"


def _previous(m: Mapping[str, Any]) -> str:
    """The last registered version's figures next to this deploy's, linked (see ``edgeopt.registry``)."""
    from edgeopt.artifact.previous_section import markdown

    return markdown(m)


def _runtimes(m: Mapping[str, Any]) -> str:
    """``--target auto``: every target measured and why the winner won (see ``edgeopt.compare``)."""
    selection = m.get("selection")
    if not isinstance(selection, Mapping):
        return ""
    from edgeopt.artifact.compare_report import markdown_table

    return f"## Runtimes compared (--target auto)\n\n{markdown_table(selection)}\n\nWinner: {selection.get('why', '')}"
