"""Cross-check edgeopt's harness against OpenVINO's own ``benchmark_app`` on the same IR.

``benchmark_app`` ships in the openvino wheel (the ``benchmark_app`` script beside the interpreter, or
``python -m openvino.tools.benchmark.main``). It is run here in synchronous mode with the exact
``compile_model`` properties edgeopt's runner uses (passed through ``-load_config``, since its UI
refuses ``-hint`` together with ``-nthreads``), on the IR's own input shapes, with
``-inference_only false`` so that each of its iterations hands the inputs over as edgeopt's runner does.

benchmark_app reports two different figures, and each is compared with its like:

* its latency statistics are OpenVINO's own per-request time (``InferRequest.latency``), which leaves out
  the Python call, the input hand-over and the output copy. On millisecond models that cost is noise and
  they match the harness's p50; on a model that runs in tens of microseconds they differ by it.
* ``Duration / Count`` is its wall clock per synchronous iteration, measured around the same Python
  ``infer()`` call every Python caller pays for: the like-for-like figure for the harness's mean wall
  clock per ``runner.run``, at every model size.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgeopt.plugin import TargetError

_UNITS = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}
_STAT = re.compile(r"^\[\s*INFO\s*\]\s+(Median|Average|Min|Max):\s+([0-9.]+)\s*(ns|us|ms|s)\s*$", re.MULTILINE)
_COUNT = re.compile(r"^\[\s*INFO\s*\]\s+Count:\s+(\d+)\s+iterations", re.MULTILINE)
_DURATION = re.compile(r"^\[\s*INFO\s*\]\s+Duration:\s+([0-9.]+)\s*(ns|us|ms|s)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class BenchmarkAppResult:
    """Latency of one ``benchmark_app`` run, seconds, as it reported them."""

    median: float
    average: float
    min: float
    max: float
    iterations: int
    command: tuple[str, ...]
    config: dict[str, dict[str, str]]
    duration: float = 0.0
    """Wall-clock seconds of the measured loop."""

    @property
    def wall_per_iteration(self) -> float:
        """Mean wall clock of one synchronous iteration (``Duration / Count``), seconds."""
        return self.duration / self.iterations if self.iterations else float("nan")


def benchmark_app_command() -> list[str]:
    """How to start ``benchmark_app`` with this interpreter's openvino."""
    script = Path(sys.executable).with_name("benchmark_app")
    if script.is_file():
        return [str(script)]
    found = shutil.which("benchmark_app")
    if found and Path(found).resolve().parent == Path(sys.executable).resolve().parent:
        return [found]
    return [sys.executable, "-m", "openvino.tools.benchmark.main"]


def parse_report(text: str) -> dict[str, float]:
    """``{"median": s, "average": s, "min": s, "max": s, "iterations": n, "duration": s}`` from
    benchmark_app's output (keys it did not print are absent)."""
    stats = {name.lower(): float(value) * _UNITS[unit] for name, value, unit in _STAT.findall(text)}
    count = _COUNT.search(text)
    if count:
        stats["iterations"] = float(count.group(1))
    duration = _DURATION.search(text)
    if duration:
        stats["duration"] = float(duration.group(1)) * _UNITS[duration.group(2)]
    return stats


def run_benchmark_app(
    model_xml: Path,
    *,
    config: dict[str, str],
    ov_device: str = "CPU",
    seconds: float = 3.0,
    timeout_s: float = 120.0,
) -> BenchmarkAppResult:
    """Time ``model_xml`` with ``benchmark_app -api sync`` under ``config`` (``runtime_config``'s output)."""
    with tempfile.TemporaryDirectory(prefix="edgeopt-benchmark-app-") as tmp:
        config_file = Path(tmp) / "config.json"
        full = {ov_device: dict(config)}
        config_file.write_text(json.dumps(full))
        command = [
            *benchmark_app_command(),
            "-m", str(model_xml),
            "-d", ov_device,
            "-api", "sync",
            "-inference_only", "false",
            "-load_config", str(config_file),
            "-t", f"{max(1, round(seconds))}",
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, cwd=tmp, check=False)
        except subprocess.TimeoutExpired as exc:
            raise TargetError(f"benchmark_app did not finish within {timeout_s:g} s") from exc
    stats = parse_report(done.stdout)
    if done.returncode != 0 or not {"median", "average", "min", "max"} <= set(stats):
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise TargetError(
            f"benchmark_app failed (exit {done.returncode}): {' | '.join(tail)}",
            hint="check that the openvino wheel's tools are installed (python -m openvino.tools.benchmark.main -h)",
        )
    return BenchmarkAppResult(
        median=stats["median"],
        average=stats["average"],
        min=stats["min"],
        max=stats["max"],
        iterations=int(stats.get("iterations", 0)),
        command=tuple(command),
        config=full,
        duration=stats.get("duration", 0.0),
    )


