"""Task metrics (against scikit-learn), fidelity, output checks and evaluation (edgeopt.evaluate)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from edgeopt.errors import CompileError, DataError
from edgeopt.evaluate import fidelity as fid
from edgeopt.evaluate import judge
from edgeopt.evaluate import task_metrics as tm
from edgeopt.types import Dataset

RNG_SEEDS = [0, 1, 2]


def _classification(seed: int, n: int = 200, classes: int = 7) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    scores = rng.standard_normal((n, classes)).astype(np.float32)
    scores[np.arange(n), y] += rng.uniform(0, 2.5, size=n).astype(np.float32)  # better than chance
    return scores, y


@pytest.mark.parametrize("seed", RNG_SEEDS)
def test_classification_metrics_match_sklearn(seed: int) -> None:
    scores, y = _classification(seed)
    pred = scores.argmax(axis=1)
    assert tm.accuracy([scores], y) == pytest.approx(100 * skm.accuracy_score(y, pred))
    for ours, theirs in [(tm.precision_macro, skm.precision_score), (tm.recall_macro, skm.recall_score),
                         (tm.f1_macro, skm.f1_score)]:
        expected = 100 * theirs(y, pred, average="macro", zero_division=0)
        assert ours([scores], y) == pytest.approx(expected), ours.__name__
    assert tm.top5([scores], y) == pytest.approx(100 * skm.top_k_accuracy_score(y, scores, k=5))
    assert tm.top_k([scores], y, k=2) == pytest.approx(100 * skm.top_k_accuracy_score(y, scores, k=2))


def test_per_class_details_match_sklearn() -> None:
    scores, y = _classification(5, classes=4)
    pred = scores.argmax(axis=1)
    res = tm.task_metric("f1_macro", [scores], y)
    p, r, f, support = skm.precision_recall_fscore_support(y, pred, zero_division=0)
    assert res.unit == "points" and res.higher_is_better
    for c in range(4):
        row = res.details["per_class"][str(c)]
        assert row["precision"] == pytest.approx(100 * p[c])
        assert row["recall"] == pytest.approx(100 * r[c])
        assert row["f1"] == pytest.approx(100 * f[c])
        assert row["support"] == support[c]


def test_class_never_predicted_scores_zero_like_sklearn() -> None:
    y = np.array([0, 0, 1, 1, 2, 2])
    labels_out = np.array([0, 0, 1, 1, 1, 1])  # class 2 never predicted
    assert tm.precision_macro([labels_out], y) == pytest.approx(
        100 * skm.precision_score(y, labels_out, average="macro", zero_division=0)
    )
    assert tm.f1_macro([labels_out], y) == pytest.approx(100 * skm.f1_score(y, labels_out, average="macro"))


@pytest.mark.parametrize("seed", RNG_SEEDS)
@pytest.mark.parametrize("targets", [1, 3])
def test_regression_metrics_match_sklearn(seed: int, targets: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((100, targets)) * 3 + 1
    pred = (y + rng.standard_normal(y.shape) * 0.7).astype(np.float32)
    if targets == 1:
        y = y[:, 0]  # labels (n,), model output (n, 1): shapes reconciled
    assert tm.mse([pred], y) == pytest.approx(skm.mean_squared_error(y, pred.reshape(y.shape)), rel=1e-6)
    assert tm.mae([pred], y) == pytest.approx(skm.mean_absolute_error(y, pred.reshape(y.shape)), rel=1e-6)
    assert tm.r2([pred], y) == pytest.approx(skm.r2_score(y, pred.reshape(y.shape)), rel=1e-6)
    assert not tm.METRICS["mse"].higher_is_better and tm.METRICS["mse"].unit == "squared units"


def test_r2_of_constant_target_matches_sklearn() -> None:
    y = np.ones(5)
    assert tm.r2([y.copy()], y) == skm.r2_score(y, y) == 1.0
    assert tm.r2([y + 1], y) == skm.r2_score(y, y + 1) == 0.0


def test_sklearn_label_and_probability_outputs() -> None:
    scores, y = _classification(3, classes=3)
    probs = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
    label_out = probs.argmax(axis=1).astype(np.int64)
    label_out[:10] = (label_out[:10] + 1) % 3  # label output differs from argmax: it must win for accuracy
    assert tm.accuracy([label_out, probs], y) == pytest.approx(100 * skm.accuracy_score(y, label_out))
    assert tm.top5([label_out, probs], y) == 100.0  # 3 classes: top-5 covers them all
    assert tm.infer_task_metric([label_out, probs], y) == "accuracy"


def test_string_labels() -> None:
    y = np.array(["cat", "dog", "cat", "bird"])
    out = np.array(["cat", "dog", "dog", "bird"])
    assert tm.accuracy([out], y) == 75.0
    assert tm.f1_macro([out], y) == pytest.approx(100 * skm.f1_score(y, out, average="macro"))
    assert tm.infer_task_metric([out], y) == "accuracy"


def test_conv_classifier_scores_with_trailing_unit_dims() -> None:
    scores, y = _classification(4, classes=10)
    assert tm.accuracy([scores[:, :, None, None]], y) == tm.accuracy([scores], y)


def test_infer_task_metric() -> None:
    scores, y = _classification(0)
    assert tm.infer_task_metric([scores], y) == "accuracy"
    assert tm.infer_task_metric([scores], y.astype(np.float64)) == "accuracy"
    assert tm.infer_task_metric([scores], y + 0.5) == "mse"
    assert tm.infer_task_metric([scores[:, :1]], y) == "mse"  # single regression output
    assert tm.infer_task_metric([scores], y + 100) == "mse"  # labels are not column indices


def test_metric_errors_are_clear() -> None:
    with pytest.raises(DataError, match="class predictions"):
        tm.accuracy([np.zeros((4, 1), np.float32)], np.zeros(4, np.int64))
    with pytest.raises(DataError, match="unknown metric"):
        tm.task_metric("auc", [np.zeros((4, 2))], np.zeros(4))
    with pytest.raises(DataError, match="does not fit"):
        tm.mse([np.zeros((4, 3))], np.zeros(5))


# ------------------------------------------------------------------------------------------ fidelity


def test_fidelity_of_identical_outputs_is_perfect() -> None:
    scores, _ = _classification(1)
    f = fid.fidelity([scores, scores[:, :2]], [scores.copy(), scores[:, :2].copy()])
    assert f == {"top1_agreement": 100.0, "cosine": pytest.approx(1.0), "sqnr_db": 999.0, "max_abs_error": 0.0}


def test_fidelity_values() -> None:
    ref = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], np.float32)
    cand = np.array([[0.0, 1.0], [0.0, 3.0], [0.0, 0.0]], np.float32)
    f = fid.fidelity([ref], [cand])
    assert f["cosine"] == pytest.approx((0.0 + 1.0 + 1.0) / 3)  # both-zero row counts 1.0
    assert f["sqnr_db"] == pytest.approx(10 * np.log10(5.0 / 3.0))
    assert f["max_abs_error"] == pytest.approx(1.0)
    assert f["top1_agreement"] == 50.0  # row 3 is all tied in the reference: not counted


def test_fidelity_noise_lowers_sqnr_monotonically() -> None:
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((32, 16)).astype(np.float32)
    noise = rng.standard_normal(ref.shape).astype(np.float32)
    sqnr = [fid.fidelity([ref], [ref + s * noise])["sqnr_db"] for s in (0.001, 0.01, 0.1)]
    assert sqnr[0] > sqnr[1] > sqnr[2]
    assert sqnr[1] == pytest.approx(40.0, abs=1.0)


def test_tied_reference_gives_no_top1_and_cosine_judges() -> None:
    """A model whose weights are all equal emits uniform scores: top-1 agreement says nothing there."""
    uniform = np.full((8, 1000), 0.001, np.float32)
    zeros = np.zeros_like(uniform)
    f = fid.fidelity([uniform], [zeros])
    assert "top1_agreement" not in f and f["cosine"] == 0.0 and f["sqnr_db"] == pytest.approx(0.0)
    res = judge.evaluate([uniform], [zeros], labels=None, synthetic=True)
    assert res.metric == "fidelity:cosine" and res.candidate == 0.0 and res.drop == 100.0
    res = judge.evaluate([uniform], [uniform + 1e-7], labels=None, synthetic=True)
    assert res.metric == "fidelity:cosine" and res.drop == pytest.approx(0.0, abs=1e-6)


def test_fidelity_regression_has_no_top1() -> None:
    ref = np.arange(8, dtype=np.float32).reshape(8, 1)
    assert "top1_agreement" not in fid.fidelity([ref], [ref])


def test_fidelity_shape_mismatch_raises() -> None:
    with pytest.raises(CompileError, match="shape"):
        fid.fidelity([np.zeros((4, 3))], [np.zeros((4, 2))])


# -------------------------------------------------------------------------------------------- checks


def test_check_outputs_accepts_good_candidate() -> None:
    scores, _ = _classification(2)
    assert judge.check_outputs([scores], [scores + 1e-3]) is None


def test_check_outputs_refuses_nan_inf_and_shape() -> None:
    scores, _ = _classification(2)
    bad = scores.copy()
    bad[3, 1] = np.nan
    assert "NaN/Inf" in judge.check_outputs([scores], [bad])
    bad[3, 1] = np.inf
    assert "NaN/Inf" in judge.check_outputs([scores], [bad])
    assert "shape" in judge.check_outputs([scores], [scores[:, :3]])
    assert "outputs" in judge.check_outputs([scores], [scores, scores])


def test_check_outputs_refuses_vanished_output() -> None:
    uniform = np.full((4, 10), 0.1, np.float32)
    assert "all zeros" in judge.check_outputs([uniform], [np.zeros_like(uniform)])
    assert judge.check_outputs([np.zeros_like(uniform)], [np.zeros_like(uniform)]) is None


def test_check_outputs_detects_collapse_but_not_constant_reference() -> None:
    scores, _ = _classification(2)
    collapsed = np.broadcast_to(scores[:1], scores.shape).copy()
    assert "collapsed" in judge.check_outputs([scores], [collapsed])
    labels_ref = scores.argmax(axis=1)
    assert "collapsed" in judge.check_outputs([labels_ref], [np.zeros_like(labels_ref)])
    # a model whose weights are all equal outputs the same vector for every sample: not a collapse
    constant_ref = np.full((8, 1000), 0.001, np.float32)
    assert judge.check_outputs([constant_ref], [constant_ref + 1e-6]) is None
    assert judge.check_outputs([constant_ref[:1]], [constant_ref[:1]]) is None  # one sample: nothing to judge


# ------------------------------------------------------------------------------------------ evaluate


def test_evaluate_with_labels_uses_task_metric() -> None:
    scores, y = _classification(6)
    worse = scores.copy()
    worse[:20] = -worse[:20]
    res = judge.evaluate([scores], [worse], labels=y, synthetic=False)
    assert res.metric == "accuracy" and res.higher_is_better and res.samples == len(y)
    assert res.reference == pytest.approx(tm.accuracy([scores], y))
    assert res.candidate == pytest.approx(tm.accuracy([worse], y))
    assert res.drop == pytest.approx(res.reference - res.candidate) and res.drop > 0
    assert set(res.fidelity) == {"top1_agreement", "cosine", "sqnr_db", "max_abs_error"}


def test_evaluate_lower_is_better_drop_is_positive_when_worse() -> None:
    rng = np.random.default_rng(0)
    y = rng.standard_normal(50)
    ref, cand = y[:, None] + 0.1, y[:, None] + 0.5
    res = judge.evaluate([ref], [cand], labels=y, metric="mse", synthetic=False)
    assert not res.higher_is_better
    assert res.drop == pytest.approx(res.candidate - res.reference) and res.drop > 0


def test_evaluate_without_labels_uses_fidelity() -> None:
    scores, _ = _classification(7)
    res = judge.evaluate([scores], [scores], labels=None, synthetic=True)
    assert (res.metric, res.reference, res.candidate, res.drop) == ("fidelity:top1_agreement", 100.0, 100.0, 0.0)
    assert res.synthetic_data
    reg = np.linspace(0, 1, 20, dtype=np.float32)[:, None]
    res = judge.evaluate([reg], [reg * 0.9 + 0.05], labels=None, synthetic=False)
    assert res.metric == "fidelity:cosine"
    assert res.candidate == pytest.approx(100 * res.fidelity["cosine"])
    assert res.drop == pytest.approx(100 - res.candidate)
    assert tm.metric_unit(res.metric) == "points"


def test_evaluate_custom_metric_and_label_errors() -> None:
    scores, y = _classification(8)

    def mean_max(outputs, labels):
        return float(np.mean(np.max(outputs[0], axis=1)))

    res = judge.evaluate([scores], [scores * 0.5], labels=y, metric=mean_max, synthetic=False)
    assert res.metric == "mean_max" and res.drop == pytest.approx(res.reference - res.candidate)
    with pytest.raises(DataError, match="needs labels"):
        judge.evaluate([scores], [scores], labels=None, metric="accuracy", synthetic=False)
    with pytest.raises(DataError, match="labels for"):
        judge.evaluate([scores], [scores], labels=y[:5], synthetic=False)


class _DoubleRunner:
    """A real (if trivial) runner: two outputs, batch-shaped."""

    def run(self, feeds):
        x = feeds["x"]
        return [x * 2, x.sum(axis=1)]

    def close(self) -> None:
        pass


def test_run_outputs_concatenates_batches() -> None:
    x = np.arange(24, dtype=np.float32).reshape(8, 3)
    outs = judge.run_outputs(_DoubleRunner(), Dataset({"x": x}), batch=2)
    assert [o.shape for o in outs] == [(8, 3), (8,)]
    np.testing.assert_array_equal(outs[0], x * 2)
    np.testing.assert_array_equal(outs[1], x.sum(axis=1))
