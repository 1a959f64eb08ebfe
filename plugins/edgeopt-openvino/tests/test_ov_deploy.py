"""End to end: ``edgeopt.deploy`` the digits CNN to ``openvino`` int8, then ``edgeopt.load`` the artifact.

The real path: builds in the isolated worker, ``cache=False`` so nothing comes from an earlier run.
"""

from __future__ import annotations

from pathlib import Path

import edgeopt as api
import numpy as np

ROOT = Path(__file__).resolve().parents[3]
DIGITS = ROOT / "examples" / "digits"


def test_deploy_digits_int8_and_load_it(tmp_path: Path) -> None:
    deployment = api.deploy(
        str(DIGITS / "digits_cnn.onnx"),
        target="openvino",
        precision="int8",
        calib=str(DIGITS / "calib.npz"),
        eval=str(DIGITS / "eval.npz"),
        out=tmp_path / "digits-openvino.edgeopt",
        timing_s=0.5,
        runs=20,
        cache=False,
    )
    manifest = deployment.manifest
    assert manifest["target"]["name"] == "openvino" and manifest["plan"]["precision"] == "int8"
    assert manifest["model_file"] == "model.xml" and {"model.xml", "model.bin"} <= set(manifest["files"])
    assert [p["name"] for p in manifest["plan"]["passes"]] == ["ov-convert", "nncf-quantize"]
    assert manifest["plan"]["passes"][1]["params"]["fake_quantize_nodes"] > 0
    labels = [c["label"] for c in manifest["candidates"]]
    assert any("NNCF" in label for label in labels) and any(label.startswith("fp32") for label in labels)

    evaluation = np.load(DIGITS / "eval.npz")
    x, y = evaluation["input"], evaluation["labels"]
    with api.load(deployment.path) as predict:
        scores = np.concatenate([predict({"input": x[i : i + 1]})["logits"] for i in range(len(x))])
    accuracy = float(np.mean(np.argmax(scores, axis=1) == y) * 100)
    assert accuracy >= 96.0  # the fp32 model scores 98.0 on these 450 samples
    assert abs(accuracy - manifest["metrics"]["candidate"]) < 1e-6
