"""Speed screening for ``--precision auto``: a plan that cannot beat the fastest accepted candidate is not built.

A quantized plan exists to be faster than what is already accepted; calibration and granularity variants and
the mixed-precision fallback exist to rescue its accuracy. Both are wasted when the plan's kernels are not
fast enough to win, and on a 10 MB model each such build costs tens of seconds. The screen keeps, per target
search, every latency as a ratio to that target's fp32 baseline, measured in a short interleaved run (warm-up,
then alternating turns, each opened by untimed settle runs) right after the candidate was evaluated:

- **bound** (before building): a plan of precision ``p`` is at best ``max_speedup(device, p)`` times faster than
  the fp32 baseline — the larger of the device profile's peak-ops ratio ``p``:fp32 and the ratio of bytes per
  value (a memory-bound model gains from smaller weights even without faster arithmetic). A plan whose best
  case is no faster than the fastest accepted candidate so far is skipped.
- **kernels** (after one was measured): plans with the same ``speed_key`` run the same kernels and differ only
  in quantization scales (``Plan.kernels``, or the core's own calibration/granularity variants of one plan).
  When one of them ran ``SLOW_MARGIN`` or more times slower than the fastest accepted candidate, the others of
  the key, and the fallback from it, are skipped.

"The fastest accepted so far" starts as this target's fp32 baseline, or, when another target searched first
(``--target auto``), that target's fastest accepted candidate (the ``Bar``), timed against this baseline.
Every skip is a ``skipped`` candidate with its reason in the report; ``--exhaustive`` turns the screen off.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from edgeopt.measure.harness import measure_interleaved
from edgeopt.search.cache import plan_identity
from edgeopt.types import DeviceProfile, Plan, Runner

SCREEN_BUDGET_S = 0.4
"""Seconds of timed runs (both runners together) per screening measurement."""
SETTLE_RUNS = 2
"""Untimed runs opening each turn (the two runners may be different runtimes)."""
RUNS_PER_TURN = 3
SLOW_MARGIN = 1.10
"""A plan at this ratio or more to the fastest accepted candidate has lost: its same-kernel plans are skipped
(per-tensor and per-channel scales of one plan may differ by a few percent, not by this)."""
BITS = {"fp32": 32, "tf32": 32, "fp16": 16, "bf16": 16, "int8": 8, "uint8": 8, "int4": 4, "binary": 1}
"""Bits per value of each precision's weights and activations (for the memory-bound part of the bound)."""


def max_speedup(device: DeviceProfile, precision: str) -> float:
    """Optimistic bound on how much faster than fp32 a plan of ``precision`` can run on ``device`` (see the
    module); +inf when the profile or the precision name does not allow a bound."""
    base = precision.split("-")[0]
    bits = BITS.get(base)
    fp32 = float(device.peak_ops.get("fp32") or 0.0)
    if bits is None or fp32 <= 0:
        return math.inf
    peak = float(device.peak_ops.get(base) or fp32) / fp32
    return max(peak, 32 / bits)


def speed_key(plan: Plan) -> str:
    """Plans with equal keys run the same kernels: the plan's own ``kernels`` key, else everything the plan
    builds except its calibration, granularity and fp32-kept nodes."""
    if plan.kernels:
        return f"{plan.target}:{plan.kernels}"
    identity = plan_identity(plan)
    for scale_only in ("calibration", "granularity", "keep_fp32"):
        identity.pop(scale_only, None)
    return repr(identity)


@dataclass(frozen=True)
class Bar:
    """The fastest accepted candidate of the targets searched so far, its runner open."""

    label: str
    runner: Runner


@dataclass
class SpeedScreen:
    """One target search's screen: latencies relative to its fp32 ``baseline`` runner."""

    baseline: Runner
    feeds: Sequence[Mapping[str, np.ndarray]]
    device: DeviceProfile
    batch: int = 1
    best: float = 1.0
    """Latency of the fastest accepted candidate so far, as a ratio to the baseline."""
    best_label: str = "the fp32 baseline"
    slow: dict[str, str] = field(default_factory=dict)
    """``speed_key`` -> why its plans cannot win."""
    measured: dict[str, float] = field(default_factory=dict)
    """Candidate label -> its latency ratio to the baseline."""

    def ratio(self, runner: Runner) -> float:
        """p50 latency of ``runner`` over the baseline's, from one short interleaved run."""
        stats = measure_interleaved({"baseline": self.baseline, "other": runner}, self.feeds, warmup=3,
                                    budget_s=SCREEN_BUDGET_S, batch=self.batch, settle_runs=SETTLE_RUNS,
                                    runs_per_round=RUNS_PER_TURN, min_rounds=3)
        return stats["other"].p50 / stats["baseline"].p50

    def against(self, bar: Bar) -> float:
        """Time the other target's ``bar`` against this baseline; it becomes the best when faster."""
        rel = self.ratio(bar.runner)
        self.measured[bar.label] = rel
        if rel < self.best:
            self.best, self.best_label = rel, bar.label
        return rel

    def observe(self, plan: Plan, label: str, accepted: bool, runner: Runner) -> float:
        """Record a candidate that ran: an accepted one may become the best; a slow one marks its kernels."""
        rel = self.ratio(runner)
        self.measured[label] = rel
        if accepted and rel < self.best:
            self.best, self.best_label = rel, label
        elif not accepted and rel >= self.best * SLOW_MARGIN:
            self.slow.setdefault(speed_key(plan), f"{label} ran at {rel / self.best:.2f}x {self.best_label}")
        return rel

    def skip_reason(self, plan: Plan) -> str | None:
        """Why ``plan`` cannot beat the fastest accepted candidate (then it is not built), else None."""
        slow = self.slow.get(speed_key(plan))
        if slow is not None:
            return f"skipped: same kernels as a slower plan ({slow}); only its scales would change"
        if plan.precision == "fp32":
            return None  # another fp32 configuration may be faster: nothing bounds it
        bound = 1.0 / max_speedup(self.device, plan.precision)
        if bound >= self.best:
            return (f"skipped: {plan.precision} runs at most {1 / bound:.3g}x faster than this target's fp32 "
                    f"(device {self.device.name}: peak ops and bytes per value), which cannot beat "
                    f"{self.best_label} at {self.best:.2f}x fp32")
        return None
