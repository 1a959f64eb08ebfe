"""GPU benchmark: edgeopt's ``cuda`` target against plain ONNX Runtime CUDA EP fp32, in one process.

Run from the repository root on a machine with an NVIDIA GPU and onnxruntime-gpu (docs/gpu.md)::

    python bench/run_gpu_bench.py --device nvidia-h100

For each model (the digits CNN with its real data; ResNet-50 from the onnx wheel's test data with
synthetic inputs) it deploys to ``--target cuda`` with ``--precision fp16`` and ``auto`` (each artifact
then profiled over ``--batches`` with NVML energy, the largest batch meeting ``--slo-ms`` chosen), loads
the artifacts, checks their outputs against plain ORT CUDA EP fp32, and times all runners together with
``edgeopt.measure.harness.measure_interleaved`` (batch 1, rounds alternating). Energy per inference is read from
NVML around separate timed blocks per runner (two passes, alternating), with the idle board power measured
first. Writes ``docs/gpu_bench.json`` and the results section of ``docs/gpu.md``.

Without a usable GPU it prints why (the ``cuda`` target's reason) and exits with status 2, writing nothing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cases import Case, clone_command, shown_path  # noqa: E402  (bench/ is not a package: a script directory)

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "examples" / "digits"
REFERENCE = "ORT CUDA EP fp32 (plain)"
BEGIN, END = "<!-- gpu-bench:begin -->", "<!-- gpu-bench:end -->"
SYNTHETIC_SAMPLES = 32
TIMING_FEEDS = 16
PACKAGES = ("edgeopt", "edgeopt-cuda", "onnxruntime-gpu", "onnxruntime", "onnx", "onnxconverter-common",
            "nvidia-ml-py", "tensorrt-cu13-libs", "numpy")

Feeds = Mapping[str, np.ndarray]




def digits_case() -> Case:
    calib, evaluation = np.load(DIGITS / "calib.npz"), np.load(DIGITS / "eval.npz")
    return Case(
        "digits CNN", DIGITS / "digits_cnn.onnx",
        {k: calib[k] for k in calib.files if k != "labels"},
        {k: evaluation[k] for k in evaluation.files if k != "labels"},
        evaluation["labels"] if "labels" in evaluation.files else None,
        "real data: examples/digits calib.npz and eval.npz (labelled)",
    )


def resnet50_case() -> Case:
    import onnx

    path = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_resnet50.onnx"
    model = onnx.load(str(path), load_external_data=False)
    initializers = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initializers]

    def synthetic(seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {
            i.name: rng.standard_normal(
                (SYNTHETIC_SAMPLES, *[d.dim_value for d in i.type.tensor_type.shape.dim][1:])
            ).astype(np.float32)
            for i in inputs
        }

    return Case(
        "ResNet-50 (light)", path, synthetic(0), synthetic(1), None,
        f"synthetic N(0,1): {SYNTHETIC_SAMPLES} calibration samples (seed 0), {SYNTHETIC_SAMPLES} for evaluation "
        "(seed 1); constant 0.02 weights, so quality is fidelity to ORT fp32 only",
    )


# --- runners --------------------------------------------------------------------------------------


class OrtCudaPlain:
    """Plain ONNX Runtime on the CUDA EP with default options: ``session.run(None, feeds)`` on numpy feeds."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), options, providers=["CUDAExecutionProvider"])
        if self._session.get_providers()[0] != "CUDAExecutionProvider":
            raise RuntimeError(f"plain ORT fell back to {self._session.get_providers()}")

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        return self._session.run(None, dict(feeds))

    def close(self) -> None:
        self._session = None


class PredictorRunner:
    """An ``edgeopt.load`` Predictor behind the Runner protocol (outputs in the artifact's order)."""

    def __init__(self, predictor: Any) -> None:
        self._predictor = predictor
        self._names = list(predictor.output_names)

    def run(self, feeds: Feeds) -> list[np.ndarray]:
        out = self._predictor(feeds)
        return [out[n] for n in self._names]

    def close(self) -> None:
        self._predictor.close()


