"""Is one timing distinguishable from another? Confidence intervals for the latency ratios choices act on.

The search picks between candidates, and ``--target auto`` between targets, from samples timed in one
interleaved run (``harness.measure_interleaved``). Each such choice acts on a ratio of two figures (the p50 of
each side by default). :func:`ratio_ci` gives a confidence interval for that ratio by a seeded percentile
bootstrap: each side's samples are resampled with replacement, the figure taken of each resample, and the
ratios' quantiles read off; the same samples always give the same interval. Two timings are distinguishable
only when the whole interval lies beyond ``NEGLIGIBLE`` (2%) on one side of 1: an interval that contains 1 is
noise (what pyperf calls "not significant"), and one that reaches into the 2% band is a difference too small to
act on. Measured here: two sessions of one and the same model, interleaved, differ by up to 1% with an interval
that excludes 1 in about a quarter of runs (layout and cache effects, not the model), so 1 alone is not the
line.

:func:`choose` ranks contenders by their figure; every contender not distinguishable from the fastest is
*tied* with it, and among tied ones the tie-break decides, in order: the smaller file, then the higher
quality (smaller metric drop), then fp32 (the precision with nothing reduced), then the order given. The
:class:`Choice` states which of those decided, in words for the console and the report.

Fewer than ``MIN_SAMPLES`` samples on either side give no interval (``None``): the point figures decide and
no tie is claimed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "CONFIDENCE", "METHOD", "NEGLIGIBLE", "TIE_BREAK", "Choice", "Contender", "RatioCI", "choose", "figure", "ratio_ci",
]

CONFIDENCE = 0.95
RESAMPLES = 2000
SEED = 0
MIN_SAMPLES = 5
"""Fewer timed runs than this on either side: no interval."""
_CHUNK_ELEMENTS = 2_000_000
"""Resampled values held at once (bounds memory for long timing runs)."""
TIE_BREAK = "smaller file, then higher quality, then fp32"
NEGLIGIBLE = 0.02
"""Ratios within 2% of 1 are never acted on (see the module docstring)."""
STATISTICS = ("p50", "p90", "mean")
METHOD = (f"percentile bootstrap of the ratio, {RESAMPLES} resamples, seed {SEED}, {CONFIDENCE:.0%} interval; "
          f"tied unless the interval lies beyond {NEGLIGIBLE:.0%} of 1")


def figure(samples: Sequence[float], statistic: str = "p50") -> float:
    """``p50``/``p90`` (linear-interpolated percentile, as ``LatencyStats``) or ``mean`` of ``samples``."""
    a = np.asarray(samples, dtype=np.float64)
    return float(a.mean()) if statistic == "mean" else float(np.percentile(a, _quantile(statistic)))


def _quantile(statistic: str) -> float:
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {STATISTICS}, not {statistic!r}")
    return 50.0 if statistic == "p50" else 90.0


def _resampled(a: np.ndarray, statistic: str, rng: np.random.Generator, resamples: int) -> np.ndarray:
    out = np.empty(resamples)
    step = max(1, _CHUNK_ELEMENTS // len(a))
    for start in range(0, resamples, step):
        n = min(step, resamples - start)
        draws = a[rng.integers(0, len(a), size=(n, len(a)))]
        out[start:start + n] = draws.mean(axis=1) if statistic == "mean" else np.percentile(
            draws, _quantile(statistic), axis=1)
    return out


@dataclass(frozen=True)
class RatioCI:
    """``figure(a) / figure(b)`` with its confidence interval."""

    ratio: float
    low: float
    high: float
    confidence: float = CONFIDENCE

    @property
    def slower(self) -> bool:
        """``a`` is measurably slower: the whole interval lies above ``1 + NEGLIGIBLE``."""
        return self.low > 1.0 + NEGLIGIBLE

    @property
    def faster(self) -> bool:
        """``a`` is measurably faster: the whole interval lies below ``1 / (1 + NEGLIGIBLE)``."""
        return self.high < 1.0 / (1.0 + NEGLIGIBLE)

    @property
    def distinguishable(self) -> bool:
        return self.slower or self.faster

    def text(self) -> str:
        return f"{self.ratio:.3f}x ({self.confidence:.0%} CI {self.low:.3f}-{self.high:.3f})"

    def to_dict(self) -> dict[str, float]:
        return {"ratio": self.ratio, "low": self.low, "high": self.high, "confidence": self.confidence}


def ratio_ci(
    a: Sequence[float], b: Sequence[float], *, statistic: str = "p50", confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES, seed: int = SEED,
) -> RatioCI | None:
    """Bootstrap interval of ``figure(a) / figure(b)`` (times: above 1 means ``a`` is slower); None when
    either side has fewer than ``MIN_SAMPLES`` samples or a figure is not positive."""
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(x) < MIN_SAMPLES or len(y) < MIN_SAMPLES or not 0 < confidence < 1:
        return None
    fx, fy = figure(x, statistic), figure(y, statistic)
    if not (fx > 0 and fy > 0 and math.isfinite(fx) and math.isfinite(fy)):
        return None
    rng = np.random.default_rng(seed)
    ratios = _resampled(x, statistic, rng, resamples) / _resampled(y, statistic, rng, resamples)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(ratios, [tail, 100 - tail])
    return RatioCI(fx / fy, float(low), float(high), confidence)


@dataclass(frozen=True)
class Contender:
    """One of the things a choice is between: its timed samples (seconds) and what breaks a tie."""

    name: str
    samples: Sequence[float] = field(repr=False)
    size_bytes: int | None = None
    drop: float | None = None
    """Metric drop against the original (smaller is higher quality); None when not measured."""
    precision: str = ""


@dataclass(frozen=True)
class Choice:
    """Which contender a choice takes, and whether the timings could tell the fastest from the others."""

    chosen: str
    fastest: str
    tied: tuple[str, ...]
    """Contenders not distinguishable from the fastest, the fastest first; empty when it stands alone."""
    ratios: Mapping[str, RatioCI | None]
    """Each other contender's figure over the fastest's (above 1: slower), with its interval."""
    decided_by: str
    """``fastest``, or for a tie the tie-break step that decided: ``smaller file``, ``higher quality``,
    ``fp32`` or ``order``."""
    statistic: str = "p50"

    @property
    def is_tie(self) -> bool:
        return bool(self.tied)

    def statement(self) -> str:
        """One line for the console and the report: the winner, and "tied" with the tie-break when it is."""
        if not self.ratios:
            return f"{self.chosen}: the only one timed"
        others = ", ".join(f"{n} {_ci_text(r)}" for n, r in self.ratios.items())
        if not self.tied:
            return f"{self.chosen} fastest by {self.statistic}; the others relative to it: {others}"
        return (f"tied: {', '.join(self.tied)} are not distinguishable by {self.statistic} ({others} relative to "
                f"{self.fastest}); chose {self.chosen} by the tie-break ({TIE_BREAK}): {self.decided_by}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen, "fastest": self.fastest, "tied": list(self.tied), "decided_by": self.decided_by,
            "tie_break": TIE_BREAK, "statistic": self.statistic, "method": METHOD, "statement": self.statement(),
            "ratios": {n: r.to_dict() if r else None for n, r in self.ratios.items()},
        }


def _ci_text(r: RatioCI | None) -> str:
    return r.text() if r is not None else "(too few samples for an interval)"


def _tie_key(c: Contender) -> tuple:
    drop = c.drop if c.drop is not None and math.isfinite(c.drop) else math.inf
    size = c.size_bytes if c.size_bytes is not None else math.inf
    return (size, drop, c.precision != "fp32")


def _decided_by(winner: Contender, runner_up: Contender) -> str:
    a, b = _tie_key(winner), _tie_key(runner_up)
    if a[0] != b[0]:
        return f"smaller file ({winner.size_bytes:,} vs {runner_up.size_bytes:,} bytes)" if math.isfinite(b[0]) \
            else "smaller file"
    if a[1] != b[1]:
        return f"higher quality (drop {winner.drop:.3g} vs {runner_up.drop:.3g})"
    if a[2] != b[2]:
        return "fp32"
    return "order"


def choose(contenders: Sequence[Contender], *, statistic: str = "p50") -> Choice:
    """The fastest contender by ``statistic``, unless others are tied with it: then the tie-break's pick."""
    if not contenders:
        raise ValueError("nothing to choose from")
    figures = [figure(c.samples, statistic) if len(c.samples) else math.inf for c in contenders]
    order = sorted(range(len(contenders)), key=lambda i: figures[i])
    fastest = contenders[order[0]]
    ratios: dict[str, RatioCI | None] = {}
    tied = [fastest]
    for i in order[1:]:
        c = contenders[i]
        ci = ratio_ci(c.samples, fastest.samples, statistic=statistic)
        ratios[c.name] = ci
        if ci is not None and not ci.distinguishable:
            tied.append(c)
    if len(tied) == 1:
        return Choice(fastest.name, fastest.name, (), ratios, "fastest", statistic)
    ranked = sorted(tied, key=_tie_key)  # stable: equal keys keep the speed order
    return Choice(ranked[0].name, fastest.name, tuple(c.name for c in tied), ratios,
                  _decided_by(ranked[0], ranked[1]), statistic)
