"""Task metrics against labels: the built-in names with their units, each metric, and a task's full suite.

A metric reads ``outputs`` (``edgeopt.evaluate.outputs``) and the evaluation labels and returns one float; the
classification metrics are in points (percent). Names not built in are looked up among the active plugin metrics
(``edgeopt.evaluate.metric_table``). Pure numpy; results agree with scikit-learn's implementations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeopt.errors import DataError
from edgeopt.evaluate.metric_table import active as active_plugin_metric
from edgeopt.evaluate.outputs import (
    Outputs,
    as_list,
    is_label_output,
    predicted_labels,
    score_output,
    squeeze_tail,
)


@dataclass(frozen=True)
class MetricInfo:
    """A named task metric."""

    name: str
    higher_is_better: bool
    unit: str
    """``points`` (percent), ``squared units``, ``units`` or ``unitless``."""
    kind: str
    """``classification`` or ``regression``."""


@dataclass(frozen=True)
class MetricResult:
    """One metric computed on one set of outputs."""

    name: str
    value: float
    higher_is_better: bool
    unit: str
    details: dict[str, Any] = field(default_factory=dict)
    """Extra figures, e.g. ``per_class`` precision/recall/f1 by class label."""


METRICS: dict[str, MetricInfo] = {
    m.name: m
    for m in (
        MetricInfo("accuracy", True, "points", "classification"),
        MetricInfo("top5", True, "points", "classification"),
        MetricInfo("precision_macro", True, "points", "classification"),
        MetricInfo("recall_macro", True, "points", "classification"),
        MetricInfo("f1_macro", True, "points", "classification"),
        MetricInfo("mse", False, "squared units", "regression"),
        MetricInfo("mae", False, "units", "regression"),
        MetricInfo("r2", True, "unitless", "regression"),
    )
}
FIDELITY_METRICS = ("fidelity:top1_agreement", "fidelity:cosine", "fidelity:position_top1", "fidelity:map_iou",
                    "fidelity:pixel_top1", "fidelity:embedding_cosine")
"""Label-free metrics (``edgeopt.evaluate.fidelity`` says which output kind each one judges)."""


def metric_unit(name: str) -> str:
    """Unit of a metric name as recorded in the manifest: a built-in's, ``points`` for fidelity, an active plugin
    metric's (``edgeopt.evaluate.metric_table``), else ``custom`` (an SDK callable)."""
    if name in METRICS:
        return METRICS[name].unit
    if name in FIDELITY_METRICS:
        return "points"
    plugin = active_plugin_metric(name)
    return plugin.unit if plugin is not None else "custom"


# ------------------------------------------------------------------------------------ labels


def _class_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot
        return np.argmax(labels, axis=1)
    return labels.reshape(len(labels)) if labels.ndim == 2 else labels


def _regression_pair(outputs: Outputs | np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64)
    pred = np.asarray(as_list(outputs)[0], dtype=np.float64)
    if pred.shape != y.shape:
        if pred.size != y.size:
            raise DataError(
                f"prediction shape {tuple(pred.shape)} does not fit label shape {tuple(y.shape)}",
                hint="labels must have one target per prediction",
            )
        pred = pred.reshape(y.shape)
    y2 = y.reshape(len(y), -1)
    return pred.reshape(y2.shape), y2


# ------------------------------------------------------------------------------------- task metrics


def accuracy(outputs: Outputs | np.ndarray, labels: np.ndarray) -> float:
    """Percent of samples whose predicted class equals the label."""
    pred, y = predicted_labels(outputs), _class_labels(labels)
    return float(np.mean(pred == y) * 100.0)


def top_k(outputs: Outputs | np.ndarray, labels: np.ndarray, *, k: int = 5) -> float:
    """Percent of samples whose label is among the ``k`` highest scores (all classes when fewer than k)."""
    scores = score_output(as_list(outputs))
    if scores is None:
        raise DataError("top-k accuracy needs a 2-D score output", hint="use --metric accuracy")
    y = _class_labels(labels)
    if y.dtype.kind not in "iub" or (y.size and (y.min() < 0 or y.max() >= scores.shape[1])):
        raise DataError(
            f"top-k accuracy needs class indices in [0, {scores.shape[1]}) as labels",
            hint="labels must be integer class indices matching the score columns",
        )
    k = min(k, scores.shape[1])
    # a label counts when fewer than k classes score strictly higher (ties resolved in the label's favour)
    true_scores = scores[np.arange(len(y)), y.astype(np.int64)]
    higher = np.sum(scores > true_scores[:, None], axis=1)
    return float(np.mean(higher < k) * 100.0)


def top5(outputs: Outputs | np.ndarray, labels: np.ndarray) -> float:
    return top_k(outputs, labels, k=5)


