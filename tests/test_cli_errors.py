"""Bad input through the real CLI: one clear line, the error class's exit status, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeopt.errors import ArtifactError, exit_status_for_code

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits" / "digits_cnn.onnx"


def edgeopt(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeopt", *args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


def assert_clean_failure(result: subprocess.CompletedProcess, *, mentions: str, cwd: Path) -> None:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error[")]
    assert len(lines) == 1, result.stderr
    assert result.returncode == exit_status_for_code(lines[0][6:10]) > 2, result.stderr
    assert mentions.lower() in lines[0].lower(), lines[0]
    assert "hint:" in result.stderr
    assert result.stdout == ""
    assert not list(cwd.glob("*.edgeopt")), "a failed deploy left an artifact behind"
    assert not list(cwd.glob(".*tmp*")), "a failed deploy left a temp dir behind"


def test_missing_file(tmp_path):
    assert_clean_failure(edgeopt("deploy", "nope.onnx", cwd=tmp_path), mentions="not found", cwd=tmp_path)


def test_random_bytes_named_onnx(tmp_path):
    (tmp_path / "junk.onnx").write_bytes(np.random.default_rng(0).bytes(4096))
    assert_clean_failure(edgeopt("deploy", "junk.onnx", cwd=tmp_path), mentions="junk.onnx", cwd=tmp_path)


def test_truncated_model(tmp_path):
    data = DIGITS.read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    assert_clean_failure(edgeopt("deploy", "cut.onnx", cwd=tmp_path), mentions="cut.onnx", cwd=tmp_path)


def test_unknown_target(tmp_path):
    result = edgeopt("deploy", str(DIGITS), "--target", "quantum", cwd=tmp_path)
    assert_clean_failure(result, mentions="unknown target 'quantum'", cwd=tmp_path)


def test_input_shape_that_does_not_match(tmp_path):
    result = edgeopt("deploy", str(DIGITS), "--input-shape", "input=1x3x224x224", cwd=tmp_path)
    assert_clean_failure(result, mentions="input", cwd=tmp_path)


def test_calibration_file_with_wrong_keys(tmp_path):
    np.savez(tmp_path / "calib.npz", image=np.zeros((4, 1, 8, 8), np.float32), extra=np.zeros((4, 3), np.float32))
    result = edgeopt("deploy", str(DIGITS), "--precision", "int8", "--calib", "calib.npz", cwd=tmp_path)
    assert_clean_failure(result, mentions="calib", cwd=tmp_path)


def test_calibration_samples_of_the_wrong_shape(tmp_path):
    np.savez(tmp_path / "calib.npz", input=np.zeros((4, 1, 9, 9), np.float32))
    result = edgeopt("deploy", str(DIGITS), "--precision", "int8", "--calib", "calib.npz", cwd=tmp_path)
    assert_clean_failure(result, mentions="input", cwd=tmp_path)


def test_unsupported_precision(tmp_path):
    result = edgeopt("deploy", str(DIGITS), "--precision", "int3", cwd=tmp_path)
    assert_clean_failure(result, mentions="precision", cwd=tmp_path)


@pytest.mark.parametrize("command", [["verify", "nowhere.edgeopt"], ["profile", "nowhere.edgeopt"]])
def test_missing_artifact(tmp_path, command):
    result = edgeopt(*command, cwd=tmp_path)
    assert result.returncode == ArtifactError.exit_status and "Traceback" not in result.stderr
    assert "error[E7" in result.stderr
