"""An artifact re-sealed with the measurement a farm device made: its profile and where it was measured.

The build node's manifest already holds a profile measured where it was built; the device's measurement
replaces the latency and energy figures (memory and roofline, measured or estimated at build time, stay and
keep their methods) and ``measured_on`` records the node, host, device and ISA. The artifact is written anew
through ``write_artifact`` (every file hashed again, manifest sealed), and its reports re-rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeopt.artifact.write import MANIFEST_NAME, REPORT_NAME, SEAL_KEY, verify_artifact, write_artifact


def with_measurement(src: Path, out: Path, measured: Mapping[str, Any], where: Mapping[str, Any]) -> Path:
    """Write ``src`` to ``out`` with ``measured`` (``edgeopt.profile``'s result) as its profile and ``where`` as
    its ``measured_on``; returns ``out`` after verifying it."""
    from edgeopt.artifact.report import render_markdown
    from edgeopt.artifact.report_html import HTML_NAME, render_html

    manifest = verify_artifact(src)
    body = {k: v for k, v in manifest.items() if k not in ("files", SEAL_KEY)}
    old = dict(body.get("profile") or {})
    new = {**old, **{k: v for k, v in measured.items() if k in ("latency", "energy", "batch", "slo_ms")}}
    new["measured_on"] = f"farm device {where.get('device')} on {where.get('host')}"
    body["profile"] = new
    body["measured_on"] = dict(where)
    listed = manifest.get("files") or {}
    files = {n: src / n for n in listed if n not in (REPORT_NAME, HTML_NAME, MANIFEST_NAME)}
    extra = {HTML_NAME: render_html(body)} if HTML_NAME in listed else {}
    write_artifact(out, files=files, manifest=body, report_md=render_markdown(body), extra_text=extra)
    verify_artifact(out)
    return out