def deploy(case: Case, out: Path, *, device: str, precision: str, batches: Sequence[int], slo_ms: float,
           timing_s: float) -> tuple[Any, dict[str, Any]]:
    """``edgeopt.deploy(target="cuda")``, then ``edgeopt.profile`` of the artifact over ``batches``."""
    from edgeopt import api

    evaluation = {**case.evaluation, **({"labels": case.labels} if case.labels is not None else {})}
    dep = api.deploy(str(case.path), target="cuda", device=device, precision=precision, calib=dict(case.calib),
                     eval=evaluation, batch=list(batches), slo_ms=slo_ms, out=out, timing_s=timing_s, cache=False)
    sweep = api.profile(dep.path, batch=list(batches), slo_ms=slo_ms, timing_s=timing_s)
    plan = dep.manifest.get("plan", {})
    details = {
        "chosen": plan.get("label"), "precision": plan.get("precision"), "path": str(dep.path),
        "candidates": [{k: c.get(k) for k in ("label", "precision", "status", "reason", "latency_p50_s", "drop")}
                       for c in dep.manifest.get("candidates", [])],
        "deploy_profile": dep.manifest.get("profile"), "profile_sweep": sweep, "warnings": list(dep.warnings),
    }
    return PredictorRunner(api.load(dep.path)), details


# --- measuring ------------------------------------------------------------------------------------


def outputs_on(runner: Any, feeds: Sequence[Feeds]) -> np.ndarray:
    return np.stack([np.concatenate([np.asarray(o, np.float64).ravel() for o in runner.run(f)]) for f in feeds])


def quality(ref: np.ndarray, cand: np.ndarray, labels: np.ndarray | None, classes: int) -> dict[str, Any]:
    """Fidelity to the plain fp32 run: mean cosine, relative L1, max error relative to the output range."""
    dot = np.sum(ref * cand, axis=1)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    result: dict[str, Any] = {
        "cosine": float(np.mean(np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), 0.0))),
        "rel_l1_error": float(np.abs(cand - ref).sum() / max(np.abs(ref).sum(), 1e-30)),
        "max_rel_error": float(np.max(np.abs(cand - ref)) / max(float(np.max(np.abs(ref))), 1e-30)),
        "samples": len(ref),
    }
    if labels is not None:
        result["accuracy"] = float(np.mean(np.argmax(cand[:, :classes], axis=1) == labels[: len(cand)]) * 100)
    return result


def idle_watts(meter_factory: Callable[[], Any], seconds: float = 2.0) -> float | None:
    """Board power with nothing running, from the NVML energy counter over ``seconds``."""
    try:
        meter = meter_factory()
    except Exception:
        return None
    meter.start()
    time.sleep(seconds)
    return meter.stop().joules / seconds


def energy_per_inference(runners: Mapping[str, Any], feeds: Sequence[Feeds], *, seconds: float,
                         idle_w: float | None) -> dict[str, dict[str, Any]]:
    """NVML joules per inference per runner: two alternating passes of ``seconds`` each, summed."""
    from edgeopt_cuda.nvml import NvmlMeter

    from edgeopt.measure.energy import metered
    from edgeopt.measure.harness import measure

    totals: dict[str, list[float]] = {name: [0.0, 0.0, 0.0] for name in runners}  # joules, runs, seconds
    for _ in range(2):
        for name, runner in runners.items():
            meter = NvmlMeter()
            began = time.perf_counter()
            with metered([meter]) as reading:
                stats = measure(runner, feeds, warmup=0, budget_s=seconds)
            totals[name][0] += reading.joules
            totals[name][1] += stats.runs
            totals[name][2] += time.perf_counter() - began
    result = {}
    for name, (joules, runs, elapsed) in totals.items():
        entry = {"joules_per_inference": joules / runs, "runs": int(runs), "seconds": elapsed, "method": "nvml",
                 "mean_power_w": joules / elapsed}
        if idle_w is not None:
            entry["joules_above_idle_per_inference"] = max(0.0, joules - idle_w * elapsed) / runs
        result[name] = entry
    return result


