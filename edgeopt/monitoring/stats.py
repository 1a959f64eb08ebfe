"""Per-sample summaries of model inputs: the features field monitoring compares.

One function turns a batch of inputs into a few numbers per sample and channel (``mean``, ``std``,
``min``, ``max``), so the calibration summary recorded at deploy time and the field log written by the
predictor describe exactly the same quantities. The channel axis is axis 1 of a batched input when it
has at most ``MAX_CHANNELS`` entries (image channels, tabular features); otherwise a sample is pooled
into one channel. Raw inputs are never stored, only these summaries.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import numpy as np

MAX_CHANNELS = 64
"""Above this, axis 1 is not treated as channels and the whole sample is pooled."""
STATS = ("mean", "std", "min", "max")
"""The per-sample statistics recorded for a channel of more than one element."""
SKETCH_POINTS = 512
"""Reference values kept per feature: all of them up to this many, else this many evenly spaced quantiles."""


def feature_name(input_name: str, channel: int, stat: str) -> str:
    """``input[c0].mean``: the name a feature has in summaries, logs and drift reports."""
    return f"{input_name}[c{channel}].{stat}"


def _channels(array: np.ndarray) -> np.ndarray:
    """``array`` as (samples, channels, elements) float64."""
    a = np.asarray(array)
    if a.ndim == 0:
        a = a.reshape(1)
    n = a.shape[0]
    if a.ndim >= 2 and a.shape[1] <= MAX_CHANNELS:
        return a.reshape(n, a.shape[1], -1).astype(np.float64, copy=False)
    return a.reshape(n, 1, -1).astype(np.float64, copy=False)


def sample_features(feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Feature name → one value per sample, for every input in ``feeds`` (axis 0 is the batch).

    A channel of one element (a tabular feature) yields only its value, as ``mean``. Non-numeric inputs
    (strings) are skipped. One pass of sums per channel (``std`` from the sums of squares), since the
    predictor calls this on every recorded inference.
    """
    found: dict[str, np.ndarray] = {}
    for name, array in feeds.items():
        arr = np.asarray(array)
        if arr.dtype.kind not in "biuf":
            continue
        x = _channels(arr)
        size = x.shape[2]
        mean = x.sum(axis=2) / size
        values = {"mean": mean}
        if size > 1:
            var = np.maximum((x * x).sum(axis=2) / size - mean * mean, 0.0)
            values |= {"std": np.sqrt(var), "min": x.min(axis=2), "max": x.max(axis=2)}
        for stat, per_sample in values.items():
            for c, feature in enumerate(_names(name, per_sample.shape[1], stat)):
                found[feature] = per_sample[:, c]
    return found


@functools.lru_cache(maxsize=256)
def _names(name: str, channels: int, stat: str) -> tuple[str, ...]:
    return tuple(feature_name(name, c, stat) for c in range(channels))


def sketch(values: np.ndarray) -> list[float]:
    """Sorted reference values: all of them, or ``SKETCH_POINTS`` evenly spaced quantiles of many."""
    v = np.sort(np.asarray(values, dtype=np.float64)[np.isfinite(values)])
    if len(v) > SKETCH_POINTS:
        v = np.quantile(v, np.linspace(0.0, 1.0, SKETCH_POINTS))
    return [float(f"{x:.7g}") for x in v]


def summarize(feeds: Mapping[str, np.ndarray], *, source: str = "", synthetic: bool = False) -> dict:
    """The calibration summary stored with a deployment: per feature, the sample count and a value sketch.

    Plain JSON data: ``{"version": 1, "source", "synthetic", "samples", "features": {name: {"n", "mean",
    "std", "values"}}}``.
    """
    features = {}
    samples = 0
    for name, values in sample_features(feeds).items():
        finite = values[np.isfinite(values)]
        samples = max(samples, len(values))
        features[name] = {
            "n": int(len(finite)),
            "mean": float(finite.mean()) if len(finite) else None,
            "std": float(finite.std()) if len(finite) else None,
            "values": sketch(finite),
        }
    return {"version": 1, "source": source, "synthetic": synthetic, "samples": samples, "features": features}
