"""Task metrics through the ``edgeopt_metrics`` hook: CTC text/char accuracy and detection mAP@0.5 against hand
computed cases and a reference implementation, the hook's registration and clash rules, and ``--metric`` end to
end on a CTC-shaped ONNX model."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeopt
from edgeopt.builtin.task_metrics import (
    average_precision,
    ctc_char_accuracy,
    ctc_greedy_decode,
    ctc_text_accuracy,
    detection_map50,
    edit_distance,
)
from edgeopt.errors import DataError, PluginError
from edgeopt.evaluate.judge import evaluate
from edgeopt.evaluate.task_metrics import metric_unit
from edgeopt.plugin import hookimpl
from edgeopt.plugin.manager import get_plugin_manager


def one_hot_paths(paths: list[list[int]], classes: int) -> np.ndarray:
    """``[N, T, C]`` scores whose argmax at each step is the given path."""
    scores = np.full((len(paths), len(paths[0]), classes), 0.1, np.float32)
    for n, path in enumerate(paths):
        scores[n, np.arange(len(path)), path] = 0.9
    return scores


# ---------------------------------------------------------------------------------------------------- CTC


def test_ctc_greedy_decode_collapses_repeats_then_drops_blanks() -> None:
    scores = one_hot_paths([[1, 1, 0, 1, 2, 2], [0, 0, 0, 0, 0, 0], [2, 0, 2, 2, 0, 0], [2, 2, 2, 0, 0, 0]], 3)
    assert [d.tolist() for d in ctc_greedy_decode(scores)] == [[1, 1, 2], [], [2, 2], [2]]
    assert [d.tolist() for d in ctc_greedy_decode(scores, blank=2)][0] == [1, 0, 1]


def test_ctc_accuracies_on_a_hand_computed_case() -> None:
    scores = one_hot_paths([[1, 1, 0, 1, 2, 2], [0, 0, 0, 0, 0, 0], [2, 0, 2, 2, 0, 0], [2, 2, 2, 0, 0, 0]], 3)
    labels = np.array([[1, 1, 2, -1], [-1, -1, -1, -1], [2, 2, -1, -1], [1, -1, -1, -1]])
    # decoded [1,1,2] [] [2,2] [2]: three exact; edit distances 0, 0, 0, 1 over 3 + 0 + 2 + 1 label characters
    assert ctc_text_accuracy([scores], labels) == pytest.approx(75.0)
    assert ctc_char_accuracy([scores], labels) == pytest.approx(100 * (1 - 1 / 6))
    # insertions count: decoding [1,1,2] against label [1] is two edits for one character
    assert ctc_char_accuracy([scores[:1]], np.array([[1, -1, -1]])) == pytest.approx(-100.0)


def _reference_edit_distance(a: list[int], b: list[int]) -> int:
    d = [[i + j if i * j == 0 else 0 for j in range(len(b) + 1)] for i in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] != b[j - 1]))
    return d[-1][-1]


def test_edit_distance_matches_the_textbook_recurrence() -> None:
    kitten, sitting = [ord(c) for c in "kitten"], [ord(c) for c in "sitting"]
    assert edit_distance(np.array(kitten), np.array(sitting)) == 3
    assert edit_distance(np.array([]), np.array([1, 2])) == 2
    rng = np.random.default_rng(0)
    for _ in range(200):
        a, b = rng.integers(0, 4, rng.integers(0, 9)), rng.integers(0, 4, rng.integers(0, 9))
        assert edit_distance(a, b) == _reference_edit_distance(a.tolist(), b.tolist())


@pytest.mark.parametrize("labels, match", [
    (np.array([1, 2]), "int \\[N, L\\]"),
    (np.array([[1, 3]]), "value 3"),
    (np.array([[0, 1]]), "value 0"),
    (np.array([[1.5, 1.0]]), "integer"),
])
def test_ctc_refuses_malformed_labels(labels, match) -> None:  # noqa: ANN001
    with pytest.raises(DataError, match=match):
        ctc_text_accuracy([one_hot_paths([[1, 2]], 3)], labels)


def test_ctc_needs_sequence_scores() -> None:
    with pytest.raises(DataError, match=r"\[N, T, C\]"):
        ctc_text_accuracy([np.zeros((2, 5), np.float32)], np.array([[1], [1]]))


# ---------------------------------------------------------------------------------------------- detection


def test_detection_map50_on_a_hand_computed_case() -> None:
    pad = [-1] * 6
    dets = np.array([
        [[0, 0, 10, 10, 0.9, 0], [1, 1, 10, 10, 0.8, 0], [0, 0, 5, 5, 0.3, 2], pad],
        [[50, 50, 60, 60, 0.7, 0], [0, 0, 10, 9, 0.6, 0], [0, 0, 4, 4, 0.1, 1], pad],
    ], np.float32)
    labels = np.array([
        [[0, 0, 10, 10, 0], [20, 20, 30, 30, 0], [-1] * 5],
        [[0, 0, 10, 10, 0], [0, 0, 4, 4, 1], [-1] * 5],
    ], np.float32)
    # class 0, ranked: TP (IoU 1), FP (IoU .81 but that box is taken), FP (no overlap), TP (IoU .9); 3 boxes:
    # precision 1, 1/2, 1/3, 1/2 at recall 1/3, 1/3, 1/3, 2/3 -> AP = 1/3 * 1 + 1/3 * 1/2 = 0.5
    # class 1: one TP for one box -> AP 1; class 2 has no ground truth and is not scored
    assert detection_map50([dets], labels) == pytest.approx(75.0)
    assert average_precision(np.array([1, 0, 0, 1]), 3) == pytest.approx(0.5)
    assert detection_map50([dets[:, :0]], labels) == 0.0  # no detections at all
    perfect = np.concatenate([labels[..., :4], np.ones(labels.shape[:2] + (1,)), labels[..., 4:]], axis=2)
    assert detection_map50([perfect], labels) == pytest.approx(100.0)


def _voc_map50(dets: np.ndarray, labels: np.ndarray) -> float:
    """A straightforward VOC-devkit-style reference (voc_eval + voc_ap with sentinels, use_07_metric=False)."""
    aps = []
    for c in sorted({int(x) for x in labels[:, :, 4].ravel() if x >= 0}):
        gts = {i: [b[:4] for b in labels[i] if b[4] == c] for i in range(len(labels))}
        used = {i: [False] * len(g) for i, g in gts.items()}
        rows = [(i, d) for i in range(len(dets)) for d in dets[i] if d[5] == c]
        rows.sort(key=lambda r: -r[1][4])
        tp, fp = [], []
        for i, d in rows:
            best, at = 0.0, -1
            for j, g in enumerate(gts[i]):
                iw = max(min(d[2], g[2]) - max(d[0], g[0]), 0.0)
                ih = max(min(d[3], g[3]) - max(d[1], g[1]), 0.0)
                union = (d[2] - d[0]) * (d[3] - d[1]) + (g[2] - g[0]) * (g[3] - g[1]) - iw * ih
                if iw * ih / union > best:
                    best, at = iw * ih / union, j
            hit = best >= 0.5 and not used[i][at]
            if hit:
                used[i][at] = True
            tp.append(float(hit))
            fp.append(float(not hit))
        npos = sum(len(g) for g in gts.values())
        ctp, cfp = np.cumsum(tp), np.cumsum(fp)
        rec = ctp / npos
        prec = ctp / np.maximum(ctp + cfp, np.finfo(np.float64).eps)
        mrec, mpre = np.concatenate(([0.0], rec, [1.0])), np.concatenate(([0.0], prec, [0.0]))
        for k in range(len(mpre) - 1, 0, -1):
            mpre[k - 1] = max(mpre[k - 1], mpre[k])
        k = np.where(mrec[1:] != mrec[:-1])[0]
        aps.append(float(np.sum((mrec[k + 1] - mrec[k]) * mpre[k + 1])))
    return float(np.mean(aps) * 100)


def test_detection_map50_matches_a_voc_style_reference_on_random_sets() -> None:
    rng = np.random.default_rng(7)
    for _ in range(20):
        n, m, k, classes = 6, 5, 8, 3
        xy = rng.uniform(0, 50, (n, m, 2))
        truth = np.concatenate([xy, xy + rng.uniform(5, 20, (n, m, 2)), rng.integers(0, classes, (n, m, 1))], 2)
        truth[rng.random((n, m)) < 0.3] = -1  # padding rows
        jitter = truth[:, rng.integers(0, m, k), :4] + rng.normal(0, 3, (n, k, 4))
        cls = np.where(rng.random((n, k)) < 0.8, truth[:, rng.integers(0, m, k), 4], rng.integers(0, classes, (n, k)))
        dets = np.concatenate([jitter, rng.random((n, k, 1)), cls[..., None]], axis=2)
        dets[:, :, 2:4] = np.maximum(dets[:, :, 2:4], dets[:, :, 0:2] + 0.5)
        dets[cls < 0] = -1
        assert detection_map50([dets], truth) == pytest.approx(_voc_map50(dets, truth), abs=1e-9)


def test_detection_refuses_malformed_labels() -> None:
    dets = np.zeros((1, 2, 6), np.float32)
    with pytest.raises(DataError, match=r"\[N, M, 5\]"):
        detection_map50([dets], np.zeros((1, 4)))
    with pytest.raises(DataError, match="no boxes"):
        detection_map50([dets], -np.ones((1, 2, 5)))
    with pytest.raises(DataError, match="integers"):
        detection_map50([dets], np.array([[[0, 0, 1, 1, -3]]]))


# --------------------------------------------------------------------------------------------------- hook


class VendorMetrics:
    """A vendor plugin adding a lower-is-better metric: mean absolute error of output 0 in label units."""

    EDGEOPT_HOOK_API = 1

    def __init__(self, name: str = "vendor-mae") -> None:
        self.name = name

    @hookimpl
    def edgeopt_metrics(self, register) -> None:  # noqa: ANN001
        register.add_metric(self.name, lambda outputs, labels: float(np.mean(np.abs(outputs[0] - labels))),
                            description="mean absolute error", labels="float [N, D]", higher_is_better=False,
                            unit="units")


def test_a_plugin_metric_joins_the_builtins_and_judges_candidates() -> None:
    pm = get_plugin_manager(entry_points=False)
    pm.register(VendorMetrics(), "vendor")
    found = pm.metrics()
    assert {"ctc-text-accuracy", "ctc-char-accuracy", "detection-map50", "vendor-mae"} <= set(found)
    assert found["vendor-mae"].plugin == "vendor" and \
        found["ctc-text-accuracy"].plugin == "edgeopt.builtin.task_metrics"
    assert "edgeopt_metrics" in {s.name: s for s in pm.plugins()}["vendor"].hooks
    pm.check_metric("vendor-mae")
    assert metric_unit("vendor-mae") == "units" and metric_unit("ctc-text-accuracy") == "points"
    labels = np.zeros((4, 2))
    m = evaluate([labels + 1.0], [labels + 1.5], labels=labels, metric="vendor-mae", synthetic=False)
    assert (m.metric, m.reference, m.candidate, m.drop, m.higher_is_better) == ("vendor-mae", 1.0, 1.5, 0.5, False)
    # the TaskMetric object itself works as an SDK callable, with its name and direction
    m = evaluate([labels + 1.0], [labels + 0.5], labels=labels, metric=found["vendor-mae"], synthetic=False)
    assert (m.metric, m.drop) == ("vendor-mae", -0.5)


def test_a_name_two_plugins_claim_is_a_plugin_error_naming_both() -> None:
    pm = get_plugin_manager(entry_points=False)
    pm.register(VendorMetrics(), "vendor-a")
    pm.register(VendorMetrics(), "vendor-b")
    with pytest.raises(PluginError, match="'vendor-mae' is added by plugin 'vendor-.' and also by plugin") as info:
        pm.metrics()
    assert "'vendor-a'" in info.value.message and "'vendor-b'" in info.value.message
    pm = get_plugin_manager(entry_points=False)
    pm.register(VendorMetrics("accuracy"), "vendor-a")
    with pytest.raises(PluginError, match="'accuracy' is added by plugin 'vendor-a' and also by edgeopt"):
        pm.metrics()


def test_a_broken_metric_plugin_is_quarantined_and_an_unknown_name_lists_every_metric() -> None:
    class Raising:
        EDGEOPT_HOOK_API = 1

        @hookimpl
        def edgeopt_metrics(self, register) -> None:  # noqa: ANN001
            raise RuntimeError("boom")

    pm = get_plugin_manager(entry_points=False)
    pm.register(Raising(), "raising")
    pm.register(VendorMetrics("Bad Name"), "badname")
    assert "ctc-text-accuracy" in pm.metrics()
    status = {s.name: s for s in pm.plugins()}
    assert status["raising"].status == "broken" and "boom" in status["raising"].error
    assert status["badname"].status == "broken" and "metric name" in status["badname"].error
    with pytest.raises(DataError, match="unknown metric 'ctc'") as info:
        pm.check_metric("ctc")
    assert "detection-map50" in info.value.hint and "accuracy" in info.value.hint


def test_a_metric_function_that_fails_names_its_plugin() -> None:
    class Bad:
        EDGEOPT_HOOK_API = 1

        @hookimpl
        def edgeopt_metrics(self, register) -> None:  # noqa: ANN001
            register.add_metric("nan-metric", lambda o, y: float("nan"), description="d", labels="any")
            register.add_metric("crash", lambda o, y: 1 / 0, description="d", labels="any")

    pm = get_plugin_manager(entry_points=False)
    pm.register(Bad(), "bad")
    found = pm.metrics()
    with pytest.raises(PluginError, match="'nan-metric' of plugin 'bad' returned nan"):
        found["nan-metric"]([np.zeros(2)], np.zeros(2))
    with pytest.raises(PluginError, match="'crash' of plugin 'bad' failed: ZeroDivisionError"):
        found["crash"]([np.zeros(2)], np.zeros(2))
    with pytest.raises(DataError, match="needs labels"):
        found["crash"]([np.zeros(2)], None)


# --------------------------------------------------------------------------------------------- end to end

T, C = 10, 5


@pytest.fixture(scope="module")
def recognizer(tmp_path_factory) -> dict:
    """An ONNX 'recognizer': softmax(x @ W) with W = 3·I + 0.1, so each step's top class is the input's; eval
    labels are the decoded paths, four of sixteen changed so the reference scores exactly 75 points."""
    d = tmp_path_factory.mktemp("ctc")
    w = (3 * np.eye(C) + 0.1).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["z"]), helper.make_node("Softmax", ["z"], ["scores"], axis=-1)],
        "ctc_recognizer", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", T, C])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", T, C])], [numpy_helper.from_array(w, "W")])
    model = d / "rec.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    rng = np.random.default_rng(3)
    paths = rng.integers(0, C, (16, T))
    x = one_hot_paths(paths.tolist(), C) + rng.normal(0, 0.05, (16, T, C)).astype(np.float32)
    decoded = ctc_greedy_decode(x)
    labels = -np.ones((16, T), np.int64)
    for i, seq in enumerate(decoded):
        labels[i, : len(seq)] = seq
    for i in range(4):  # break four labels: append a class the decoding lacks
        labels[i, len(decoded[i])] = 1 + (decoded[i][-1] % (C - 1)) if len(decoded[i]) else 1
    np.savez(d / "calib.npz", x=x)
    np.savez(d / "eval.npz", x=x, labels=labels)
    return {"dir": d, "model": model}


def test_cli_deploys_judged_by_ctc_text_accuracy(recognizer, tmp_path) -> None:
    d = recognizer["dir"]
    args = [sys.executable, "-m", "edgeopt", "deploy", str(recognizer["model"]), "--target", "cpu", "--precision",
            "fp32", "--calib", str(d / "calib.npz"), "--eval", str(d / "eval.npz"), "--metric", "ctc-text-accuracy",
            "--max-drop", "0.5", "--timing-s", "0.1", "--no-cache", "--out", str(tmp_path / "rec.edgeopt"), "--json"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["metrics"]["metric"] == "ctc-text-accuracy"
    manifest = json.loads((tmp_path / "rec.edgeopt" / "manifest.json").read_text())
    metrics = manifest["metrics"]
    assert metrics["metric"] == "ctc-text-accuracy" and metrics["units"] == "points"
    assert metrics["reference"] == pytest.approx(75.0) and metrics["drop"] == pytest.approx(0.0)
    bad = subprocess.run([*args[:13], "--metric", "ctc-txt", "--out", str(tmp_path / "x.edgeopt")],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert bad.returncode != 0 and "unknown metric 'ctc-txt'" in bad.stderr and "ctc-text-accuracy" in bad.stderr
    assert not (tmp_path / "x.edgeopt").exists()


def test_sdk_deploys_judged_by_a_vendor_plugin_metric(recognizer, tmp_path) -> None:
    class Blanks:
        """Lower is better: mean number of decoded characters the label lacks or has in excess."""

        EDGEOPT_HOOK_API = 1

        @hookimpl
        def edgeopt_metrics(self, register) -> None:  # noqa: ANN001
            def length_error(outputs, labels) -> float:  # noqa: ANN001
                decoded = ctc_greedy_decode(outputs[0])
                return float(np.mean([abs(len(s) - np.sum(y >= 0)) for s, y in zip(decoded, labels, strict=True)]))

            register.add_metric("length-error", length_error, description="decoded length error",
                                labels="int [N, L] padded with -1", higher_is_better=False, unit="units")

    pm = get_plugin_manager()
    pm.register(Blanks(), "blanks")
    d = recognizer["dir"]
    dep = edgeopt.deploy(str(recognizer["model"]), target="cpu", precision="fp32", calib=d / "calib.npz",
                         eval=d / "eval.npz", metric="length-error", max_drop=0.0, timing_s=0.1, cache=False,
                         out=tmp_path / "v.edgeopt", input_shapes={"x": (1, T, C)}, plugin_manager=pm)
    metrics = dep.manifest["metrics"]
    assert (metrics["metric"], metrics["units"], metrics["higher_is_better"]) == ("length-error", "units", False)
    assert metrics["reference"] == pytest.approx(4 / 16) and metrics["drop"] == pytest.approx(0.0)
