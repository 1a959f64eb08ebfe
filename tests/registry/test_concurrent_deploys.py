"""Real deploys from several processes at once all land in the registry, each with its own version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.artifact.write import verify_artifact
from edgeopt.registry import Registry

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"


@pytest.mark.slow  # three full deploys in parallel: ~30 s on two cores
def test_three_concurrent_cli_deploys_register_three_versions(tmp_path):
    db = tmp_path / "registry.db"
    env = {**os.environ, "EDGEOPT_REGISTRY": str(db)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "edgeopt", "deploy", str(DIGITS / "digits_cnn.onnx"), "--precision", "fp32",
             "--calib", str(DIGITS / "calib.npz"), "--timing-s", "0.05", "--runs", "20", "--no-cache",
             "--out", str(tmp_path / f"d{i}.edgeopt"), "--json"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(3)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in outs]
    refs = sorted(json.loads(out)["registered"] for out, _ in outs)
    assert refs == ["digits_cnn:1", "digits_cnn:2", "digits_cnn:3"]
    records = Registry(db).list("digits_cnn")
    assert sorted(r.artifact_path for r in records) == sorted(str((tmp_path / f"d{i}.edgeopt").resolve())
                                                              for i in range(3))
    for r in records:
        verify_artifact(Path(r.artifact_path))
