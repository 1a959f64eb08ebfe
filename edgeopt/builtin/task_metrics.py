"""Task metrics that decode outputs, shipped by the core through the ``edgeopt_metrics`` hook like a plugin's.

``--metric ctc-text-accuracy`` / ``ctc-char-accuracy`` judge a CTC text recognizer, ``--metric detection-map50``
a detector whose outputs are already decoded boxes. Each reads the first model output of the form it documents;
all are pure numpy. This module is registered as a built-in plugin (``edgeopt.plugin.manager.BUILTIN_PLUGINS``) and is
the worked example of docs/writing-a-plugin.md: a vendor's plugin adds its metrics the same way.

Label formats (the evaluation ``.npz``'s ``labels`` array, one row per sample):

- CTC: integer ``[N, L]``, each row the label's class indices (never the blank), padded at the end with ``-1``.
- Detection: ``[N, M, 5]`` rows ``x1, y1, x2, y2, class``; rows whose class is ``-1`` are padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from edgeopt.errors import DataError
from edgeopt.plugin import hookimpl

if TYPE_CHECKING:
    from edgeopt.plugin.metrics import MetricRegister

EDGEOPT_HOOK_API = 1

BLANK = 0
"""The CTC blank class index these metrics assume (a plugin can register ``partial(..., blank=k)``)."""
PAD = -1
"""Label padding value (CTC label rows; the class column of detection labels)."""
IOU_THRESHOLD = 0.5

CTC_LABELS = "int [N, L]: each row the label's class indices (never the blank 0), padded at the end with -1"
DETECTION_LABELS = "[N, M, 5]: ground-truth boxes x1, y1, x2, y2, class per sample; rows with class -1 are padding"


# --------------------------------------------------------------------------------------------------- CTC


def _ctc_scores(outputs: Sequence[np.ndarray]) -> np.ndarray:
    for a in outputs:
        a = np.asarray(a)
        if a.ndim == 3 and a.dtype.kind == "f" and a.shape[2] > 1:
            return a
    raise DataError(f"no model output is [N, T, C] class scores for CTC decoding (output shapes "
                    f"{[tuple(np.shape(a)) for a in outputs]})",
                    hint="a CTC metric needs per-step class scores (logits or probabilities) with the batch on axis 0")


def ctc_greedy_decode(scores: np.ndarray, *, blank: int = BLANK) -> list[np.ndarray]:
    """Best-path decoding of ``[N, T, C]`` scores: the top class per step, repeats collapsed, blanks dropped."""
    best = np.argmax(np.asarray(scores), axis=2)
    decoded = []
    for path in best:
        keep = np.ones(len(path), dtype=bool)
        keep[1:] = path[1:] != path[:-1]
        collapsed = path[keep]
        decoded.append(collapsed[collapsed != blank].astype(np.int64))
    return decoded


def ctc_label_rows(labels: np.ndarray, n: int, classes: int, *, blank: int = BLANK) -> list[np.ndarray]:
    """The ``n`` label sequences of ``[N, L]`` labels padded with ``-1`` (``DataError`` when malformed)."""
    y = np.asarray(labels)
    if y.ndim != 2 or y.dtype.kind not in "iuf" or len(y) < n:
        raise DataError(f"CTC labels must be {CTC_LABELS}; got shape {tuple(y.shape)} ({y.dtype})",
                        hint="store the labels as an integer array, one padded row per evaluation sample")
    if y.dtype.kind == "f" and not np.all(y == np.round(y)):
        raise DataError("CTC labels must be integer class indices", hint=CTC_LABELS)
    rows = []
    for row in y[:n].astype(np.int64):
        bad = row[(row != PAD) & ((row < 0) | (row >= classes) | (row == blank))]
        if bad.size:
            raise DataError(f"CTC label value {int(bad[0])} is not a class of the {classes}-class output "
                            f"(or is the blank {blank})", hint=CTC_LABELS)
        rows.append(row[row != PAD])
    return rows


def edit_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Levenshtein distance between two integer sequences (insertions, deletions, substitutions cost 1)."""
    a, b = np.asarray(a), np.asarray(b)
    if not len(a) or not len(b):
        return int(max(len(a), len(b)))
    steps = np.arange(len(b) + 1)
    row = steps.copy()
    for i, x in enumerate(a, start=1):
        diagonal = row[:-1] + (b != x)
        above = row[1:] + 1
        best = np.concatenate(([i], np.minimum(diagonal, above)))
        row = np.minimum.accumulate(best - steps) + steps  # insertions: row[j] = min(best[j], row[j-1] + 1)
    return int(row[-1])


def _ctc_pairs(outputs: Sequence[np.ndarray], labels: np.ndarray, blank: int) -> list[tuple[np.ndarray, np.ndarray]]:
    scores = _ctc_scores(outputs)
    truth = ctc_label_rows(labels, len(scores), scores.shape[2], blank=blank)
    return list(zip(ctc_greedy_decode(scores, blank=blank), truth, strict=True))


def ctc_text_accuracy(outputs: Sequence[np.ndarray], labels: np.ndarray, *, blank: int = BLANK) -> float:
    """Percent of samples whose greedy CTC decoding equals the label sequence exactly."""
    pairs = _ctc_pairs(outputs, labels, blank)
    return float(np.mean([np.array_equal(d, t) for d, t in pairs]) * 100.0) if pairs else 0.0


