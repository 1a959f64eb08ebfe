"""The documentation site builds with ``mkdocs build --strict`` (broken links, missing pages and generated pages
all fail it), and the docs name commands a user can run from a clone, never the measuring machine's folders."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MACHINE_PATH = re.compile(r"(?<![\w.])/(work|root|home/\w+)/|(?<![\w.<])/tmp/")


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is installed by scripts/setup.sh --test")
    pytest.importorskip("material", reason="mkdocs-material is installed by scripts/setup.sh --test")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    hooks = (tmp_path / "site" / "reference" / "hooks" / "index.html").read_text()
    assert "edgeopt_register_targets" in hooks  # generated from edgeopt/plugin/hookspecs.py
    assert "Unreleased" in (tmp_path / "site" / "changelog" / "index.html").read_text()


def test_docs_and_bench_name_no_machine_paths() -> None:
    """Commands in docs/ and bench/ run from a clone (``python bench/…``, ``.venv/bin/edgeopt …``)."""
    files = [*(ROOT / "docs").glob("*.md"), ROOT / "README.md", *(ROOT / "bench").glob("*.md"),
             *(ROOT / "bench").glob("*.py")]
    found = [f"{f.relative_to(ROOT)}:{i}: {line.strip()}" for f in files
             for i, line in enumerate(f.read_text().splitlines(), 1)
             if MACHINE_PATH.search(line) and f.name != "errors.md"]  # errors.md quotes messages, temp dirs and all
    assert found == []


def test_the_site_config_lists_every_page() -> None:
    nav = (ROOT / "mkdocs.yml").read_text()
    missing = [p.name for p in (ROOT / "docs").glob("*.md") if f" {p.name}" not in nav]
    assert missing == [], "add them to mkdocs.yml's nav"
    assert (ROOT / "CHANGELOG.md").is_file()
