"""`edgeopt deploy` with compression options, end to end on the bundled digits CNN (one short epoch)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from edgeopt.artifact.write import verify_artifact
from edgeopt.cli import app
from edgeopt.errors import exit_status_for_code

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"


@pytest.fixture
def train_npz(tmp_path, digits) -> Path:
    """200 training digits with labels, as `--train` takes them."""
    x_train, _, y_train, _ = digits
    path = tmp_path / "train.npz"
    np.savez(path, input=x_train[:200], labels=y_train[:200])
    return path


def test_cli_deploy_prunes_distills_and_records_every_stage(tmp_path, train_npz, monkeypatch):
    monkeypatch.chdir(ROOT)  # the factory is imported as examples.digits.model
    out = tmp_path / "art"
    result = CliRunner().invoke(app, [
        "deploy", "examples.digits.model:factory", "--weights", str(DIGITS / "digits_cnn.safetensors"),
        "--input-shape", "1x1x8x8", "--prune", "structured:0.5", "--distill", "--train", str(train_npz),
        "--eval", str(DIGITS / "eval.npz"), "--epochs", "1", "--precision", "fp32", "--out", str(out),
        "--timing-s", "0.1", "--no-cache", "--max-drop", "20", "--json",
    ])
    assert result.exit_code == 0, result.output
    manifest = verify_artifact(out)
    record = manifest["compression"]
    original, pruned = record["stages"]
    for stage in (original, pruned):
        assert {"params", "nonzero_params", "flops", "size_bytes", "metric", "metric_name", "latency"} <= set(stage)
        assert stage["latency"]["p50_s"] > 0 and stage["latency"]["runs"] > 0
        assert stage["latency"]["method"].startswith("target cpu on host")  # timed with the target's runner
    assert pruned["params"] < 0.35 * original["params"] and pruned["flops"] < 0.35 * original["flops"]
    assert pruned["size_bytes"] < 0.4 * original["size_bytes"]
    assert original["metric"] > 90 and record["spec"]["prune"] == "structured:0.5" and record["spec"]["distill"]
    assert record["training"][0]["distilled"] and len(record["training"][0]["history"]) == 2  # epoch 0 and 1
    drop = original["metric"] - pruned["metric"]
    assert record["budget"]["compression_drop"] == pytest.approx(drop)
    assert manifest["metrics"]["max_drop"] == pytest.approx(20 - max(drop, 0.0))  # the target got what was left
    assert record["deployed"]["metric"] == pytest.approx(manifest["metrics"]["candidate"])
    assert manifest["data"]["calibration"]["source"].endswith("train.npz")  # --train calibrates, no synthetic data
    report = (out / "report.md").read_text()
    assert "## Compression" in report and "pruned structured:0.5" in report and "Deployed model" in report
    assert "_stage_paths" not in json.dumps(manifest)
    assert json.loads(result.stdout.strip().splitlines()[-1])["path"] == str(out)


def test_cli_refuses_pruning_an_onnx_only_model(tmp_path, train_npz):
    out = tmp_path / "art"
    proc = subprocess.run(
        [sys.executable, "-m", "edgeopt", "deploy", str(DIGITS / "digits_cnn.onnx"), "--prune", "structured:0.5",
         "--train", str(train_npz), "--out", str(out)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env={**os.environ, "EDGEOPT_DEBUG": ""},
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error[")]
    assert proc.returncode == exit_status_for_code(errors[0][6:10]) if errors else proc.returncode == 1, proc.stderr
    assert len(errors) == 1 and "needs a torch model" in errors[0] and "Traceback" not in proc.stderr
    assert "structured pruning changes layer shapes" in errors[0]
    assert not out.exists()


def test_targets_lists_the_pruning_each_target_speeds_up():
    result = CliRunner().invoke(app, ["targets", "--json"])
    assert result.exit_code == 0, result.output
    rows = {t["name"]: t for t in json.loads(result.stdout)}
    assert rows["cpu"]["compression_speedups"] == ["structured"]
    table = CliRunner().invoke(app, ["targets", "--wide"], env={"COLUMNS": "200"})
    assert "faster with pruning" in table.stdout
