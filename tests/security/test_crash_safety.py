"""Crash-safe artifacts: kill -9 at random points of repeated writes, and byte flips caught on load."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import edgeopt
from edgeopt.artifact.write import MANIFEST_NAME, verify_artifact
from edgeopt.errors import ArtifactError
from tests.security.helpers import DIGITS, ROOT, assert_one_line_error, run_cli

KILLS = 200


def test_kill_9_during_artifact_writes_never_leaves_a_torn_artifact(tmp_path):
    """A child rewrites one artifact in a loop (large and small variants alternating) and is SIGKILLed
    after a random delay, KILLS times; after each kill the artifact verifies and is the last complete
    version or the one being written. The harness runs in a fresh process because it forks."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.security.crash_harness", "--kills", str(KILLS), "--out-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["kills"] == KILLS
    assert report["problems"] == [], report["problems"][:5]
    assert report["torn"] == 0 and report["verify_failures"] == 0
    # the kills really land inside writes (a temp dir was in flight) and the writers made progress between them
    assert report["kills_mid_write"] >= KILLS // 2, report
    assert report["kills_after_progress"] >= KILLS // 10, report
    # a killed writer leaves at most its own temp dir, and the next write removes it
    assert report["max_leftover_temp_dirs"] <= 2, report
    assert report["leftover_temp_dirs_after_next_write"] == 0, report
    print(f"\ncrash safety: {KILLS} kills, torn 0, verify failures 0, {report['kills_mid_write']} mid-write, "
          f"{report['versions_written']} versions written in {report['seconds']} s")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deployed") / "digits.edgeopt"
    edgeopt.deploy(str(DIGITS), target="cpu", precision="fp32", runs=3, timing_s=0.05, out=out)
    return out


def _flip(path: Path, offset: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ 0xFF]))


def _files(artifact: Path) -> list[Path]:
    return sorted(p for p in artifact.rglob("*") if p.is_file())


def test_deployed_artifact_has_manifest_model_and_report(deployed):
    names = {p.relative_to(deployed).as_posix() for p in _files(deployed)}
    assert {MANIFEST_NAME, "report.md"} < names and any(n.endswith(".onnx") for n in names)


def test_a_flipped_byte_anywhere_is_caught_by_verify(deployed):
    """Every byte of the manifest and report, and 64 bytes of each other file (first, last, random)."""
    rng = random.Random(0)
    checked = 0
    for path in _files(deployed):
        size = path.stat().st_size
        if path.name in (MANIFEST_NAME, "report.md"):
            offsets = range(size)
        else:
            offsets = sorted({0, size - 1, *(rng.randrange(size) for _ in range(62))})
        for offset in offsets:
            _flip(path, offset)
            try:
                with pytest.raises(ArtifactError):
                    verify_artifact(deployed)
            finally:
                _flip(path, offset)
            checked += 1
    verify_artifact(deployed)
    assert checked > 1000
    print(f"\nbyte flips: {checked} flips in {len(_files(deployed))} files, detected {checked} (100%)")


def test_a_flipped_byte_is_caught_by_edgeopt_load(deployed):
    feeds = {"input": np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)}
    with edgeopt.load(deployed) as predictor:
        expected = predictor(feeds)
    for path in _files(deployed):
        size = path.stat().st_size
        for offset in (0, size // 2, size - 1):
            _flip(path, offset)
            try:
                with pytest.raises(ArtifactError, match=path.name):
                    edgeopt.load(deployed)
            finally:
                _flip(path, offset)
    with edgeopt.load(deployed) as predictor:  # restored: loads and predicts exactly as before
        got = predictor(feeds)
    for name, value in expected.items():
        np.testing.assert_array_equal(got[name], value)


def test_truncated_extra_or_missing_files_are_caught_by_edgeopt_load(deployed, tmp_path):
    import shutil

    for damage in ("truncate", "append", "extra", "delete"):
        copy = tmp_path / damage
        shutil.copytree(deployed, copy)
        model = next(p for p in _files(copy) if p.suffix == ".onnx")
        if damage == "truncate":
            model.write_bytes(model.read_bytes()[:-1])
        elif damage == "append":
            model.write_bytes(model.read_bytes() + b"\0")
        elif damage == "extra":
            (copy / "payload.py").write_text("print('hi')\n")
        else:
            model.unlink()
        with pytest.raises(ArtifactError):
            edgeopt.load(copy)


@pytest.mark.parametrize("command", ["verify", "profile"])
def test_a_flipped_byte_is_one_clear_line_in_the_cli(deployed, tmp_path, command):
    import shutil

    copy = tmp_path / "copy.edgeopt"
    shutil.copytree(deployed, copy)
    _flip(copy / "report.md", 3)
    result = run_cli(command, str(copy), cwd=tmp_path)
    assert_one_line_error(result, code="E700", mentions=["report.md", "sha256 mismatch"])