@dataclass(frozen=True)
class CrossCheck:
    """edgeopt's harness and ``benchmark_app`` on the same IR, alternated ``rounds`` times (A B A B ...)."""

    harness_p50: tuple[float, ...]
    """Harness p50 of each round, seconds."""
    benchmark_app_median: tuple[float, ...]
    """benchmark_app median of each round, seconds."""
    config: dict[str, str]
    harness_min: tuple[float, ...] = ()
    """Harness fastest run of each round, seconds."""
    benchmark_app_min: tuple[float, ...] = ()
    """benchmark_app fastest run of each round, seconds."""
    harness_mean: tuple[float, ...] = ()
    """Harness mean wall clock per ``runner.run`` of each round, seconds."""
    benchmark_app_wall: tuple[float, ...] = ()
    """benchmark_app ``Duration / Count`` of each round: its mean wall clock per sync iteration, seconds."""

    @property
    def harness(self) -> float:
        return sorted(self.harness_p50)[len(self.harness_p50) // 2]

    @property
    def benchmark_app(self) -> float:
        return sorted(self.benchmark_app_median)[len(self.benchmark_app_median) // 2]

    @property
    def ratio(self) -> float:
        """Median over rounds of (harness p50 / benchmark_app median) of the same round (above 1: the harness
        measured slower). Pairing rounds cancels drift that hits both halves of a round alike."""
        ratios = sorted(h / b for h, b in zip(self.harness_p50, self.benchmark_app_median, strict=True))
        return ratios[len(ratios) // 2]

    @property
    def wall_ratio(self) -> float:
        """Median over rounds of (harness mean / benchmark_app wall clock per iteration) of the same round: both
        the wall clock of one synchronous Python ``infer`` call, the like-for-like comparison at any model size."""
        ratios = sorted(h / b for h, b in zip(self.harness_mean, self.benchmark_app_wall, strict=True))
        return ratios[len(ratios) // 2]

    @property
    def min_ratio(self) -> float:
        """Fastest harness run over fastest benchmark_app run, over all rounds: the figure least disturbed
        by other processes (neither can run faster than the model does)."""
        return min(self.harness_min) / min(self.benchmark_app_min)


def cross_check(
    model_xml: Path,
    feeds: list[dict],
    *,
    threads: int,
    precision: str = "fp32",
    seconds: float = 2.0,
    rounds: int = 3,
) -> CrossCheck:
    """Time ``model_xml`` at its own batch with edgeopt's runner and harness, then with ``benchmark_app``
    (same device CPU, threads, LATENCY hint, precision hint, shapes), alternating ``rounds`` times so
    drift on a shared machine hits both alike."""
    import openvino as ov
    from edgeopt.plugin import measure

    from edgeopt_openvino.runner import LATENCY, OpenVinoRunner, runtime_config

    config = runtime_config(ov.Core(), "CPU", precision=precision, hint=LATENCY, threads=threads)
    ours: list[float] = []
    theirs: list[float] = []
    ours_min: list[float] = []
    theirs_min: list[float] = []
    ours_mean: list[float] = []
    theirs_wall: list[float] = []
    for _ in range(rounds):
        runner = OpenVinoRunner(model_xml, precision=precision, batch=1, threads=threads)
        try:
            if runner.config != config:
                raise TargetError(f"the runner compiled with {runner.config}, the cross-check expects {config}")
            stats = measure(runner, feeds, warmup=10, budget_s=seconds)
        finally:
            runner.close()
        ours.append(stats.p50)
        ours_min.append(stats.min)
        ours_mean.append(stats.mean)
        result = run_benchmark_app(model_xml, config=config, seconds=seconds)
        theirs.append(result.median)
        theirs_min.append(result.min)
        theirs_wall.append(result.wall_per_iteration)
    return CrossCheck(tuple(ours), tuple(theirs), config, tuple(ours_min), tuple(theirs_min), tuple(ours_mean),
                      tuple(theirs_wall))
