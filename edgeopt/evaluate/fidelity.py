"""Label-free fidelity: figures every model gets, and the proxy that judges the way the task reads the output.

``fidelity`` compares all outputs of a candidate with the reference's on the same samples (cosine, SQNR, largest
error, top-1 agreement); it needs no labels and fills ``Metrics.fidelity`` for every candidate.

Without labels a candidate is judged against the original model's outputs. Cosine of the raw outputs is
stricter than most tasks (a CTC recognizer whose per-position class scores drift while every decoded
character stays the same) and looser than others (an embedding whose padded positions dominate). So the
first output that carries the answer (the first float output: integer outputs are often inputs passed
through, such as token ids) is read as one of these kinds, from its shape and values alone (never from names), and the
proxy of that kind guards the budget:

- ``classifier`` — ``[N, C]`` scores or 1-D labels: ``top1_agreement``, % of samples with the same top class.
- ``sequence`` — ``[N, T, C]`` whose rows are probability (or log-probability) distributions over C > 1:
  ``position_top1``, % of positions with the same top class (CTC recognizers, token taggers).
- ``dense`` — ``[N, 1, H, W]`` values in [0, 1] (a probability map): ``map_iou``, IoU of the maps
  thresholded at 0.5, pooled over samples; ``[N, C, H, W]``, C > 1: ``pixel_top1``, % of pixels with the
  same top class.
- ``embedding`` — ``[N, D]`` or ``[N, T, D]`` features: ``embedding_cosine``, mean per-sample cosine x 100,
  of the mask-pooled embedding when an input is an attention mask.
- ``other`` — anything else: ``cosine``, mean per-sample cosine of all outputs x 100.

Each proxy is 100 for identical outputs; the metric is ``fidelity:<proxy>``.

An input counts as an attention mask when it is integer or boolean, ``[N, T]`` with the output's ``T``, and
holds only 0 and 1: padded positions (0) are left out of the pooled embedding. For embeddings the rank
correlation of the pairwise similarities (what retrieval uses) is reported beside the proxy as
``similarity_rank_corr``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from edgeopt.errors import CompileError
from edgeopt.evaluate import outputs as blocks
from edgeopt.evaluate.outputs import (
    Outputs,
    as_list,
    is_label_output,
    is_scores,
    shape_mismatch,
    squeeze_tail,
)

__all__ = [
    "SQNR_CAP_DB", "Proxy", "attention_mask", "choose_proxy", "cosine_rows", "fidelity", "output_kind", "proxy_scores",
]

MAP_THRESHOLD = 0.5
"""Threshold of a probability map for ``map_iou``."""
_DIST_TOL = 1e-3
SQNR_CAP_DB = 999.0
"""SQNR reported when the candidate equals the reference exactly (the true value is infinite)."""


@dataclass(frozen=True)
class Proxy:
    """The fidelity proxy chosen for a model's outputs."""

    kind: str
    """``classifier``, ``sequence``, ``dense``, ``embedding`` or ``other``."""
    name: str
    """Key in the fidelity dict and the metric name after ``fidelity:`` (e.g. ``position_top1``)."""
    why: str
    """One line for the manifest and report: what was detected."""
    output: int = 0
    """Index of the output the proxy reads."""


def _is_distribution(a: np.ndarray) -> bool:
    """Whether the last axis holds probability or log-probability distributions (rows sum to 1)."""
    if a.dtype.kind != "f" or a.shape[-1] < 2 or not a.size:
        return False
    rows = a.reshape(-1, a.shape[-1]).astype(np.float64)
    if not np.all(np.isfinite(rows)):
        return False
    if rows.min() >= -_DIST_TOL and np.allclose(rows.sum(axis=1), 1.0, atol=1e-2):
        return True
    if rows.max() <= _DIST_TOL:  # log-softmax
        return bool(np.allclose(np.exp(rows).sum(axis=1), 1.0, atol=1e-2))
    return False


def output_kind(out: np.ndarray) -> str:
    """The kind of one output (see the module docstring), from its shape and values."""
    a = np.asarray(out)
    if a.ndim == 1:
        return "classifier" if a.dtype.kind in "iubUSO" else "other"
    if a.dtype.kind != "f":
        return "other"
    if a.ndim == 4 and a.shape[2] >= 4 and a.shape[3] >= 4:
        if a.shape[1] == 1:
            return "dense" if a.min() >= 0.0 and a.max() <= 1.0 else "other"
        return "dense"
    if a.ndim == 3 and a.shape[2] > 1:
        return "sequence" if _is_distribution(a) else "embedding"
    if a.ndim == 2 and a.shape[1] > 1:
        return "classifier" if _is_distribution(a) else "embedding"
    return "other"


