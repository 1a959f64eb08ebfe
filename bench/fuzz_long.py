"""Long fuzz run of the ONNX importer (>= 10,000 mutated models), figures for docs/security.md.

Run from the repository root::

    /work/venv/bin/python bench/fuzz_long.py --cases 10000 --seeds 101,102 [--json out.json]

Each seed's stream runs in its own driver process (``python -m tests.security.fuzzing``), seeds in
parallel up to ``--jobs``. The driver is the host: if a case kills it, that counts as a host crash,
the case is recorded, and the stream resumes after it. Cases that kill the driver's isolated worker
are counted as worker crashes (host crashes avoided). Exit status 0 when there were no host crashes,
no unexpected exception types and no external-data escapes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_stream(seed: int, cases: int, workdir: Path) -> dict:
    """Cases 0..cases-1 of ``seed``; a driver killed by a case is restarted after that case."""
    total: dict = {"seed": seed, "cases": 0, "imported": 0, "refused": {}, "worker_crashes": 0, "worker_timeouts": 0}
    total.update(unexpected=[], escapes=[], host_crashes=[], crash_examples=[])
    first = 0
    while first < cases:
        report_path, progress = workdir / f"r{seed}-{first}.json", workdir / f"p{seed}"
        proc = subprocess.run(
            [sys.executable, "-m", "tests.security.fuzzing", "--seed", str(seed), "--first", str(first),
             "--cases", str(cases - first), "--json", str(report_path), "--progress", str(progress)],
            cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        if proc.returncode < 0 or not report_path.exists():
            crashed = int(progress.read_text())
            total["host_crashes"].append({"case": crashed, "signal": -proc.returncode})
            total["cases"] += crashed - first + 1
            first = crashed + 1
            continue
        report = json.loads(report_path.read_text())
        for key in ("cases", "imported", "worker_crashes", "worker_timeouts"):
            total[key] += report[key]
        for code, n in report["refused"].items():
            total["refused"][code] = total["refused"].get(code, 0) + n
        for key in ("unexpected", "escapes", "crash_examples"):
            total[key] += report[key]
        first = cases
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10000, help="cases per seed")
    parser.add_argument("--seeds", default="101,102", help="comma-separated seeds, one stream each")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeopt-fuzz-long-") as tmp, ThreadPoolExecutor(args.jobs) as pool:
        streams = list(pool.map(lambda s: run_stream(s, args.cases, Path(tmp)), seeds))
    summary = {
        "seeds": seeds,
        "cases": sum(s["cases"] for s in streams),
        "imported": sum(s["imported"] for s in streams),
        "refused": {},
        "host_crashes": sum(len(s["host_crashes"]) for s in streams),
        "worker_crashes_contained": sum(s["worker_crashes"] for s in streams),
        "worker_timeouts": sum(s["worker_timeouts"] for s in streams),
        "unexpected": sum(len(s["unexpected"]) for s in streams),
        "escapes": sum(len(s["escapes"]) for s in streams),
        "wall_seconds": round(time.perf_counter() - start, 1),
        "python": sys.version.split()[0],
    }
    for s in streams:
        for code, n in s["refused"].items():
            summary["refused"][code] = summary["refused"].get(code, 0) + n
    try:
        import onnx
        import onnxruntime

        summary["onnx"], summary["onnxruntime"] = onnx.__version__, onnxruntime.__version__
    except ImportError:
        pass
    print(json.dumps(summary, indent=2, sort_keys=True))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "streams": streams}, indent=2, sort_keys=True) + "\n")
    for s in streams:
        for item in s["unexpected"][:5] + s["host_crashes"][:5]:
            print(f"seed {s['seed']}: {item}", file=sys.stderr)
    return 1 if summary["host_crashes"] or summary["unexpected"] or summary["escapes"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
