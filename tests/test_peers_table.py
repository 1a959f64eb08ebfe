"""The peers table (``bench/peers_table.py``, issue 17) on synthetic runners: quality judged by the proxy of the
output kind, one interleaved timing, the speed ratio to the fastest peer, the verdict, and which deployed
artifacts it reuses. No real model, no peer runtime: runners are small numpy functions that sleep."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from bench import peers_table


class Sleeper:
    """A runner taking ``seconds`` per call whose output is ``fn(x)``."""

    def __init__(self, seconds: float, fn) -> None:  # noqa: ANN001 - a numpy function
        self.seconds, self.fn, self.calls = seconds, fn, 0

    def run(self, feed: dict) -> list[np.ndarray]:
        self.calls += 1
        time.sleep(self.seconds)
        return [self.fn(feed["x"])]

    def close(self) -> None:
        pass


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _feeds(n: int = 12) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"x": rng.normal(size=(1, 4)).astype(np.float32)} for _ in range(n)]


def test_proxy_ratio_and_verdict_on_synthetic_runners() -> None:
    exact = _softmax
    swapped = lambda x: _softmax(x[:, ::-1])  # noqa: E731 - a peer that gets every top class wrong
    runners = {"ort_fp32": Sleeper(0.004, exact), "openvino": Sleeper(0.002, exact),
               "nncf_int8": Sleeper(0.0012, swapped), "edgeopt": Sleeper(0.0004, exact)}  # fmt: skip
    labels = np.array([int(np.argmax(f["x"])) for f in _feeds()])
    cells = peers_table.compare(runners, _feeds(), timing_feeds=4, labels=labels, budget_s=0.08)
    assert {c["proxy"] for c in cells.values()} == {"top1_agreement"}  # [N, C] distributions: a classifier
    assert cells["edgeopt"]["value"] == 100.0 and cells["nncf_int8"]["value"] < 50.0
    assert cells["ort_fp32"]["task"] == "accuracy" and cells["ort_fp32"]["task_value"] == 100.0
    assert cells["ort_fp32"]["p50_ms"] > cells["openvino"]["p50_ms"] > cells["edgeopt"]["p50_ms"]
    v = peers_table.verdict(cells, max_drop=0.5)
    assert v["fastest_peer"] == "nncf_int8" and v["ratios"]["edgeopt"] < 1.0 and v["status"] == "met"
    table = peers_table.markdown([{"model": "toy", "cells": cells, "verdict": v, "failed": {}}], max_drop=0.5)
    assert "met (fastest peer: NNCF int8 defaults; within the accuracy budget: OpenVINO defaults" in table
    assert "top1_agreement 100.00" in table and "top1_agreement 0.00" in table  # the swapped peer's cell
    assert table.count("\n") == 2  # header, rule, one row


def test_verdict_behind_or_over_budget() -> None:
    def cell(ms: float, drop: float, **task: float) -> dict:
        return {"p50_ms": ms, "proxy": "position_top1", "value": 100 - drop, "drop": drop, **task}

    peers = {"ort_fp32": cell(10.0, 0.0), "openvino": cell(3.0, 0.0), "nncf_int8": cell(3.75, 0.1)}
    behind = peers_table.verdict({**peers, "edgeopt": cell(5.7, 0.0)}, max_drop=0.5)
    assert behind["status"] == "behind" and behind["fastest_peer"] == "openvino"
    assert behind["ratios"]["edgeopt"] == pytest.approx(1.9)
    assert peers_table.verdict({**peers, "edgeopt": cell(3.05, 0.2)}, max_drop=0.5)["status"] == "met"  # noise
    lossy = peers_table.verdict({**peers, "edgeopt": cell(2.0, 0.1, task_drop=0.8)}, max_drop=0.5)
    assert lossy["status"] == "over the accuracy budget"  # the task metric decides where there are labels
    flips = peers_table.verdict({**peers, "edgeopt": cell(2.0, 1.0, task_drop=0.0)}, max_drop=0.5)
    assert flips["status"] == "met"  # one flipped top class of 100, the accuracy unchanged
    assert peers_table.verdict({**peers, "edgeopt": cell(2.0, 1.0)}, max_drop=0.5)["status"] != "met"
    assert peers_table.verdict(peers, max_drop=0.5)["status"] == "edgeopt did not run"
    broken_peer = {**peers, "nncf_int8": cell(1.0, 80.0), "edgeopt": cell(2.0, 0.0)}
    v = peers_table.verdict(broken_peer, max_drop=0.5)  # the fastest peer ruins the output: still the bar
    assert v["status"] == "behind" and v["fastest_peer"] == "nncf_int8"
    assert v["fastest_peer_within_budget"] == "openvino" and v["ratio_to_it"] == pytest.approx(2.0 / 3.0)
    row = {"model": "m", "cells": broken_peer, "verdict": v, "failed": {}}
    assert "within the accuracy budget: OpenVINO defaults, edgeopt 0.67×" in peers_table.markdown([row], max_drop=0.5)


def test_sequence_output_is_judged_per_position() -> None:
    rng = np.random.default_rng(1)
    ref = _softmax(rng.normal(size=(6, 10, 5)) * 3)
    noisy = _softmax(np.log(ref) + rng.normal(scale=0.3, size=ref.shape))
    judged = peers_table.judge([ref], [noisy], inputs={"x": np.zeros((6, 3))}, labels=None)
    assert judged["proxy"] == "position_top1" and "task" not in judged
    assert judged["drop"] == pytest.approx(100 - np.mean(ref.argmax(-1) == noisy.argmax(-1)) * 100)


def _artifact(root: Path, name: str, max_drop: float) -> Path:
    path = root / name / "out" / f"{name}.edgeopt"
    path.mkdir(parents=True)
    (path / "manifest.json").write_text(json.dumps({"request": {"max_drop": max_drop}}))
    return path


def test_reuses_only_artifacts_deployed_with_the_same_max_drop(tmp_path: Path) -> None:
    loose, strict, empty = tmp_path / "loose", tmp_path / "strict", tmp_path / "empty"
    _artifact(loose, "m", 1.0)
    wanted = _artifact(strict, "m", 0.5)
    found, passed = peers_table.reusable_artifact("m", [empty, loose, strict], 0.5)
    assert found == wanted and len(passed) == 1 and "--max-drop 1.0, not 0.5" in passed[0]
    assert peers_table.reusable_artifact("m", [loose], 0.5)[0] is None
    assert peers_table.reusable_artifact("other", [strict], 0.5) == (None, [])