def attention_mask(inputs: Mapping[str, np.ndarray] | None, n: int, t: int) -> np.ndarray | None:
    """The ``[n, t]`` 0/1 mask among ``inputs`` (its first ``n`` rows), or None (see the module docstring)."""
    for value in (inputs or {}).values():
        a = np.asarray(value)
        if a.ndim == 2 and a.shape[0] >= n and a.shape[1] == t and a.dtype.kind in "iub":
            a = a[:n]  # the evaluation may drop a final partial batch
            if np.isin(a, (0, 1)).all() and a.any():
                return a.astype(bool)
    return None


def choose_proxy(reference: Sequence[np.ndarray], inputs: Mapping[str, np.ndarray] | None = None) -> Proxy:
    """The proxy for these reference outputs (the first float output decides; see the module docstring).

    A ``[N, C]`` output that is not a distribution is judged as an embedding only when it is the model's
    only output and C is larger than a classifier's typical head (> 32): logits of a 10-class classifier
    stay a classifier."""
    if not reference:
        return Proxy("other", "cosine", "no outputs")
    index = _judged_output(reference)
    proxy = _choose(np.asarray(reference[index]), len(reference), inputs)
    return Proxy(proxy.kind, proxy.name, proxy.why.replace("output 0", f"output {index}"), index)


def _judged_output(reference: Sequence[np.ndarray]) -> int:
    """The first output that carries the model's answer: a float output (integer outputs are often inputs passed
    through, such as token ids), else a 1-D label output, else output 0."""
    for i, out in enumerate(reference):
        if np.asarray(out).dtype.kind == "f":
            return i
    for i, out in enumerate(reference):
        if output_kind(np.asarray(out)) == "classifier":
            return i
    return 0


def _choose(first: np.ndarray, outputs: int, inputs: Mapping[str, np.ndarray] | None) -> Proxy:
    kind = output_kind(first)
    shape = list(first.shape)
    if kind == "embedding" and first.ndim == 2 and (first.shape[1] <= 32 or outputs > 1):
        kind = "classifier"
    if kind == "classifier":
        return Proxy(kind, "top1_agreement", f"output 0 {shape}: class scores")
    if kind == "sequence":
        return Proxy(kind, "position_top1", f"output 0 {shape}: a class distribution per position")
    if kind == "dense":
        if first.shape[1] == 1:
            return Proxy(kind, "map_iou", f"output 0 {shape}: a probability map, thresholded at {MAP_THRESHOLD}")
        return Proxy(kind, "pixel_top1", f"output 0 {shape}: class scores per pixel")
    if kind == "embedding":
        masked = first.ndim == 3 and attention_mask(inputs, first.shape[0], first.shape[1]) is not None
        pooled = ", mask-pooled over the attention mask" if masked else ""
        return Proxy(kind, "embedding_cosine", f"output 0 {shape}: features{pooled}")
    return Proxy(kind, "cosine", f"output 0 {shape}: all outputs compared by cosine")


