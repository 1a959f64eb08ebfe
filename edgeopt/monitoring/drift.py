"""Is the field data still the data a deployment was calibrated on? PSI and KS per feature, latency vs p90.

A feature drifts when both tests agree: the two-sample Kolmogorov–Smirnov test rejects "same
distribution" at ``alpha`` after a Bonferroni correction over all features (significance), and the
population stability index over the reference's decile bins, less the value sampling noise alone gives
it on average (``(bins - 1) * (1/n + 1/m)``, the chi-square bias of two finite samples), is at least
``psi_threshold`` (a shift big enough to matter; 0.25 is the usual "major shift"). Requiring both keeps a
large log from flagging negligible shifts and a small one from flagging noise. Latency drifts when the
field p90 of a batch size exceeds ``latency_tolerance`` times the p90 profiled at deploy for that batch.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

PSI_BINS = 10
PSI_EPS = 1e-4
"""Floor on a bin's share, so an empty bin gives a large but finite PSI term."""


@dataclass(frozen=True)
class FeatureDrift:
    """One feature of the field data against the calibration data."""

    feature: str
    psi: float
    psi_noise: float
    """PSI that sampling noise alone gives on average at these sample sizes; drift needs psi - psi_noise."""
    ks: float
    """KS statistic: the largest gap between the two empirical CDFs (0..1)."""
    p_value: float
    """Asymptotic KS p-value, before the Bonferroni correction."""
    field_n: int
    reference_n: int
    field_mean: float
    reference_mean: float
    drifted: bool


@dataclass(frozen=True)
class LatencyDrift:
    """Field latency at one batch size against the profiled p90."""

    batch: int
    calls: int
    field_p50_s: float
    field_p90_s: float
    profiled_p90_s: float | None
    ratio: float | None
    drifted: bool
    method: str = "measured:wallclock (runner call in the predictor)"


@dataclass(frozen=True)
class DriftReport:
    """What ``edgeopt monitor`` says about one deployment and one field log."""

    deployment: str
    """``NAME:VERSION`` compared against."""
    samples: int
    calls: int
    features: tuple[FeatureDrift, ...]
    latency: tuple[LatencyDrift, ...]
    alpha: float
    psi_threshold: float
    latency_tolerance: float
    notes: tuple[str, ...] = ()
    advice: tuple[str, ...] = field(default_factory=tuple)

    @property
    def input_drift(self) -> bool:
        return any(f.drifted for f in self.features)

    @property
    def latency_drift(self) -> bool:
        return any(lat.drifted for lat in self.latency)

    @property
    def drifted(self) -> bool:
        return self.input_drift or self.latency_drift

    def to_dict(self) -> dict:
        return {
            "deployment": self.deployment,
            "drifted": self.drifted,
            "input_drift": self.input_drift,
            "latency_drift": self.latency_drift,
            "samples": self.samples,
            "calls": self.calls,
            "alpha": self.alpha,
            "psi_threshold": self.psi_threshold,
            "latency_tolerance": self.latency_tolerance,
            "features": [vars(f) for f in self.features],
            "latency": [vars(lat) for lat in self.latency],
            "notes": list(self.notes),
            "advice": list(self.advice),
        }


def quantile_edges(reference: np.ndarray, *, bins: int = PSI_BINS) -> np.ndarray:
    """Interior quantiles of ``reference`` with ties merged: the PSI bin edges."""
    return np.unique(np.quantile(np.asarray(reference, dtype=np.float64), np.linspace(0, 1, bins + 1)[1:-1]))


def psi_noise(bins: int, n: int, m: int) -> float:
    """Expected PSI of two samples of sizes ``n`` and ``m`` from one distribution over ``bins`` bins."""
    return (bins - 1) * (1.0 / n + 1.0 / m)


