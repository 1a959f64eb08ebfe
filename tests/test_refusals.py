"""E600 says why: each closest candidate's actual refusal reason, and a hint that fits those reasons."""

from __future__ import annotations

import pytest

from edgeopt.errors import AccuracyBudgetExceeded
from edgeopt.pipeline.compare import no_winner
from edgeopt.pipeline.comparison import Comparison, TargetResult
from edgeopt.pipeline.request import DeployRequest
from edgeopt.search.candidates import Candidate, budget_reason
from edgeopt.search.selection import select
from edgeopt.types import Metrics, Plan

COLLAPSE = "output 0 collapsed: it is constant across 32 samples while the reference varies (reference spread 0.4)"


def _candidate(label: str, status: str, *, drop: float | None = None, reason: str = "", max_drop: float = 1.0,
               keep: tuple[str, ...] = ()) -> Candidate:
    metrics = None if drop is None else Metrics("fidelity:top1_agreement", 100.0, 100.0 - drop, drop)
    if status == "refused" and not reason and metrics is not None:
        reason = budget_reason(metrics, max_drop)
    return Candidate(Plan("edgetpu", "int8", label=label, keep_fp32=keep), status, reason, metrics=metrics)


def _refusal(candidates: list[Candidate], max_drop: float = 1.0) -> AccuracyBudgetExceeded:
    with pytest.raises(AccuracyBudgetExceeded) as info:
        select(candidates, precision="auto", force_precision=False, max_drop=max_drop)
    return info.value


def test_a_collapsed_candidate_is_named_with_its_collapse_not_its_zero_drop() -> None:
    """The Edge TPU case of issue 22: int8 outputs collapsed, the drop read 0 points, and E600 said only that."""
    error = _refusal([_candidate("int8 full-integer", "refused", drop=0.0, reason=COLLAPSE)])
    assert "refused for their outputs: int8 full-integer (output 0 collapsed" in error.message
    assert "drop 0" not in error.message
    assert "raise --max-drop" not in error.hint and "cannot fix" in error.hint and "--calib" in error.hint


def test_build_failures_are_named_with_their_reason_and_a_hint_about_building() -> None:
    error = _refusal([_candidate("int8", "failed", reason="edgetpu_compiler exited 1: unsupported op Erf"),
                      _candidate("int8 per-tensor", "failed", reason="converter timed out after 600 s")])
    assert "failed to build: int8 (edgetpu_compiler exited 1: unsupported op Erf); int8 per-tensor (converter " \
        "timed out after 600 s)" in error.message
    assert "--max-drop" not in error.hint and "could be built" in error.hint


def test_budget_refusals_come_first_with_their_drop_and_the_budget_they_need() -> None:
    error = _refusal([
        _candidate("int8 entropy", "refused", drop=4.0),
        _candidate("int8 minmax", "refused", drop=2.5, keep=("fc2",)),
        _candidate("int8 percentile", "refused", drop=0.0, reason=COLLAPSE),
        _candidate("int8 per-tensor", "failed", reason="out of memory: the build needed ~3.1 GiB"),
        _candidate("int8 qat", "skipped", reason="skipped: search budget"),
        _candidate("int8 dup", "duplicate", reason="the target built the same files as int8 minmax"),
    ])
    text = error.message
    assert text.startswith("no auto candidate stays within --max-drop 1: closest over the budget: int8 minmax "
                           "(fidelity:top1_agreement drop 2.5 points, 1 node(s) kept in fp32); int8 entropy")
    assert "refused for their outputs: int8 percentile (output 0 collapsed" in text
    assert "failed to build: int8 per-tensor (out of memory: the build needed ~3.1 GiB)" in text
    assert "1 skipped" in text and "int8 dup" not in text
    assert error.hint.startswith("the closest needs --max-drop 2.5: raise --max-drop")


def test_many_candidates_of_one_kind_are_counted_not_listed() -> None:
    error = _refusal([_candidate(f"int8 v{i}", "refused", drop=2.0 + i) for i in range(5)])
    assert "int8 v0" in error.message and "int8 v2" in error.message and "int8 v3" not in error.message
    assert "and 2 more" in error.message


def test_only_skipped_candidates_point_at_the_search_budget() -> None:
    error = _refusal([_candidate("int8", "skipped", reason="skipped: search budget")])
    assert "--budget-s" in error.hint and "--max-drop" not in error.hint


def test_target_auto_groups_each_targets_reasons_and_hints() -> None:
    request = DeployRequest(source="m.onnx", target="auto", max_drop=1.0)
    collapse = _refusal([_candidate("int8", "refused", drop=0.0, reason=COLLAPSE)])
    budget = _refusal([_candidate("int8", "refused", drop=3.0)])
    comparison = Comparison(
        model="m.onnx", device="host", objective="latency", slo_ms=None, max_drop=1.0, winner=None, why="",
        results=(TargetResult("edgetpu", "refused", collapse.message, hint=collapse.hint),
                 TargetResult("cpu", "refused", budget.message, hint=budget.hint),
                 TargetResult("cuda", "unavailable", "no NVIDIA GPU found")),
    )
    error = no_winner(comparison, request)
    assert error.code == "E600"
    assert "edgetpu: refused for their outputs: int8 (output 0 collapsed" in error.message
    assert "cpu: closest over the budget: int8" in error.message and "cuda: no NVIDIA GPU found" in error.message
    assert "no auto candidate stays within" not in error.message  # each target's prefix is not repeated
    assert error.hint.startswith("edgetpu: the reduced-precision outputs broke")
    assert " | cpu: the closest needs --max-drop 3" in error.hint
