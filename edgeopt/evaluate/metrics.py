"""Quality of a candidate model against the reference: task metrics, fidelity, output sanity checks.

Everything works on ``outputs``: one array per model output, samples stacked on axis 0 (what
``run_outputs`` returns). Pure numpy; results agree with scikit-learn's implementations.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from edgeopt.errors import CompileError, DataError
from edgeopt.evaluate.fidelity import choose_proxy, cosine_rows, proxy_scores
from edgeopt.evaluate.metric_table import active as active_plugin_metric
from edgeopt.types import Dataset, Metrics, Runner

Outputs = Sequence[np.ndarray]
CustomMetric = Callable[[Outputs, "np.ndarray | None"], float]
"""An SDK metric: ``(outputs, labels) -> float``, higher is better."""

SQNR_CAP_DB = 999.0
"""SQNR reported when the candidate equals the reference exactly (the true value is infinite)."""


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


# ------------------------------------------------------------------------------------ picking outputs


def _as_list(outputs: Outputs | np.ndarray) -> list[np.ndarray]:
    return [np.asarray(outputs)] if isinstance(outputs, np.ndarray) else [np.asarray(o) for o in outputs]


def _is_scores(a: np.ndarray) -> bool:
    """2-D float scores over more than one class (or ``(n, C, 1, 1)`` as conv classifiers emit)."""
    a = _squeeze_tail(a)
    return a.ndim == 2 and a.shape[1] > 1 and a.dtype.kind == "f"


def _is_label_output(a: np.ndarray) -> bool:
    a = _squeeze_tail(a)
    return a.ndim == 1 and a.dtype.kind in "iubUSO"


def _squeeze_tail(a: np.ndarray) -> np.ndarray:
    while a.ndim > 2 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2 and a.shape[1] == 1 and a.dtype.kind != "f":
        a = a[:, 0]
    return a


def _score_output(outputs: list[np.ndarray]) -> np.ndarray | None:
    for a in outputs:
        if _is_scores(a):
            return _squeeze_tail(a)
    return None


def predicted_labels(outputs: Outputs | np.ndarray) -> np.ndarray:
    """Class predictions: output 0 when class-like, else the first class-like output.

    A 1-D integer/string output (scikit-learn's label output) is used directly; 2-D float scores give their
    argmax. Raises ``DataError`` when no output looks like a classifier's.
    """
    outs = _as_list(outputs)
    for a in outs:
        if _is_label_output(a):
            return _squeeze_tail(a)
        if _is_scores(a):
            return np.argmax(_squeeze_tail(a), axis=1)
    shapes = [tuple(a.shape) for a in outs]
    raise DataError(
        f"no model output looks like class predictions (output shapes {shapes})",
        hint="use a regression metric (mse, mae, r2) or give --metric explicitly",
    )


def _class_labels(labels: np.ndarray) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[1] > 1:  # one-hot
        return np.argmax(labels, axis=1)
    return labels.reshape(len(labels)) if labels.ndim == 2 else labels


def _regression_pair(outputs: Outputs | np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.float64)
    pred = np.asarray(_as_list(outputs)[0], dtype=np.float64)
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
    scores = _score_output(_as_list(outputs))
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
        return MetricResult(name, plugin(_as_list(outputs), labels), plugin.higher_is_better, plugin.unit)
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
    outs = _as_list(outputs)
    if y.dtype.kind in "USO":
        return "accuracy" if any(_is_label_output(a) for a in outs) else "mse"
    integral = y.dtype.kind in "biu" or (
        y.dtype.kind == "f" and bool(np.all(np.isfinite(y))) and bool(np.all(y == np.round(y)))
    )
    if not integral:
        return "mse"
    if any(_is_label_output(a) and _squeeze_tail(a).dtype.kind in "iub" for a in outs):
        return "accuracy"
    scores = _score_output(outs)
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


# ----------------------------------------------------------------------------------------- fidelity


def _flat(outputs: Sequence[np.ndarray], n: int) -> np.ndarray:
    """All numeric outputs of each sample concatenated into one float64 row (one row if none is per-sample)."""
    numeric = [a for a in outputs if a.dtype.kind in "fiub"]
    per_sample = [a for a in numeric if a.ndim and len(a) == n]
    if len(per_sample) == len(numeric) and numeric:
        return np.concatenate([a.astype(np.float64).reshape(n, -1) for a in numeric], axis=1)
    return np.concatenate([a.astype(np.float64).reshape(-1) for a in numeric])[None, :] if numeric else np.zeros((0, 0))


def _top1(ref: list[np.ndarray], cand: list[np.ndarray]) -> dict[str, float]:
    """Top-1 agreement over the samples whose reference has a single top class (ties make it meaningless)."""
    for i, a in enumerate(ref):
        if _is_scores(a):
            sr, sc = _squeeze_tail(a).astype(np.float64), _squeeze_tail(cand[i]).astype(np.float64)
            top = np.sort(sr, axis=1)
            tol = 1e-6 * np.maximum(np.abs(sr).max(axis=1), 1e-30)
            decisive = top[:, -1] - top[:, -2] > tol
            if not np.any(decisive):
                return {}  # e.g. a model whose weights are all equal: every class ties
            agree = np.argmax(sc[decisive], axis=1) == np.argmax(sr[decisive], axis=1)
            return {"top1_agreement": float(np.mean(agree) * 100.0)}
    for i, a in enumerate(ref):
        if _is_label_output(a):
            return {"top1_agreement": float(np.mean(_squeeze_tail(a) == _squeeze_tail(cand[i])) * 100.0)}
    return {}


def _check_same_shapes(reference: list[np.ndarray], candidate: list[np.ndarray]) -> None:
    reason = _shape_mismatch(reference, candidate)
    if reason:
        raise CompileError(f"candidate outputs do not match the reference: {reason}")


def fidelity(reference: Outputs, candidate: Outputs) -> dict[str, float]:
    """Label-free agreement of ``candidate`` with ``reference`` over all samples.

    ``cosine`` (mean per-sample cosine of all outputs concatenated; two zero vectors count 1.0; when each
    sample holds a single value, e.g. a ``[N, 1]`` score, the cosine of that column over the samples, since the
    cosine of two single numbers only compares their signs),
    ``sqnr_db`` (10·log10(Σref² / Σ(ref−cand)²), capped at ±999), ``max_abs_error``, and
    ``top1_agreement`` (percent of samples whose candidate top class is the reference's, counted over the
    samples where the reference has a single top class; absent when it never has) when an output holds 2-D
    scores over more than one class, else when one holds 1-D class labels. Non-numeric outputs (string
    labels) count only towards ``top1_agreement``.
    """
    ref, cand = _as_list(reference), _as_list(candidate)
    _check_same_shapes(ref, cand)
    if not ref:
        raise CompileError("the model produced no outputs to compare")
    n = len(ref[0]) if ref[0].ndim else 1
    result = _top1(ref, cand)
    r, c = _flat(ref, n), _flat(cand, n)
    if not r.size:
        return result
    if r.shape[1] == 1:
        r, c = r.T, c.T
    cos = cosine_rows(r, c)
    result["cosine"] = float(np.clip(np.mean(cos), -1.0, 1.0)) if len(cos) else 1.0
    signal, noise = float(np.sum(r**2)), float(np.sum((r - c) ** 2))
    if noise == 0:
        sqnr = SQNR_CAP_DB
    elif signal == 0:
        sqnr = -SQNR_CAP_DB
    else:
        sqnr = max(-SQNR_CAP_DB, min(SQNR_CAP_DB, 10.0 * math.log10(signal / noise)))
    result["sqnr_db"] = sqnr
    result["max_abs_error"] = float(np.max(np.abs(r - c))) if r.size else 0.0
    return result


# ------------------------------------------------------------------------------------------- checks


def _shape_mismatch(reference: list[np.ndarray], candidate: list[np.ndarray]) -> str | None:
    if len(reference) != len(candidate):
        return f"candidate has {len(candidate)} outputs, the reference {len(reference)}"
    for i, (r, c) in enumerate(zip(reference, candidate, strict=True)):
        if r.shape != c.shape:
            return f"output {i} has shape {tuple(c.shape)}, the reference {tuple(r.shape)}"
    return None


def _spread(a: np.ndarray) -> float:
    """Largest difference of any sample from the first one."""
    flat = a.reshape(len(a), -1).astype(np.float64)
    return float(np.max(np.abs(flat - flat[:1]))) if flat.size else 0.0


def check_outputs(reference: Outputs, candidate: Outputs) -> str | None:
    """A reason to refuse the candidate outright, or None.

    Refused: outputs of another count or shape; NaN/Inf where the reference is finite; an output that is
    all zeros where the reference's is not (vanished); an output that is (nearly) constant across samples
    while the reference's varies (collapse). A reference that is itself constant across samples is not a
    collapse.
    """
    ref, cand = _as_list(reference), _as_list(candidate)
    reason = _shape_mismatch(ref, cand)
    if reason:
        return reason
    for i, (r, c) in enumerate(zip(ref, cand, strict=True)):
        if c.dtype.kind in "fc":
            bad = ~np.isfinite(c)
            if r.dtype.kind in "fc":
                bad &= np.isfinite(r)
            if np.any(bad):
                return f"output {i} has {int(np.sum(bad))} NaN/Inf values where the reference is finite"
        if c.dtype.kind in "fc" and r.dtype.kind in "fiubc" and c.size and not np.any(c) and np.any(r):
            return f"output {i} is all zeros while the reference's is not (the output vanished)"
    for i, (r, c) in enumerate(zip(ref, cand, strict=True)):
        if r.ndim == 0 or len(r) < 2 or r.dtype.kind not in "fiub" or c.dtype.kind not in "fiub":
            continue
        ref_spread = _spread(r)
        ref_scale = float(np.max(np.abs(r.astype(np.float64)))) if r.size else 0.0
        if ref_spread <= 1e-6 * ref_scale or ref_spread == 0:
            continue  # the reference itself does not vary across samples
        if _spread(c) <= 1e-3 * ref_spread:
            return (
                f"output {i} collapsed: it is constant across {len(c)} samples while the reference varies "
                f"(reference spread {ref_spread:.3g})"
            )
    return None


# ---------------------------------------------------------------------------------------- evaluation


def evaluate(
    reference_outputs: Outputs,
    candidate_outputs: Outputs,
    *,
    labels: np.ndarray | None,
    metric: str | CustomMetric | None = None,
    synthetic: bool,
    inputs: Mapping[str, np.ndarray] | None = None,
) -> Metrics:
    """Compare a candidate with the reference on the same samples.

    With labels: the task metric (``metric``, else inferred) on both; ``drop`` is in the metric's units and
    positive when the candidate is worse. Without labels: the proxy of the output's kind
    (``edgeopt.evaluate.fidelity.choose_proxy``: top-1 agreement for classifiers, per-position top-1 for sequences of
    class distributions, IoU or per-pixel top-1 for dense maps, mask-pooled cosine for embeddings, else
    ``fidelity:cosine`` ×100), reference 100; ``inputs`` (the evaluation feeds) let it find an attention
    mask. A name may be a plugin's (``edgeopt.evaluate.metric_table``, active once its plugin manager listed it). A
    callable ``metric`` is ``(outputs, labels) -> float``, higher is better unless it has a false
    ``higher_is_better`` (a plugin's ``TaskMetric`` does; its ``name`` names it). ``fidelity`` is always
    filled. Labels longer than the outputs are cut to match (the harness may drop a final partial batch).
    """
    ref, cand = _as_list(reference_outputs), _as_list(candidate_outputs)
    fid = fidelity(ref, cand)
    n = len(ref[0]) if ref and ref[0].ndim else 0
    if labels is not None:
        labels = np.asarray(labels)
        if len(labels) < n:
            raise DataError(f"{len(labels)} labels for {n} evaluated samples", hint="give one label per sample")
        labels = labels[:n]
    if callable(metric):  # an SDK callable, or a plugin's TaskMetric object
        name = getattr(metric, "name", None) or getattr(metric, "__name__", "custom")
        hib = bool(getattr(metric, "higher_is_better", True))
        rv, cv = float(metric(ref, labels)), float(metric(cand, labels))
        return _metrics(name, rv, cv, rv - cv if hib else cv - rv, hib, fid, n, synthetic)
    if metric in FIDELITY_METRICS or (metric is None and labels is None):
        proxy = choose_proxy(ref, inputs)
        fid.update(proxy_scores(replace(proxy, name=metric.split(":", 1)[1]) if metric else proxy, ref, cand, inputs))
        if metric:
            name = metric
        elif proxy.name in fid:
            name = f"fidelity:{proxy.name}"
        else:  # a classifier whose reference scores all tie, or no kind-specific proxy
            name = "fidelity:top1_agreement" if "top1_agreement" in fid else "fidelity:cosine"
        key = name.split(":", 1)[1]
        if key not in fid:
            raise DataError(f"{name} cannot be computed for this model's outputs", hint="use fidelity:cosine")
        value = fid[key] * 100.0 if key == "cosine" else fid[key]
        why = proxy.why if key == proxy.name else f"{key} (--metric)"
        return replace(_metrics(name, 100.0, value, 100.0 - value, True, fid, n, synthetic), proxy=why)
    if labels is None:
        raise DataError(
            f"metric {metric!r} needs labels, and the evaluation data has none",
            hint="add a 'labels' array to the .npz, or leave --metric unset to compare against the original",
        )
    name = metric or infer_task_metric(ref, labels)
    r, c = task_metric(name, ref, labels), task_metric(name, cand, labels)
    drop = r.value - c.value if r.higher_is_better else c.value - r.value
    return _metrics(name, r.value, c.value, drop, r.higher_is_better, fid, n, synthetic)


def _metrics(
    name: str, ref: float, cand: float, drop: float, hib: bool, fid: dict[str, float], n: int, synthetic: bool
) -> Metrics:
    return Metrics(
        metric=name, reference=ref, candidate=cand, drop=drop, higher_is_better=hib, fidelity=fid, samples=n,
        synthetic_data=synthetic,
    )


def run_outputs(runner: Runner, dataset: Dataset, *, batch: int) -> list[np.ndarray]:
    """Run ``runner`` over ``dataset.batches(batch)``; each output concatenated along axis 0.

    A stateful dataset (``dataset.state``) runs as one stream (``edgeopt.data.stream.stream_outputs``: one sample
    per call, each call's state fed back) and gives the stream's answers, its state outputs left out
    (``edgeopt.data.stream.answers``). With inputs fed whole at batch 1, per-step outputs are stacked on axis 0 (a
    leading size-1 batch axis dropped), so an output without a batch axis still has one row per sample.
    """
    from edgeopt.data.stream import answers, stream_outputs

    if dataset.state:
        outputs, _ = stream_outputs(runner.run, dataset)
        return answers(outputs, dataset)
    if dataset.fed_whole and batch == 1:
        return stream_outputs(runner.run, dataset)[0]
    collected: list[list[np.ndarray]] = []
    for feeds in dataset.batches(batch):
        outs = [np.atleast_1d(np.asarray(o)) for o in runner.run(feeds)]
        if not collected:
            collected = [[] for _ in outs]
        if len(outs) != len(collected):
            raise CompileError(f"the runner returned {len(outs)} outputs, earlier {len(collected)}")
        for acc, o in zip(collected, outs, strict=True):
            acc.append(o)
    return [np.concatenate(parts, axis=0) for parts in collected]
