"""Choosing among a target's evaluated candidates: the fastest accepted one (ties within noise broken by the
simpler plan, ``edgeopt.measure.significance``), or, when none was accepted, the E600 refusal naming each
closest candidate's actual reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from edgeopt.errors import AccuracyBudgetExceeded, ConversionError
from edgeopt.evaluate.task_metrics import metric_unit
from edgeopt.measure.significance import NEGLIGIBLE, Contender, choose, ratio_ci
from edgeopt.search.candidates import Candidate, budget_reason


@dataclass(frozen=True)
class Selection:
    """The chosen candidate and the warnings the choice raises."""

    chosen: Candidate
    warnings: tuple[str, ...]


SHOWN = 3
"""Candidates named per kind of refusal in an E600 message."""


def _names(group: Sequence[Candidate], why: Callable[[Candidate], str]) -> str:
    shown = "; ".join(f"{c.label} ({why(c)})" for c in group[:SHOWN])
    return shown + (f"; and {len(group) - SHOWN} more" if len(group) > SHOWN else "")


def _kept(c: Candidate) -> str:
    return f", {len(c.plan.keep_fp32)} node(s) kept in fp32" if c.plan.keep_fp32 else ""


def refusal(tried: Sequence[Candidate], *, precision: str, max_drop: float) -> AccuracyBudgetExceeded:
    """The E600 error when no candidate of ``tried`` was accepted: each closest candidate with its actual
    reason, grouped by kind (over the budget, refused for its outputs, failed to build, skipped), and a hint
    that fits the reasons found (raising --max-drop only helps candidates refused for their drop)."""
    over = sorted((c for c in tried if c.status == "refused" and c.metrics is not None
                   and c.reason == budget_reason(c.metrics, max_drop)), key=lambda c: c.drop)
    broken = [c for c in tried if c.status == "refused" and c not in over]
    failed = [c for c in tried if c.status == "failed"]
    skipped = [c for c in tried if c.status == "skipped"]
    parts = []
    if over:
        parts.append("closest over the budget: " + _names(
            over, lambda c: f"{c.metrics.metric} drop {c.metrics.drop:.3g} "  # type: ignore[union-attr]
            f"{metric_unit(c.metrics.metric)}{_kept(c)}"))  # type: ignore[union-attr]
    if broken:
        parts.append("refused for their outputs: " + _names(broken, lambda c: c.reason))
    if failed:
        parts.append("failed to build: " + _names(failed, lambda c: c.reason))
    if skipped:
        parts.append(f"{len(skipped)} skipped (search budget --budget-s spent)")
    if over:
        best = over[0].drop
        hint = (f"the closest needs --max-drop {best:.3g}: raise --max-drop, give real --calib data, or choose "
                "--precision fp32")
    elif broken:
        hint = ("the reduced-precision outputs broke (collapsed, vanished or went non-finite), which a larger "
                "--max-drop cannot fix: give representative --calib data (synthetic inputs often collapse int8), "
                "or choose another --precision or --target")
    elif failed:
        hint = ("no candidate could be built: see each reason; try another --precision or --target "
                "(EDGEOPT_DEBUG=1 shows the details)")
    elif skipped:
        hint = "the search budget ran out before any candidate was judged: raise --budget-s or leave it unset"
    else:
        hint = "the target offered no candidate of this precision: run `edgeopt targets` for what it offers"
    return AccuracyBudgetExceeded(
        f"no {precision} candidate stays within --max-drop {max_drop:g}: "
        + ("; ".join(parts) if parts else "no candidate was tried"),
        hint=hint,
    )


def _contender(c: Candidate) -> Contender:
    size = sum((c.compiled.directory / f).stat().st_size for f in c.compiled.files) if c.compiled else None
    return Contender(c.label, c.latency.samples if c.latency else (), size_bytes=size,
                     drop=c.metrics.drop if c.metrics else None, precision=c.plan.precision)


def select(candidates: Sequence[Candidate], *, precision: str, force_precision: bool, max_drop: float) -> Selection:
    """The fastest accepted candidate of the requested precision, or when others are not distinguishable from
    it (``edgeopt.measure.significance``: bootstrap interval of the p50 ratio) the tie-break's pick among them
    (smaller file, higher quality, fp32); a reduced precision measurably slower than fp32 ships fp32 unless
    ``force_precision``."""
    accepted = [c for c in candidates if c.status in ("accepted", "baseline") and c.latency is not None]
    wanted = [c for c in accepted if precision == "auto" or c.plan.precision == precision]
    if not wanted:
        tried = [c for c in candidates if precision == "auto" or c.plan.precision == precision]
        if tried and all(c.status == "failed" and isinstance(c.error, ConversionError) for c in tried):
            raise tried[0].error  # type: ignore[misc] - nothing was measured: not an accuracy-budget error
        raise refusal(tried, precision=precision, max_drop=max_drop)
    by_label = {c.label: c for c in reversed(wanted)}  # a repeated label names its fastest-listed first one
    choice = choose([_contender(c) for c in by_label.values()])
    best = by_label[choice.chosen]
    warnings: list[str] = []
    fp32 = next((c for c in accepted if c.plan.precision == "fp32"), None)
    if fp32 is not None and best.plan.precision != "fp32" and fp32.label not in by_label:
        ci = ratio_ci(best.latency.samples, fp32.latency.samples)  # type: ignore[union-attr]
        ratio = best.latency.p50 / fp32.latency.p50  # type: ignore[union-attr]
        slower = ci.slower if ci is not None else ratio > 1.0 + NEGLIGIBLE
        measured = f"{ratio:.2f}x slower than fp32" + (f" (95% CI {ci.low:.3f}-{ci.high:.3f})" if ci else "")
        if slower and force_precision:
            warnings.append(f"{best.label} measured {measured} on this device; shipping it because "
                            "--force-precision was given")
        elif slower:
            warnings.append(f"{best.label} measured {measured} on this device; shipping fp32 instead "
                            "(use --force-precision to ship the slower model)")
            best = fp32
    best = replace(best, choice=choice.to_dict() if best is by_label.get(best.label) else None)
    if best.status == "baseline":
        best = replace(best, status="accepted")
    return Selection(best, tuple(warnings))
