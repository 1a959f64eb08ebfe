"""End to end: the bundled digits CNN and the onnx wheel's opset-9 ResNet-50 through the real CLI and SDK."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import edgeopt

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
ZOO = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edgeopt", *args], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def digits_artifact(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("digits")
    result = cli(
        "deploy",
        str(DIGITS / "digits_cnn.onnx"),
        "--target",
        "cpu",
        "--precision",
        "int8",
        "--calib",
        str(DIGITS / "calib.npz"),
        "--eval",
        str(DIGITS / "eval.npz"),
        "--max-drop",
        "1.0",
        "--batch",
        "1,8",
        "--timing-s",
        "0.5",
        "--out",
        "digits.edgeopt",
        "--json",
        cwd=cwd,
    )
    assert result.returncode == 0, result.stderr
    return cwd / "digits.edgeopt", json.loads(result.stdout), result.stderr


def test_digits_int8_within_budget_and_verified(digits_artifact):
    path, summary, _ = digits_artifact
    assert summary["precision"] in ("int8", "fp32")  # fp32 only if int8 measured slower: then a warning says so
    metrics = summary["metrics"]
    assert metrics["metric"] == "accuracy"
    assert metrics["reference"] > 90 and metrics["drop"] <= 1.0
    latency = summary["profile"]["latency"]
    assert set(latency) == {"1", "8"}
    assert latency["1"]["p50"] > 0 and latency["1"]["method"].startswith("measured")
    assert summary["profile"]["energy"]["method"].startswith(("estimated", "rapl"))
    assert cli("verify", str(path), cwd=path.parent).returncode == 0
    if summary["precision"] == "fp32":
        assert any("slower than fp32" in w for w in summary["warnings"])


def test_digits_artifact_loads_and_agrees_with_original(digits_artifact):
    path, summary, _ = digits_artifact
    data = np.load(DIGITS / "eval.npz")
    x = data["input"][:1]
    reference = ort.InferenceSession(str(DIGITS / "digits_cnn.onnx")).run(None, {"input": x})[0]
    with edgeopt.load(path) as predict:
        out = predict({"input": x})
    got = next(iter(out.values()))
    cos = float(np.dot(got.ravel(), reference.ravel()) / (np.linalg.norm(got) * np.linalg.norm(reference)))
    assert cos > 0.99


def test_tampered_artifact_refuses_to_load(digits_artifact, tmp_path):
    import shutil

    from edgeopt.errors import ArtifactError

    path, _, _ = digits_artifact
    copy = tmp_path / "copy.edgeopt"
    shutil.copytree(path, copy)
    model = copy / "model.onnx"
    blob = bytearray(model.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    model.write_bytes(bytes(blob))
    with pytest.raises(ArtifactError, match="model.onnx"):
        edgeopt.load(copy)
    result = cli("verify", str(copy), cwd=tmp_path)
    assert result.returncode == ArtifactError.exit_status and "model.onnx" in result.stderr


def test_resnet50_opset9_int8_with_synthetic_calibration(tmp_path):
    result = cli(
        "deploy",
        str(ZOO / "light_resnet50.onnx"),
        "--precision",
        "int8",
        "--force-precision",
        "--timing-s",
        "0.5",
        "--out",
        "r50.edgeopt",
        "--json",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "synthetic" in result.stderr
    summary = json.loads(result.stdout)
    assert summary["precision"] == "int8"
    assert summary["graph"]["opset"] >= 17 and summary["source"]["opset"] == 9
    fidelity = summary["metrics"]["fidelity"]
    assert fidelity["cosine"] > 0.99
    with edgeopt.load(tmp_path / "r50.edgeopt") as predict:
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
        out = next(iter(predict({"gpu_0/data_0": x}).values()))
    assert out.shape == (1, 1000) and np.isfinite(out).all()


def test_a_cpu_profile_of_another_board_is_labelled_measured_on_this_host(tmp_path):
    import edgeopt

    dep = edgeopt.deploy(str(DIGITS / "digits_cnn.onnx"), target="cpu", device="x86-avx2-2core", precision="fp32",
                         calib=DIGITS / "calib.npz", eval=DIGITS / "eval.npz", timing_s=0.05, cache=False,
                         out=tmp_path / "a.edgeopt")
    profile = dep.manifest["profile"]
    assert profile["device"] == "x86-avx2-2core" and profile["measured_on"] == "this host"
    assert profile["energy"]["method"] == "estimated:device-profile(power x roofline latency on the device)"
    assert "| Measured on | this host" in (dep.path / "report.md").read_text()
