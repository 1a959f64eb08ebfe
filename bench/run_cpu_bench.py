"""CPU benchmark: edgeopt against ONNX Runtime, OpenVINO and NNCF defaults, in one process.

Run from the repository root::

    .venv/bin/python bench/run_cpu_bench.py

For each model every runtime is built first (failures recorded, never hidden), its outputs on the
evaluation set are compared with ONNX Runtime fp32 (and with the labels where there are any), then
all runners are timed together by ``edgeopt.measure.harness.measure_interleaved`` (batch 1, rounds
alternating between runtimes). Writes ``docs/benchmarks.md`` and ``docs/benchmarks.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402  (bench/ is not a package: a script directory)
from cases import Case, clone_command, shown_path  # noqa: E402
from render import kept_sections, render_markdown  # noqa: E402

from edgeopt.measure.harness import measure, measure_interleaved  # noqa: E402
from edgeopt.measure.host import cpu_isa, cpu_name, physical_cores  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
REFERENCE = "ORT fp32"
DIAGNOSTIC = "edgeopt auto model in plain ORT (diagnostic)"
CALIB_SAMPLES = 32
EVAL_SAMPLES = 16
TIMING_FEEDS = 16
TURN_S = 0.05
PAUSE_S = 0.1
PAUSE_PREFIX = "_pause"
MIN_RUNS = 40
PACKAGES = ("edgeopt", "edgeopt-cpu", "onnxruntime", "openvino", "nncf", "onnx", "numpy")




def digits_case() -> Case:
    calib, evaluation = np.load(DIGITS / "calib.npz"), np.load(DIGITS / "eval.npz")
    return Case(
        "digits CNN", DIGITS / "digits_cnn.onnx",
        {k: calib[k] for k in calib.files if k != "labels"},
        {k: evaluation[k] for k in evaluation.files if k != "labels"},
        evaluation["labels"] if "labels" in evaluation.files else None,
        f"real data: calib.npz ({len(calib['input'])} samples), "
        f"eval.npz ({len(evaluation['input'])} samples, labelled)",
    )


def zoo_case(name: str, filename: str) -> Case:
    """A model from the onnx wheel's test data; synthetic N(0,1) inputs (calibration seed 0, evaluation seed 1)."""
    import onnx
    import onnxruntime as ort

    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / filename
    options = ort.SessionOptions()
    options.log_severity_level = 3
    inputs = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).get_inputs()

    def synthetic(samples: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {i.name: rng.standard_normal((samples, *i.shape[1:])).astype(np.float32) for i in inputs}

    return Case(
        name, path, synthetic(CALIB_SAMPLES, 0), synthetic(EVAL_SAMPLES, 1), None,
        f"synthetic N(0,1): {CALIB_SAMPLES} calibration samples (seed 0), a different {EVAL_SAMPLES} "
        "for evaluation (seed 1); quality is fidelity to ORT fp32",
    )


@dataclass(frozen=True)
class DeployKnobs:
    """What the bench passes to ``edgeopt.deploy`` besides the model and data."""

    budget_s: float | None
    """Limit on the candidate search (None: none)."""
    timing_s: float
    """Timing budget per candidate comparison and for the final profile."""


# --- building -------------------------------------------------------------------------------------


def builders(case: Case, work: Path, *, threads: int, deploy: DeployKnobs) -> dict[str, Callable[[], peers.Built]]:
    calib = case.feeds(case.calib)

    def edgeopt(precision: str) -> Callable[[], peers.Built]:
        return lambda: peers.edgeopt_deploy(
            case.path, work / f"edgeopt-{precision}.edgeopt", precision=precision, calib=case.calib,
            evaluation={**case.evaluation, **({"labels": case.labels} if case.labels is not None else {})},
            threads=threads, budget_s=deploy.budget_s, timing_s=deploy.timing_s,
        )

    return {
        REFERENCE: lambda: peers.ort_fp32(case.path, threads=threads),
        "ORT quantize_static": lambda: peers.ort_quantize_static(case.path, calib, work / "ort-qs", threads=threads),
        "OpenVINO fp32": lambda: peers.openvino_fp32(case.path, work / "ov", threads=threads),
        "NNCF int8": lambda: peers.nncf_int8(case.path, calib, work / "nncf", threads=threads),
        "edgeopt auto": edgeopt("auto"),
        "edgeopt int8": edgeopt("int8"),
    }


def build_all(case: Case, work: Path, *, threads: int, deploy: DeployKnobs) -> tuple[dict, dict]:
    """Build every runtime; returns (built by name, error text by name), both with build seconds recorded."""
    built: dict[str, tuple[peers.Built, float]] = {}
    errors: dict[str, dict[str, Any]] = {}
    for name, build in builders(case, work, threads=threads, deploy=deploy).items():
        print(f"  building {name} ...", flush=True)
        began = time.perf_counter()
        try:
            built[name] = (build(), time.perf_counter() - began)
        except Exception as exc:  # a runtime that fails is a result: record it and carry on with the rest
            errors[name] = {
                "error": f"{type(exc).__name__}: {exc}",
                "hint": getattr(exc, "hint", None),
                "traceback_tail": traceback.format_exc().strip().splitlines()[-6:],
                "build_s": time.perf_counter() - began,
            }
            print(f"    FAILED: {errors[name]['error']}", flush=True)
    if "edgeopt auto" in built:
        details = built["edgeopt auto"][0].details
        began = time.perf_counter()
        diagnostic = peers.ort_on_artifact(Path(details["path"]), details["model_file"], threads=threads)
        built[DIAGNOSTIC] = (diagnostic, time.perf_counter() - began)
    return built, errors


# --- quality --------------------------------------------------------------------------------------


def outputs_on(runner: Any, feeds: Sequence[Mapping[str, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """One pass over ``feeds``: (all outputs of each sample flattened and concatenated, the first output
    flattened), each one float64 row per sample."""
    rows, scores = [], []
    for f in feeds:
        outs = [np.asarray(o, np.float64).ravel() for o in runner.run(f)]
        rows.append(np.concatenate(outs))
        scores.append(outs[0])
    return np.stack(rows), np.stack(scores)


def quality(ref: np.ndarray, cand: np.ndarray, ref_scores: np.ndarray, cand_scores: np.ndarray,
            labels: np.ndarray | None) -> dict[str, Any]:
    """Accuracy (with labels) and fidelity to the reference: mean per-sample cosine, relative L1 error,
    max abs error, and top-1 agreement over the samples whose reference has a single top class."""
    dot = np.sum(ref * cand, axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cosine = np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0)
    top = np.sort(ref_scores, axis=1)
    decisive = (top[:, -1] - top[:, -2]) > 1e-6 * np.maximum(np.abs(ref_scores).max(axis=1), 1e-30)
    agree = np.argmax(cand_scores, axis=1) == np.argmax(ref_scores, axis=1)
    result: dict[str, Any] = {
        "cosine": float(np.mean(cosine)),
        "rel_l1_error": float(np.abs(cand - ref).sum() / max(np.abs(ref).sum(), 1e-30)),
        "max_abs_error": float(np.max(np.abs(cand - ref))),
        "top1_decisive_samples": int(decisive.sum()),
        "top1_agreement": float(np.mean(agree[decisive]) * 100) if decisive.any() else None,
        "samples": len(ref),
    }
    if labels is not None:
        result["accuracy"] = float(np.mean(np.argmax(cand_scores, axis=1) == labels[: len(cand_scores)]) * 100)
    return result


def reference_profile(ref_scores: np.ndarray) -> dict[str, Any]:
    """How informative the reference output is: per-sample spread across classes, distinct top-1 classes."""
    spread = ref_scores.max(axis=1) - ref_scores.min(axis=1)
    return {
        "output_mean": float(ref_scores.mean()),
        "per_sample_class_spread_max": float(spread.max()),
        "per_sample_class_spread_mean": float(spread.mean()),
        "distinct_top1_classes": int(len(np.unique(np.argmax(ref_scores, axis=1)))),
        "classes": int(ref_scores.shape[1]),
    }


class Pause:
    """A Runner that only sleeps: placed after each runtime's turn so its worker threads stop spinning
    before the next runtime is timed (on a 2-core machine they otherwise steal a core from it)."""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        time.sleep(self._seconds)
        return []

    def close(self) -> None:
        """Nothing to release."""


def runs_per_round(runners: Mapping[str, Any], feeds: Sequence[Mapping[str, np.ndarray]]) -> int:
    """Consecutive runs per runner per round: enough for a turn of ~``TURN_S`` (3 to 50 runs).

    A runtime's worker threads keep spinning for a while after its last run (OpenVINO's especially) and
    slow down whichever runner comes next in the round; with several runs per turn only the first run of
    each turn pays for that, which moves the cost into the tail instead of the median.
    """
    first = next(iter(runners.values()))
    estimate = measure(first, feeds, warmup=2, runs=10).p50
    return int(min(50, max(3, math.ceil(TURN_S / max(estimate, 1e-9)))))


# --- one model ------------------------------------------------------------------------------------


def bench_model(case: Case, *, threads: int, budget_per_runner_s: float, deploy: DeployKnobs) -> dict[str, Any]:
    print(f"\n== {case.name} ({case.path.name})", flush=True)
    with tempfile.TemporaryDirectory(prefix="edgeopt-bench-") as tmp:
        built, errors = build_all(case, Path(tmp), threads=threads, deploy=deploy)
        try:
            return _measure(case, built, errors, budget_per_runner_s=budget_per_runner_s)
        finally:
            for b, _ in built.values():
                b.runner.close()


def _measure(case: Case, built: dict, errors: dict, *, budget_per_runner_s: float) -> dict[str, Any]:
    eval_feeds = case.feeds(case.evaluation)
    rows: dict[str, dict[str, Any]] = {}
    ref_rows = ref_scores = None
    if REFERENCE in built:
        ref_rows, ref_scores = outputs_on(built[REFERENCE][0].runner, eval_feeds)
    for name, (b, build_s) in built.items():
        row: dict[str, Any] = {"size_bytes": b.size_bytes, "build_s": build_s, "notes": list(b.notes),
                               "details": dict(b.details)}
        if ref_rows is not None:
            try:
                cand_rows, cand_scores = outputs_on(b.runner, eval_feeds)
                row["quality"] = quality(ref_rows, cand_rows, ref_scores, cand_scores, case.labels)
            except Exception as exc:  # e.g. an output of another shape: report, keep timing the rest
                row["quality_error"] = f"{type(exc).__name__}: {exc}"
        rows[name] = row
    runners = {name: b.runner for name, (b, _) in built.items()}
    per_round = runs_per_round(runners, eval_feeds[:TIMING_FEEDS])
    print(f"  timing {len(runners)} runners interleaved, {per_round} runs per turn "
          f"(~{budget_per_runner_s * len(runners):.0f} s) ...", flush=True)
    timed: dict[str, Any] = {}
    for i, (name, runner) in enumerate(runners.items()):
        timed[name] = runner
        timed[f"{PAUSE_PREFIX}{i}"] = Pause(PAUSE_S / per_round)
    stats = measure_interleaved(timed, eval_feeds[:TIMING_FEEDS], warmup=10, runs_per_round=per_round,
                                budget_s=budget_per_runner_s * len(runners),
                                min_rounds=max(5, math.ceil(MIN_RUNS / per_round)), batch=1)
    stats = {name: s for name, s in stats.items() if not name.startswith(PAUSE_PREFIX)}
    base = stats[REFERENCE].p50 if REFERENCE in stats else None
    for name, s in stats.items():
        rows[name]["latency"] = {"p50_s": s.p50, "p90_s": s.p90, "p99_s": s.p99, "min_s": s.min, "mean_s": s.mean,
                                 "runs": s.runs, "vs_ort_fp32_p50": (s.p50 / base) if base else None}
    return {
        "model": case.name, "path": shown_path(case.path), "data": case.data_note, "runs_per_round": per_round,
        "reference": reference_profile(ref_scores) if ref_scores is not None else None,
        "runtimes": rows, "failures": errors,
    }


# --- verdict --------------------------------------------------------------------------------------


def quality_key(row: Mapping[str, Any], labelled: bool) -> float | None:
    q = row.get("quality")
    if not q:
        return None
    return q["accuracy"] if labelled else q["cosine"]


def verdicts(result: Mapping[str, Any], *, noise: float = 0.05) -> list[dict[str, Any]]:
    """For each edgeopt row: is some ORT default both at least as accurate and more than ``noise`` faster?"""
    rows = result["runtimes"]
    labelled = any("accuracy" in (r.get("quality") or {}) for r in rows.values())
    tol = 0.0 if labelled else 1e-6
    out = []
    for e in ("edgeopt auto", "edgeopt int8"):
        if e not in rows or "latency" not in rows[e]:
            out.append({"edgeopt": e, "status": "failed", "beaten_by": []})
            continue
        qe, pe = quality_key(rows[e], labelled), rows[e]["latency"]["p50_s"]
        beaten, traded = [], []
        for d in (REFERENCE, "ORT quantize_static"):
            if d not in rows or "latency" not in rows[d]:
                continue
            qd, pd = quality_key(rows[d], labelled), rows[d]["latency"]["p50_s"]
            at_least_as_good = qd is not None and qe is not None and qd >= qe - tol
            if at_least_as_good and pd * (1 + noise) < pe:
                beaten.append(d)
            elif pe < pd and qd is not None and qe is not None and qe < qd - tol:
                traded.append(d)
        out.append({"edgeopt": e, "status": "behind" if beaten else "at or ahead", "beaten_by": beaten,
                     "faster_but_less_accurate_than": traded})
    return out


# --- machine and main -----------------------------------------------------------------------------


def machine_info(threads: int) -> dict[str, Any]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {
        "cpu": cpu_name(), "isa": list(cpu_isa()), "physical_cores": physical_cores(), "logical_cpus": os.cpu_count(),
        "threads_given_to_every_runtime": threads, "platform": platform.platform(),
        "python": platform.python_version(), "packages": versions,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=physical_cores(), help="intra-op threads for every runtime")
    parser.add_argument("--budget", type=float, default=3.0, help="timing seconds per runner per model")
    parser.add_argument("--deploy-budget", type=float, default=60.0,
                        help="edgeopt.deploy(budget_s=...): seconds for its candidate search (0: no limit)")
    parser.add_argument("--deploy-timing", type=float, default=2.0, help="edgeopt.deploy(timing_s=...)")
    parser.add_argument("--models", default="digits,squeezenet,resnet50", help="comma-separated subset")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where benchmarks.md/.json go")
    args = parser.parse_args(argv)
    cases = {
        "digits": digits_case,
        "squeezenet": lambda: zoo_case("SqueezeNet (light)", "light_squeezenet.onnx"),
        "resnet50": lambda: zoo_case("ResNet-50 (light)", "light_resnet50.onnx"),
    }
    began = time.time()
    load_before = os.getloadavg()
    knobs = DeployKnobs(budget_s=args.deploy_budget or None, timing_s=args.deploy_timing)
    results = []
    for key in args.models.split(","):
        result = bench_model(cases[key.strip()](), threads=args.threads, budget_per_runner_s=args.budget,
                             deploy=knobs)
        result["verdicts"] = verdicts(result)
        results.append(result)
    machine = machine_info(args.threads)
    machine["load_average_before"], machine["load_average_after"] = list(load_before), list(os.getloadavg())
    command = clone_command(sys.argv)
    report = {
        "command": command,
        "edgeopt_deploy": {"budget_s": knobs.budget_s, "timing_s": knobs.timing_s, "cache": False,
                           "threads": args.threads},
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(began)),
        "wall_s": time.time() - began,
        "machine": machine,
        "results": results,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "benchmarks.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    target = args.out / "benchmarks.md"
    kept = kept_sections(target.read_text()) if target.exists() else ""
    target.write_text(render_markdown(report).rstrip("\n") + "\n\n" + kept if kept else render_markdown(report))
    print(f"\nwrote {args.out / 'benchmarks.md'} and benchmarks.json in {report['wall_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