def bench_model(case: Case, args: argparse.Namespace) -> dict[str, Any]:
    from edgeopt.measure.harness import measure_interleaved

    print(f"\n== {case.name} ({case.path.name})", flush=True)
    batches = [int(b) for b in args.batches.split(",")]
    built: dict[str, Any] = {}
    details: dict[str, Any] = {}
    failures: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="edgeopt-gpu-bench-") as tmp:
        builders: dict[str, Callable[[], tuple[Any, dict[str, Any]]]] = {
            REFERENCE: lambda: (OrtCudaPlain(case.path), {}),
            "edgeopt fp16": lambda: deploy(case, Path(tmp) / "fp16.edgeopt", device=args.device, precision="fp16",
                                           batches=batches, slo_ms=args.slo_ms, timing_s=args.deploy_budget),
            "edgeopt auto": lambda: deploy(case, Path(tmp) / "auto.edgeopt", device=args.device, precision="auto",
                                           batches=batches, slo_ms=args.slo_ms, timing_s=args.deploy_budget),
        }
        for name, build in builders.items():
            print(f"  building {name} ...", flush=True)
            try:
                built[name], details[name] = build()
            except Exception as exc:  # a failure is a result: recorded, the others still run
                failures[name] = f"{type(exc).__name__}: {exc} | {traceback.format_exc().splitlines()[-3:]}"
                print(f"    FAILED: {failures[name]}", flush=True)
        try:
            eval_feeds = case.feeds(case.evaluation)
            rows: dict[str, dict[str, Any]] = {name: {"details": details.get(name, {})} for name in built}
            if REFERENCE in built:
                ref = outputs_on(built[REFERENCE], eval_feeds)
                classes = len(built[REFERENCE].run(eval_feeds[0])[0].ravel())
                for name, runner in built.items():
                    rows[name]["quality"] = quality(ref, outputs_on(runner, eval_feeds), case.labels, classes)
            print(f"  timing {len(built)} runners interleaved ...", flush=True)
            stats = measure_interleaved(built, eval_feeds[:TIMING_FEEDS], warmup=50, runs_per_round=20,
                                        budget_s=args.budget * len(built), min_rounds=10, batch=1)
            base = stats[REFERENCE].p50 if REFERENCE in stats else None
            for name, s in stats.items():
                rows[name]["latency"] = {"p50_s": s.p50, "p90_s": s.p90, "p99_s": s.p99, "min_s": s.min,
                                         "runs": s.runs, "vs_plain_p50": s.p50 / base if base else None}
            print("  measuring energy (NVML) ...", flush=True)
            energy = energy_per_inference(built, eval_feeds[:TIMING_FEEDS], seconds=args.energy_seconds,
                                          idle_w=args.idle_w)
            for name, e in energy.items():
                rows[name]["energy"] = e
        finally:
            for runner in built.values():
                runner.close()
    return {"model": case.name, "path": shown_path(case.path), "data": case.data_note, "runtimes": rows,
            "failures": failures}


# --- report ---------------------------------------------------------------------------------------


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1e3:.3f}"


