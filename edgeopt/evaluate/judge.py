"""Judging a candidate against the reference on the same samples: collect its outputs, refuse a broken one, score it.

``run_outputs`` runs a model over the evaluation data, ``check_outputs`` names a reason to refuse the candidate
outright (or None), and ``evaluate`` turns both sets of outputs into ``Metrics``: the task metric with labels
(``edgeopt.evaluate.task_metrics``), else the label-free proxy (``edgeopt.evaluate.fidelity``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from edgeopt.errors import CompileError, DataError
from edgeopt.evaluate.fidelity import choose_proxy, fidelity, proxy_scores
from edgeopt.evaluate.outputs import Outputs, as_list, row_blocks, shape_mismatch
from edgeopt.evaluate.task_metrics import FIDELITY_METRICS, infer_task_metric, task_metric
from edgeopt.types import Dataset, Metrics, Runner

CustomMetric = Callable[[Outputs, "np.ndarray | None"], float]
"""An SDK metric: ``(outputs, labels) -> float``, higher is better."""


def _spread(a: np.ndarray) -> float:
    """Largest difference of any sample from the first one."""
    if not a.size:
        return 0.0
    first = a[:1].reshape(1, -1).astype(np.float64)
    return max(float(np.max(np.abs(block - first))) for block in row_blocks(a))


def _max_abs(a: np.ndarray) -> float:
    return max((float(np.max(np.abs(block))) for block in row_blocks(a)), default=0.0) if a.size else 0.0


def check_outputs(reference: Outputs, candidate: Outputs) -> str | None:
    """A reason to refuse the candidate outright, or None.

    Refused: outputs of another count or shape; NaN/Inf where the reference is finite; an output that is
    all zeros where the reference's is not (vanished); an output that is (nearly) constant across samples
    while the reference's varies (collapse). A reference that is itself constant across samples is not a
    collapse.
    """
    ref, cand = as_list(reference), as_list(candidate)
    reason = shape_mismatch(ref, cand)
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
        ref_scale = _max_abs(r)
        if ref_spread <= 1e-6 * ref_scale or ref_spread == 0:
            continue  # the reference itself does not vary across samples
        if _spread(c) <= 1e-3 * ref_spread:
            return (
                f"output {i} collapsed: it is constant across {len(c)} samples while the reference varies "
                f"(reference spread {ref_spread:.3g})"
            )
    return None


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
    ref, cand = as_list(reference_outputs), as_list(candidate_outputs)
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
