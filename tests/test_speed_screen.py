"""The speed screen of ``--precision auto`` (``edgeopt.search.speed_screen``) and the target order of
``--target auto``."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest

from edgeopt.search import run as search_mod
from edgeopt.search.candidates import Candidate
from edgeopt.search.speed_screen import Bar, SpeedScreen, max_speedup, speed_key
from edgeopt.types import Compiled, DeviceProfile, Metrics, PassSpec, Plan

FEEDS = [{"x": np.zeros((1, 4), np.float32)}]


def _device(**peaks: float) -> DeviceProfile:
    return DeviceProfile("test-cpu", "cpu", "test", {"fp32": 1e12, **peaks}, 1e10, 1.0, 2.0)


class Sleeper:
    """A runner that takes ``ms`` per run (sleeping: it does not compete for the CPU)."""

    def __init__(self, ms: float) -> None:
        self.seconds = ms / 1e3
        self.closed = False

    def run(self, feeds):
        time.sleep(self.seconds)
        return [np.zeros(1, np.float32)]

    def close(self) -> None:
        self.closed = True


def test_max_speedup_is_the_larger_of_peak_ops_and_bytes_ratio() -> None:
    device = _device(int8=4e12, bf16=2e12)
    assert max_speedup(device, "int8") == 4
    assert max_speedup(device, "int8-dynamic") == 4
    assert max_speedup(device, "bf16") == 2
    assert max_speedup(device, "fp16") == 2  # no fp16 arithmetic in the profile: half the bytes still counts
    assert max_speedup(device, "fp32") == 1
    assert max_speedup(_device(int8=8e12), "int8") == 8
    assert max_speedup(device, "mystery") == math.inf
    assert max_speedup(DeviceProfile("tpu", "tpu", "", {"int8": 4e12}, 1e9, 1, 2), "int8") == math.inf


def test_speed_key_ignores_scales_but_not_kernels() -> None:
    quant = PassSpec("quantize", {"method": "minmax"})
    base = Plan("t", "int8", (quant,), label="int8")
    assert speed_key(base) == speed_key(Plan("t", "int8", (quant,), calibration="entropy", granularity="per-tensor"))
    assert speed_key(base) == speed_key(Plan("t", "int8", (quant,), keep_fp32=("conv1",)))
    other = Plan("t", "int8", (PassSpec("quantize", {"method": "percentile"}),))
    assert speed_key(base) != speed_key(other)  # different pass parameters: the core cannot tell
    a = Plan("t", "int8", (quant,), kernels="static u8s8")
    b = Plan("t", "int8", (PassSpec("quantize", {"method": "percentile"}),), kernels="static u8s8")
    assert speed_key(a) == speed_key(b)  # the plugin says they share kernels
    assert speed_key(a) != speed_key(Plan("u", "int8", (quant,), kernels="static u8s8"))


def test_screen_skips_the_kernels_of_a_slow_plan_and_plans_bounded_out() -> None:
    screen = SpeedScreen(Sleeper(4), FEEDS, _device(int8=4e12, bf16=2e12))
    slow = Plan("t", "int8", (PassSpec("q", {}),), label="int8")
    assert screen.observe(slow, "int8", False, Sleeper(8)) > 1.5
    reason = screen.skip_reason(Plan("t", "int8", (PassSpec("q", {}),), calibration="entropy"))
    assert reason is not None and "same kernels" in reason and "int8 ran at" in reason
    assert screen.skip_reason(Plan("t", "bf16", label="bf16")) is None  # bf16 may still be 2x faster than fp32
    assert screen.observe(Plan("t", "bf16"), "bf16", True, Sleeper(1)) < 0.5
    assert screen.best_label == "bf16"
    reason = screen.skip_reason(Plan("t", "fp16"))  # at most 2x: cannot beat bf16 at about 4x
    assert reason is not None and "cannot beat bf16" in reason
    assert screen.skip_reason(Plan("t", "fp32", label="another fp32")) is None  # nothing bounds fp32 plans


def test_screen_takes_a_faster_bar_from_another_target() -> None:
    screen = SpeedScreen(Sleeper(6), FEEDS, _device(int8=4e12))
    assert screen.against(Bar("other int8", Sleeper(1))) < 0.25
    reason = screen.skip_reason(Plan("t", "int8"))
    assert reason is not None and "cannot beat other int8" in reason


@pytest.mark.parametrize("exhaustive", [False, True])
def test_search_skips_variants_and_fallback_of_a_slow_int8(exhaustive: bool) -> None:
    """fp32 baseline 3 ms, int8 refused at 6 ms: its entropy variant and the fallback are not built unless the
    search is exhaustive; a bf16 plan still is."""
    speeds = {"fp32": 3, "int8": 6, "int8 entropy": 6, "bf16": 1.5}
    statuses = {"fp32": "accepted", "int8": "refused", "int8 entropy": "refused", "bf16": "accepted"}
    built: list[str] = []

    class Ctx:
        screen = not exhaustive
        bar = None
        timing_feeds = FEEDS
        device = _device(int8=4e12, bf16=2e12)
        batch = 1

        class events:
            @staticmethod
            def step(message: str) -> None: ...

        def out_of_time(self) -> bool:
            return False

    def evaluate_plan(ctx, plan, index, *, origin="plan", force=False, last_build=False):
        built.append(plan.label)
        status = statuses[plan.label]
        metrics = Metrics("fidelity:cosine", 100.0, 98.0, 2.0 if status == "refused" else 0.0)
        compiled = Compiled(directory=Path("."), model_file="m", files=("m",), plan=plan, runtime="stub")
        return Candidate(plan, status, "", compiled, metrics, origin=origin), Sleeper(speeds[plan.label])

    class Ranked:
        def ranked(self):
            return []

    original = search_mod.evaluate_plan, search_mod.analyse
    search_mod.evaluate_plan, search_mod.analyse = evaluate_plan, lambda ctx, base: Ranked()
    try:
        plans = [(Plan("t", "fp32", label="fp32"), "plan"), (Plan("t", "int8", label="int8"), "plan"),
                 (Plan("t", "int8", label="int8 entropy", calibration="entropy"), "variant"),
                 (Plan("t", "bf16", label="bf16"), "plan")]
        found = search_mod._run_search(Ctx(), plans, "auto", search_mod.Search(), None)
    finally:
        search_mod.evaluate_plan, search_mod.analyse = original
    if exhaustive:
        assert built == ["fp32", "int8", "int8 entropy", "bf16"]
        assert found.notes == ["no mixed-precision fallback from int8: no node could be ranked"]
        return
    assert built == ["fp32", "int8", "bf16"]
    skipped = found.candidates[2]
    assert skipped.status == "skipped" and "same kernels" in skipped.reason
    assert len(found.notes) == 1 and "cannot win on speed" in found.notes[0]


class _Found:
    """A target search holding only its fp32 baseline (``ms`` per run; None: the baseline failed)."""

    def __init__(self, ms: float | None, seconds: float = 1.0) -> None:
        self.candidates = [Candidate(Plan("t", "fp32"), "baseline" if ms else "failed", seconds=seconds)]
        self.search = search_mod.Search()
        if ms:
            self.search.runners[0] = Sleeper(ms)


class _Prepared:
    from edgeopt.types import Dataset

    evaluation = Dataset({"x": np.zeros((4, 4), np.float32)})
    batch = 1


class _Events:
    def step(self, message: str) -> None: ...


def test_targets_are_searched_fastest_baseline_first() -> None:
    from edgeopt.pipeline.target_order import _ranked

    opened = {"slow": _Found(5), "broken": _Found(None), "fast": _Found(1), "middle": _Found(3)}
    assert _ranked(opened, _Prepared(), _Events()) == ["fast", "middle", "slow", "broken"]


def test_targets_as_fast_as_the_fastest_go_cheapest_build_first() -> None:
    """Two baselines at the same speed: the one that built in 2 s is searched before the one that took 20 s."""
    from edgeopt.pipeline.target_order import _ranked

    opened = {"converter": _Found(2, 20.0), "native": _Found(2, 2.0), "slow": _Found(6, 1.0)}
    assert _ranked(opened, _Prepared(), _Events()) == ["native", "converter", "slow"]


def test_deploy_help_states_the_default_auto_budget() -> None:
    from edgeopt.pipeline.request import AUTO_BUDGET_S

    source = (Path(__file__).parents[1] / "edgeopt" / "cli" / "deploy_command.py").read_text()
    assert f"{AUTO_BUDGET_S:g} unless --exhaustive" in source.replace('"\n                     "', "")


def test_each_target_gets_a_share_of_the_budget_left() -> None:
    from edgeopt.pipeline.target_order import _share

    assert _share(None, left=3) is None
    now = time.monotonic()
    first = _share(now + 90, left=3)  # three targets to go: at most half of 90 s
    assert first is not None and 44 <= first - now <= 45.5
    last = _share(now + 30, left=1)
    assert last is not None and 29 <= last - now <= 30.5  # the last target gets all that is left
    assert _share(now - 5, left=2) <= time.monotonic() + 0.5  # nothing left: nothing more


def test_the_budget_covers_the_baselines_but_leaves_the_searches_a_third() -> None:
    from edgeopt.pipeline.target_order import _deadline

    now = time.monotonic()
    assert _deadline(now, None) is None
    assert abs(_deadline(now - 10, 90) - (now + 80)) < 1  # quick baselines: the rest of the 90 s
    assert abs(_deadline(now - 80, 90) - (now + 30)) < 1  # slow baselines: still a third of it