def cosine_rows(r: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Cosine of each row pair of two ``[n, k]`` arrays; two zero rows count 1.0, one zero row 0.0."""
    nr, nc = np.linalg.norm(r, axis=1), np.linalg.norm(c, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cos = np.where((nr == 0) & (nc == 0), 1.0, np.where((nr == 0) | (nc == 0), 0.0,
                                                             np.sum(r * c, axis=1) / (nr * nc)))
    return np.clip(cos, -1.0, 1.0)


def _pooled(a: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    a = a.astype(np.float64)
    if a.ndim == 2:
        return a
    if mask is None:
        return a.reshape(len(a), -1)
    weights = mask[..., None].astype(np.float64)
    return (a * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)


def _rank_corr(r: np.ndarray, c: np.ndarray) -> float | None:
    """Spearman correlation of the off-diagonal pairwise cosine similarities (None below 3 samples)."""
    n = len(r)
    if n < 3:
        return None

    def sims(x: np.ndarray) -> np.ndarray:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        return (x @ x.T)[np.triu_indices(n, 1)]

    ranks = [np.argsort(np.argsort(s, kind="stable"), kind="stable").astype(np.float64) for s in (sims(r), sims(c))]
    if np.std(ranks[0]) == 0 or np.std(ranks[1]) == 0:
        return None
    return float(np.corrcoef(ranks[0], ranks[1])[0, 1])


def proxy_scores(
    proxy: Proxy, reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray],
    inputs: Mapping[str, np.ndarray] | None = None,
) -> dict[str, float]:
    """The proxy's value (0-100, 100 identical) under ``proxy.name``, plus figures reported beside it.

    ``cosine`` and ``top1_agreement`` come from ``fidelity`` for every model; this adds the
    kind-specific ones."""
    r, c = np.asarray(reference[proxy.output]), np.asarray(candidate[proxy.output])
    if proxy.name == "position_top1":
        return {"position_top1": float(np.mean(np.argmax(r, -1) == np.argmax(c, -1)) * 100.0)}
    if proxy.name == "pixel_top1":
        return {"pixel_top1": float(np.mean(np.argmax(r, 1) == np.argmax(c, 1)) * 100.0)}
    if proxy.name == "map_iou":
        rb, cb = r > MAP_THRESHOLD, c > MAP_THRESHOLD
        union = np.logical_or(rb, cb).sum()
        iou = 1.0 if union == 0 else float(np.logical_and(rb, cb).sum() / union)
        return {"map_iou": iou * 100.0, "pixel_agreement": float(np.mean(rb == cb) * 100.0)}
    if proxy.name == "embedding_cosine":
        mask = attention_mask(inputs, r.shape[0], r.shape[1]) if r.ndim == 3 else None
        pr, pc = _pooled(r, mask), _pooled(c, mask)
        out = {"embedding_cosine": float(np.mean(cosine_rows(pr, pc)) * 100.0)}
        rank = _rank_corr(pr, pc)
        if rank is not None:
            out["similarity_rank_corr"] = rank
        return out
    return {}


# ------------------------------------------------------------------------------ figures for every model


def _flat(outputs: Sequence[np.ndarray], n: int) -> np.ndarray:
    """All numeric outputs of each sample concatenated into one float64 row (one row if none is per-sample)."""
    numeric = [a for a in outputs if a.dtype.kind in "fiub"]
    per_sample = [a for a in numeric if a.ndim and len(a) == n]
    if len(per_sample) == len(numeric) and numeric:
        return np.concatenate([a.astype(np.float64).reshape(n, -1) for a in numeric], axis=1)
    return np.concatenate([a.astype(np.float64).reshape(-1) for a in numeric])[None, :] if numeric else np.zeros((0, 0))


def _flat_blocks(ref: list[np.ndarray], cand: list[np.ndarray], n: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``_flat`` of both sides, a block of about ``BLOCK_VALUES`` values of samples at a time; one block (``[1, n]``,
    the cosine then running over the samples) when each sample holds a single value, and one block when the
    outputs are not all per-sample."""
    pairs = [(r, c) for r, c in zip(ref, cand, strict=True) if r.dtype.kind in "fiub" and c.dtype.kind in "fiub"]
    per_sample = n > 1 and pairs and all(r.ndim and len(r) == n for r, _ in pairs)
    width = sum(r[:1].size for r, _ in pairs) if per_sample else 0
    if width < 2:
        r, c = _flat(ref, n), _flat(cand, n)
        yield (r.T, c.T) if r.size and r.shape[1] == 1 else (r, c)
        return
    step = max(1, blocks.BLOCK_VALUES // width)  # read at call time: tests shrink it
    for start in range(0, n, step):
        rows = min(step, n - start)
        yield (_flat([r[start:start + step] for r, _ in pairs], rows),
               _flat([c[start:start + step] for _, c in pairs], rows))


def _top1(ref: list[np.ndarray], cand: list[np.ndarray]) -> dict[str, float]:
    """Top-1 agreement over the samples whose reference has a single top class (ties make it meaningless)."""
    for i, a in enumerate(ref):
        if is_scores(a):
            sr, sc = squeeze_tail(a).astype(np.float64), squeeze_tail(cand[i]).astype(np.float64)
            top = np.sort(sr, axis=1)
            tol = 1e-6 * np.maximum(np.abs(sr).max(axis=1), 1e-30)
            decisive = top[:, -1] - top[:, -2] > tol
            if not np.any(decisive):
                return {}  # e.g. a model whose weights are all equal: every class ties
            agree = np.argmax(sc[decisive], axis=1) == np.argmax(sr[decisive], axis=1)
            return {"top1_agreement": float(np.mean(agree) * 100.0)}
    for i, a in enumerate(ref):
        if is_label_output(a):
            return {"top1_agreement": float(np.mean(squeeze_tail(a) == squeeze_tail(cand[i])) * 100.0)}
    return {}


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
    ref, cand = as_list(reference), as_list(candidate)
    reason = shape_mismatch(ref, cand)
    if reason:
        raise CompileError(f"candidate outputs do not match the reference: {reason}")
    if not ref:
        raise CompileError("the model produced no outputs to compare")
    n = len(ref[0]) if ref[0].ndim else 1
    result = _top1(ref, cand)
    rows: list[np.ndarray] = []
    signal = noise = error = 0.0
    for r, c in _flat_blocks(ref, cand, n):  # block by block: temporaries of a block only
        if not r.size:
            return result
        rows.append(cosine_rows(r, c))
        diff = r - c
        signal, noise = signal + float(np.sum(r**2)), noise + float(np.sum(diff**2))
        error = max(error, float(np.max(np.abs(diff))))
    cos = np.concatenate(rows)
    result["cosine"] = float(np.clip(np.mean(cos), -1.0, 1.0)) if len(cos) else 1.0
    if noise == 0:
        sqnr = SQNR_CAP_DB
    elif signal == 0:
        sqnr = -SQNR_CAP_DB
    else:
        sqnr = max(-SQNR_CAP_DB, min(SQNR_CAP_DB, 10.0 * math.log10(signal / noise)))
    result["sqnr_db"] = sqnr
    result["max_abs_error"] = error
    return result