def psi(reference: np.ndarray, observed: np.ndarray, *, bins: int = PSI_BINS) -> float:
    """Population stability index of ``observed`` against ``reference`` over the reference's quantile bins.

    Bin edges are the reference's interior quantiles (ties merged, so a constant reference gives two bins:
    below it and at-or-above it). Σ (o - r) · ln(o / r) over bin shares, each floored at ``PSI_EPS``.
    """
    ref = np.asarray(reference, dtype=np.float64)
    obs = np.asarray(observed, dtype=np.float64)
    edges = quantile_edges(ref, bins=bins)
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1) / len(ref)
    o = np.bincount(np.searchsorted(edges, obs, side="right"), minlength=len(edges) + 1) / len(obs)
    r, o = np.maximum(r, PSI_EPS), np.maximum(o, PSI_EPS)
    return float(np.sum((o - r) * np.log(o / r)))


def ks_2samp(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and its asymptotic p-value (Kolmogorov distribution, Stephens' correction)."""
    x, y = np.sort(np.asarray(a, dtype=np.float64)), np.sort(np.asarray(b, dtype=np.float64))
    n, m = len(x), len(y)
    grid = np.concatenate([x, y])
    d = float(np.max(np.abs(np.searchsorted(x, grid, side="right") / n - np.searchsorted(y, grid, side="right") / m)))
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    return d, _kolmogorov_sf(lam)


def _kolmogorov_sf(lam: float) -> float:
    """P(K > lam) for the Kolmogorov distribution."""
    if lam < 0.2:
        return 1.0
    total = sum((-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 101))
    return float(min(1.0, max(0.0, 2.0 * total)))


def compare_features(
    reference: Mapping[str, Mapping],
    observed: Mapping[str, np.ndarray],
    *,
    alpha: float,
    psi_threshold: float,
    min_samples: int,
) -> tuple[list[FeatureDrift], list[str]]:
    """Each feature both sides have, tested as the module docstring says; plus notes on what was skipped."""
    notes: list[str] = []
    common = [f for f in reference if f in observed]
    for missing in sorted(set(reference) - set(observed)):
        notes.append(f"{missing}: not in the field log")
    tests = max(len(common), 1)
    found = []
    for name in common:
        ref = np.asarray(reference[name].get("values") or [], dtype=np.float64)
        obs = np.asarray(observed[name], dtype=np.float64)
        obs = obs[np.isfinite(obs)]
        if len(ref) == 0 or len(obs) < min_samples:
            notes.append(f"{name}: {len(obs)} field sample(s), fewer than {min_samples}; not tested")
            continue
        p = psi(ref, obs)
        noise = psi_noise(len(quantile_edges(ref)) + 1, len(ref), len(obs))
        d, pv = ks_2samp(ref, obs)
        found.append(
            FeatureDrift(
                feature=name,
                psi=p,
                psi_noise=noise,
                ks=d,
                p_value=pv,
                field_n=len(obs),
                reference_n=int(reference[name].get("n") or len(ref)),
                field_mean=float(obs.mean()),
                reference_mean=float(ref.mean()),
                drifted=bool(pv < alpha / tests and p - noise >= psi_threshold),
            )
        )
    return found, notes


def compare_latency(
    calls: Sequence[tuple[int, float]], profile: Mapping, *, tolerance: float
) -> tuple[list[LatencyDrift], list[str]]:
    """Field (batch, seconds) calls against ``profile["latency"][batch]["p90"]`` from the manifest."""
    by_batch: dict[int, list[float]] = {}
    for batch, seconds in calls:
        by_batch.setdefault(int(batch), []).append(float(seconds))
    profiled = profile.get("latency") or {}
    found, notes = [], []
    for batch, seconds in sorted(by_batch.items()):
        s = np.asarray(seconds)
        p90_ref = (profiled.get(str(batch)) or {}).get("p90")
        ratio = float(np.quantile(s, 0.9)) / p90_ref if p90_ref else None
        if p90_ref is None:
            notes.append(f"batch {batch}: no profiled latency at this batch size; not compared")
        found.append(
            LatencyDrift(
                batch=batch,
                calls=len(s),
                field_p50_s=float(np.quantile(s, 0.5)),
                field_p90_s=float(np.quantile(s, 0.9)),
                profiled_p90_s=p90_ref,
                ratio=ratio,
                drifted=bool(ratio is not None and ratio > tolerance),
            )
        )
    return found, notes