def render(report: Mapping[str, Any]) -> str:
    """The results section of docs/gpu.md (between the gpu-bench markers)."""
    m = report["machine"]
    gpu = m.get("gpu") or {}
    lines = [
        BEGIN,
        f"Measured {report['started']} with `{report['command']}` ({report['wall_s']:.0f} s).",
        "",
        f"GPU: {gpu.get('name', '?')}, driver {gpu.get('driver', '?')}, power limit {gpu.get('power_limit_w', '?')} W, "
        f"SM clock {gpu.get('sm_clock_mhz', '?')}/{gpu.get('max_sm_clock_mhz', '?')} MHz; idle board power "
        f"{m.get('idle_w') or 0:.1f} W; packages: "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items() if v),
        "",
    ]
    for result in report["results"]:
        lines += [f"### {result['model']}", "", f"Data: {result['data']}.", "",
                  "| runtime | chosen plan | p50 ms | p90 ms | vs plain | J/inference (nvml) | above idle | quality |",
                  "|---|---|---|---|---|---|---|---|"]
        for name, row in result["runtimes"].items():
            lat, energy, q = row.get("latency", {}), row.get("energy", {}), row.get("quality", {})
            shown = f"acc {q['accuracy']:.2f}%, " if "accuracy" in q else ""
            shown += f"cos {q.get('cosine', float('nan')):.5f}, max rel err {q.get('max_rel_error', float('nan')):.2e}"
            vs = lat.get("vs_plain_p50")
            above = energy.get("joules_above_idle_per_inference")
            lines.append(
                f"| {name} | {row['details'].get('chosen', '—')} | {_ms(lat.get('p50_s'))} | {_ms(lat.get('p90_s'))} "
                f"| {'—' if vs is None else f'{vs:.2f}x'} | {energy.get('joules_per_inference', float('nan')):.3e} "
                f"| {'—' if above is None else f'{above:.3e}'} | {shown} |"
            )
        for name, row in result["runtimes"].items():
            sweep = row["details"].get("profile_sweep")
            if sweep:
                per = ", ".join(f"b{b}: p90 {_ms(s.get('p90'))} ms" for b, s in sweep["latency"].items() if "p90" in s)
                lines.append(f"\n{name} batch sweep: {per}; chosen batch {sweep['batch']} (SLO {sweep['slo_ms']} ms); "
                             f"energy {sweep['energy']['joules_per_inference']:.3e} J/inference "
                             f"({sweep['energy']['method']}).")
        for name, error in result["failures"].items():
            lines.append(f"\n**{name} failed**: {error}")
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def write_section(doc: Path, section: str) -> None:
    """Replace the text between the markers in ``doc`` (they must be there)."""
    text = doc.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{doc} has no {BEGIN} ... {END} section to fill")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    doc.write_text(head + section + tail, encoding="utf-8")


def machine_info() -> dict[str, Any]:
    from edgeopt_cuda.nvml import gpu_facts

    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    return {"gpu": gpu_facts(), "platform": platform.platform(), "python": platform.python_version(),
            "packages": versions}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="nvidia-h100", help="GPU device profile for edgeopt deploy")
    parser.add_argument("--models", default="digits,resnet50", help="comma-separated subset")
    parser.add_argument("--batches", default="1,2,4,8", help="batch sweep for edgeopt profile")
    parser.add_argument("--slo-ms", type=float, default=5.0, help="latency SLO (p90) for the batch choice")
    parser.add_argument("--budget", type=float, default=4.0, help="interleaved timing seconds per runner")
    parser.add_argument("--deploy-budget", type=float, default=2.0, help="timing seconds inside each deploy")
    parser.add_argument("--energy-seconds", type=float, default=3.0, help="NVML block length per runner per pass")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where gpu_bench.json and gpu.md are")
    args = parser.parse_args(argv)

    from edgeopt.plugin.manager import get_plugin_manager

    target = get_plugin_manager().target("cuda", require_available=False)
    if not target.available:
        print(f"the cuda target is unavailable here: {target.reason}", file=sys.stderr)
        return 2
    from edgeopt_cuda.nvml import NvmlMeter

    args.idle_w = idle_watts(NvmlMeter)
    cases = {"digits": digits_case, "resnet50": resnet50_case}
    began = time.time()
    results = [bench_model(cases[key.strip()](), args) for key in args.models.split(",")]
    machine = machine_info()
    machine["idle_w"] = args.idle_w
    report = {"command": clone_command(sys.argv), "wall_s": time.time() - began,
              "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(began)), "machine": machine,
              "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_bench.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    write_section(args.out / "gpu.md", render(report))
    print(f"\nwrote {args.out / 'gpu_bench.json'} and the results section of {args.out / 'gpu.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