def _per_class(outputs: Outputs | np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    pred, y = predicted_labels(outputs), _class_labels(labels)
    classes = np.union1d(y, pred)
    tp = np.array([np.sum((pred == c) & (y == c)) for c in classes], dtype=np.float64)
    fp = np.array([np.sum((pred == c) & (y != c)) for c in classes], dtype=np.float64)
    fn = np.array([np.sum((pred != c) & (y == c)) for c in classes], dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    return {"classes": classes, "precision": precision, "recall": recall, "f1": f1, "support": tp + fn}


def precision_macro(outputs: Outputs | np.ndarray, labels: np.ndarray) -> float:
    """Unweighted mean over classes of precision, in points (a class never predicted scores 0)."""
    return float(np.mean(_per_class(outputs, labels)["precision"]) * 100.0)


def recall_macro(outputs: Outputs | np.ndarray, labels: np.ndarray) -> float:
    """Unweighted mean over classes of recall, in points."""
    return float(np.mean(_per_class(outputs, labels)["recall"]) * 100.0)


def f1_macro(outputs: Outputs | np.ndarray, labels: np.ndarray) -> float:
    """Unweighted mean over classes of F1, in points."""
    return float(np.mean(_per_class(outputs, labels)["f1"]) * 100.0)


def mse(outputs: Outputs | np.ndarray, labels: np.ndarray) -> float:
    """Mean squared error of output 0 against the labels (squared label units)."""
    pred, y = _regression_pair(outputs, labels)
    return float(np.mean((pred - y) ** 2))


def mae(outputs: Outputs | np.ndarray, labels: np.ndarray) -> float:
    """Mean absolute error of output 0 against the labels."""
    pred, y = _regression_pair(outputs, labels)
    return float(np.mean(np.abs(pred - y)))


def r2(outputs: Outputs | np.ndarray, labels: np.ndarray) -> float:
    """Coefficient of determination, averaged uniformly over targets (a constant target scores 1 or 0)."""
    pred, y = _regression_pair(outputs, labels)
    ss_res = np.sum((y - pred) ** 2, axis=0)
    ss_tot = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        per = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return float(np.mean(per))


_FUNCS: dict[str, Callable[[Outputs, np.ndarray], float]] = {
    "accuracy": accuracy,
    "top5": top5,
    "precision_macro": precision_macro,
    "recall_macro": recall_macro,
    "f1_macro": f1_macro,
    "mse": mse,
    "mae": mae,
    "r2": r2,
}


def task_metric(name: str, outputs: Outputs | np.ndarray, labels: np.ndarray) -> MetricResult:
    """Compute the named task metric (a built-in, else an active plugin metric); classification metrics carry
    per-class figures in ``details``."""
    plugin = active_plugin_metric(name) if name not in _FUNCS else None
    if plugin is not None:
        return MetricResult(name, plugin(as_list(outputs), labels), plugin.higher_is_better, plugin.unit)
    if name not in _FUNCS:
        raise DataError(f"unknown metric {name!r}", hint=f"choose one of: {', '.join(METRICS)}")
    info = METRICS[name]
    details: dict[str, Any] = {}
    if name in ("precision_macro", "recall_macro", "f1_macro"):
        pc = _per_class(outputs, labels)
        details["per_class"] = {
            str(c): {
                "precision": float(pc["precision"][i] * 100),
                "recall": float(pc["recall"][i] * 100),
                "f1": float(pc["f1"][i] * 100),
                "support": int(pc["support"][i]),
            }
            for i, c in enumerate(pc["classes"].tolist())
        }
    return MetricResult(name, _FUNCS[name](outputs, labels), info.higher_is_better, info.unit, details)


def infer_task_metric(outputs: Outputs | np.ndarray, labels: np.ndarray) -> str:
    """``accuracy`` when the labels are class indices (or names) and some output is class-like, else ``mse``."""
    y = np.asarray(labels)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        return "mse"
    outs = as_list(outputs)
    if y.dtype.kind in "USO":
        return "accuracy" if any(is_label_output(a) for a in outs) else "mse"
    integral = y.dtype.kind in "biu" or (
        y.dtype.kind == "f" and bool(np.all(np.isfinite(y))) and bool(np.all(y == np.round(y)))
    )
    if not integral:
        return "mse"
    if any(is_label_output(a) and squeeze_tail(a).dtype.kind in "iub" for a in outs):
        return "accuracy"
    scores = score_output(outs)
    if scores is not None and y.size and y.min() >= 0 and y.max() < scores.shape[1]:
        return "accuracy"
    return "mse"


TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "precision_macro", "recall_macro", "f1_macro"),
    "regression": ("mse", "mae", "r2"),
}
"""The metrics ``metric_suite`` reports for each kind of task."""


def metric_suite(outputs: Outputs | np.ndarray, labels: np.ndarray, *, kind: str | None = None) -> dict[str, float]:
    """Every metric of the task's kind, by name: accuracy/precision/recall/F1 (macro, points) for a classifier,
    MSE/MAE/R² for a regressor. ``kind`` (``classification`` or ``regression``) is inferred like
    ``infer_task_metric`` when None. ``outputs`` may be a model's outputs or a framework's own predictions
    (1-D labels, or a regressor's values)."""
    kind = kind or METRICS[infer_task_metric(outputs, labels)].kind
    if kind not in TASK_METRICS:
        raise DataError(f"unknown task kind {kind!r}", hint=f"choose one of: {', '.join(TASK_METRICS)}")
    return {name: _FUNCS[name](outputs, labels) for name in TASK_METRICS[kind]}