def ctc_char_accuracy(outputs: Sequence[np.ndarray], labels: np.ndarray, *, blank: int = BLANK) -> float:
    """``100 × (1 − total edit distance / total label length)`` over all samples: 100 minus the character error
    rate in percent. Below 0 when the decodings hold more insertions than the labels hold characters."""
    pairs = _ctc_pairs(outputs, labels, blank)
    total = sum(len(t) for _, t in pairs)
    if total == 0:
        raise DataError("the CTC labels hold no characters, so character accuracy is undefined",
                        hint="use --metric ctc-text-accuracy, or give labels with text")
    return float(100.0 * (1.0 - sum(edit_distance(d, t) for d, t in pairs) / total))


# --------------------------------------------------------------------------------------------- detection


def _detections(outputs: Sequence[np.ndarray]) -> np.ndarray:
    for a in outputs:
        a = np.asarray(a)
        if a.ndim == 3 and a.shape[2] == 6 and a.dtype.kind in "fiu":
            return a.astype(np.float64)
    raise DataError(f"no model output is decoded detections [N, K, 6] (output shapes "
                    f"{[tuple(np.shape(a)) for a in outputs]})",
                    hint="detection-map50 needs boxes x1, y1, x2, y2, score, class per sample, already decoded "
                         "(after NMS); rows with class -1 are ignored")


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Intersection over union of one ``x1, y1, x2, y2`` box with each of ``boxes`` (continuous coordinates)."""
    w = np.clip(np.minimum(box[2], boxes[:, 2]) - np.maximum(box[0], boxes[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], boxes[:, 3]) - np.maximum(box[1], boxes[:, 1]), 0, None)
    inter = w * h
    area = max(box[2] - box[0], 0) * max(box[3] - box[1], 0)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    union = area + areas - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def average_precision(tp: np.ndarray, n_truth: int) -> float:
    """All-point interpolated AP of detections ranked by score (``tp``: 1 for a true, 0 for a false positive):
    the area under the precision envelope (precision at recall r = the best precision at any recall ≥ r)."""
    if n_truth == 0:
        raise ValueError("AP needs at least one ground-truth box")
    tp = np.asarray(tp, dtype=np.float64)
    hits = np.cumsum(tp)
    recall = np.concatenate(([0.0], hits / n_truth))
    precision = np.concatenate(([0.0], hits / np.arange(1, len(tp) + 1)))
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * envelope[1:]))


def _truth(labels: np.ndarray, n: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 3 or y.shape[2] != 5 or y.dtype.kind not in "fiu" or len(y) < n:
        raise DataError(f"detection labels must be {DETECTION_LABELS}; got shape {tuple(y.shape)} ({y.dtype})",
                        hint="pad each sample's boxes to the same count with rows of -1")
    y = y[:n].astype(np.float64)
    classes = y[:, :, 4]
    if np.any((classes != np.round(classes)) | ((classes < 0) & (classes != PAD))):
        raise DataError("detection label classes must be integers ≥ 0, or -1 for padding", hint=DETECTION_LABELS)
    return y


def detection_map50(outputs: Sequence[np.ndarray], labels: np.ndarray) -> float:
    """mAP at IoU 0.5, in points: all-point interpolated AP per class, averaged over the classes that have
    ground truth. Detections of a class are ranked by score over the whole set (ties: earlier sample, then
    earlier row first); each is a true positive when its best-IoU ground-truth box of that class in its sample
    has IoU ≥ 0.5 and is not yet taken, else a false positive (the VOC rule). Detections and labels with class
    ``-1`` are padding; detections of a class without ground truth are not scored."""
    dets = _detections(outputs)
    truth = _truth(labels, len(dets))
    gt_classes = np.unique(truth[:, :, 4][truth[:, :, 4] != PAD])
    if gt_classes.size == 0:
        raise DataError("the detection labels hold no boxes, so mAP is undefined", hint=DETECTION_LABELS)
    aps = []
    for c in gt_classes:
        boxes = [t[t[:, 4] == c, :4] for t in truth]
        found = [(s, k) for s, d in enumerate(dets) for k in np.flatnonzero(np.round(d[:, 5]) == c)]
        order = sorted(range(len(found)), key=lambda i: -dets[found[i][0]][found[i][1], 4])  # stable sort
        taken = [np.zeros(len(b), dtype=bool) for b in boxes]
        tp = np.zeros(len(found))
        for rank, i in enumerate(order):
            s, k = found[i]
            if not len(boxes[s]):
                continue
            overlaps = iou(dets[s][k, :4], boxes[s])
            best = int(np.argmax(overlaps))
            if overlaps[best] >= IOU_THRESHOLD and not taken[s][best]:
                taken[s][best] = True
                tp[rank] = 1.0
        aps.append(average_precision(tp, sum(len(b) for b in boxes)))
    return float(np.mean(aps) * 100.0)


# ------------------------------------------------------------------------------------------------- hook


@hookimpl
def edgeopt_metrics(register: MetricRegister) -> None:
    register.add_metric(
        "ctc-text-accuracy", ctc_text_accuracy, labels=CTC_LABELS,
        description="percent of sequences whose greedy CTC decoding ([N, T, C] scores, blank 0) equals the label",
    )
    register.add_metric(
        "ctc-char-accuracy", ctc_char_accuracy, labels=CTC_LABELS,
        description="100 × (1 − edit distance / label length) of greedy CTC decodings: 100 minus the CER in percent",
    )
    register.add_metric(
        "detection-map50", detection_map50, labels=DETECTION_LABELS,
        description="mAP@0.5 (all-point interpolated AP per class, averaged) of decoded boxes [N, K, 6] = "
                    "x1, y1, x2, y2, score, class",
    )
