"""Reading a model's outputs: which one holds class scores or labels, and whether two sets line up.

``outputs`` is one array per model output, samples stacked on axis 0 (what
``edgeopt.evaluate.judge.run_outputs`` returns); a single array counts as a one-output list. Pure numpy.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from edgeopt.errors import DataError

Outputs = Sequence[np.ndarray]


def as_list(outputs: Outputs | np.ndarray) -> list[np.ndarray]:
    """``outputs`` as a list of arrays (a single array becomes a one-element list)."""
    return [np.asarray(outputs)] if isinstance(outputs, np.ndarray) else [np.asarray(o) for o in outputs]


def is_scores(a: np.ndarray) -> bool:
    """2-D float scores over more than one class (or ``(n, C, 1, 1)`` as conv classifiers emit)."""
    a = squeeze_tail(a)
    return a.ndim == 2 and a.shape[1] > 1 and a.dtype.kind == "f"


def is_label_output(a: np.ndarray) -> bool:
    """1-D integer or string class labels (after ``squeeze_tail``), as scikit-learn's label output."""
    a = squeeze_tail(a)
    return a.ndim == 1 and a.dtype.kind in "iubUSO"


def squeeze_tail(a: np.ndarray) -> np.ndarray:
    """``a`` without trailing size-1 axes past the second; a non-float ``(n, 1)`` becomes ``(n,)``."""
    while a.ndim > 2 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim == 2 and a.shape[1] == 1 and a.dtype.kind != "f":
        a = a[:, 0]
    return a


def score_output(outputs: list[np.ndarray]) -> np.ndarray | None:
    """The first output holding class scores (tail squeezed), or None."""
    for a in outputs:
        if is_scores(a):
            return squeeze_tail(a)
    return None


def predicted_labels(outputs: Outputs | np.ndarray) -> np.ndarray:
    """Class predictions: output 0 when class-like, else the first class-like output.

    A 1-D integer/string output (scikit-learn's label output) is used directly; 2-D float scores give their
    argmax. Raises ``DataError`` when no output looks like a classifier's.
    """
    outs = as_list(outputs)
    for a in outs:
        if is_label_output(a):
            return squeeze_tail(a)
        if is_scores(a):
            return np.argmax(squeeze_tail(a), axis=1)
    shapes = [tuple(a.shape) for a in outs]
    raise DataError(
        f"no model output looks like class predictions (output shapes {shapes})",
        hint="use a regression metric (mse, mae, r2) or give --metric explicitly",
    )


def shape_mismatch(reference: list[np.ndarray], candidate: list[np.ndarray]) -> str | None:
    """Why ``candidate`` does not line up with ``reference`` (output count or a shape), or None when it does."""
    if len(reference) != len(candidate):
        return f"candidate has {len(candidate)} outputs, the reference {len(reference)}"
    for i, (r, c) in enumerate(zip(reference, candidate, strict=True)):
        if r.shape != c.shape:
            return f"output {i} has shape {tuple(c.shape)}, the reference {tuple(r.shape)}"
    return None


BLOCK_VALUES = 1 << 20
"""Values per block of samples that fidelity figures and output checks are computed over (in float64: 8 MiB), so
their temporaries stay small whatever the size of the evaluation outputs (100 dense 384x384 maps are 15M values)."""


def row_blocks(a: np.ndarray) -> Iterator[np.ndarray]:
    """``a`` as ``[samples, values]`` float64 blocks of about ``BLOCK_VALUES`` values."""
    flat = a.reshape(len(a), -1)
    step = max(1, BLOCK_VALUES // max(1, flat.shape[1]))
    for start in range(0, len(flat), step):
        yield flat[start:start + step].astype(np.float64)
