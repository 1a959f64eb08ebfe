"""Long fuzz run of the ONNX importer and what a deploy does next (>= 10,000 mutated models), figures for
docs/security.md.

Run from the repository root::

    .venv/bin/python bench/fuzz_long.py --cases 10000 --seeds 101,102 [--jobs 1] [--json out.json]

Each seed's stream runs in its own driver process (``python -m tests.security.fuzzing``), seeds in
parallel up to ``--jobs``. The driver is the host: if a case kills it, that counts as a host crash,
the case is recorded, and the stream resumes after it; if one case runs longer than ``--case-timeout``
seconds (the driver writes each case's index to a progress file before starting it), the driver is
killed, the case counts as a hang, and the stream resumes after it. Cases that kill the driver's
isolated worker are counted as worker crashes (host crashes avoided). Exit status 0 when there were no
host crashes, no hangs, no unexpected exception types and no external-data escapes.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COUNTS = ("cases", "imported", "ran", "names_attributes_shapes", "worker_crashes", "worker_timeouts")
TALLIES = ("refused", "refused_after_import", "mutations")


def _current(progress: Path, default: int) -> int:
    try:
        return int(progress.read_text())
    except (OSError, ValueError):
        return default


def _drive(cmd: list[str], progress: Path, first: int, case_timeout: float) -> tuple[int, int | None]:
    """Run one driver; return its exit status and, when one case outlived ``case_timeout``, that case."""
    progress.unlink(missing_ok=True)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    case, since = first, time.monotonic()  # start-up counts against the first case
    while proc.poll() is None:
        time.sleep(0.5)
        now = _current(progress, case)
        if now != case:
            case, since = now, time.monotonic()
        elif time.monotonic() - since > case_timeout:
            os.killpg(proc.pid, signal.SIGKILL)  # the driver and its isolated worker
            proc.wait()
            return proc.returncode, case
    return proc.returncode, None


def run_stream(seed: int, cases: int, workdir: Path, *, case_timeout: float = 300.0) -> dict:
    """Cases 0..cases-1 of ``seed``; a driver killed by a case (or hung on one) is restarted after that case."""
    total: dict = {"seed": seed, **dict.fromkeys(COUNTS, 0), **{k: {} for k in TALLIES}}
    total.update(unexpected=[], escapes=[], host_crashes=[], hangs=[], crash_examples=[])
    first = 0
    while first < cases:
        report_path, progress = workdir / f"r{seed}-{first}.json", workdir / f"p{seed}"
        cmd = [sys.executable, "-m", "tests.security.fuzzing", "--seed", str(seed), "--first", str(first),
               "--cases", str(cases - first), "--json", str(report_path), "--progress", str(progress)]
        returncode, hung = _drive(cmd, progress, first, case_timeout)
        if hung is not None or returncode < 0 or not report_path.exists():
            case = hung if hung is not None else _current(progress, first)
            if hung is not None:
                total["hangs"].append({"case": case, "seconds": case_timeout})
            else:
                total["host_crashes"].append({"case": case, "signal": -returncode})
            total["cases"] += case - first + 1
            first = case + 1
            continue
        report = json.loads(report_path.read_text())
        for key in COUNTS:
            total[key] += report[key]
        for key in TALLIES:
            for name, n in report[key].items():
                total[key][name] = total[key].get(name, 0) + n
        for key in ("unexpected", "escapes", "crash_examples"):
            total[key] += report[key]
        first = cases
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10000, help="cases per seed")
    parser.add_argument("--seeds", default="101,102", help="comma-separated seeds, one stream each")
    parser.add_argument("--jobs", type=int, default=1, help="streams run at once (one core each)")
    parser.add_argument("--case-timeout", type=float, default=300.0, help="seconds one case may take: a hang")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="edgeopt-fuzz-long-") as tmp, ThreadPoolExecutor(args.jobs) as pool:
        streams = list(pool.map(lambda s: run_stream(s, args.cases, Path(tmp), case_timeout=args.case_timeout),
                                seeds))
    wall = time.perf_counter() - start
    summary = {
        "seeds": seeds,
        "jobs": args.jobs,
        **{key: sum(s[key] for s in streams) for key in ("cases", "imported", "ran", "names_attributes_shapes")},
        "refused": {},
        "refused_after_import": {},
        "host_crashes": sum(len(s["host_crashes"]) for s in streams),
        "hangs": sum(len(s["hangs"]) for s in streams),
        "worker_crashes_contained": sum(s["worker_crashes"] for s in streams),
        "worker_timeouts": sum(s["worker_timeouts"] for s in streams),
        "unexpected": sum(len(s["unexpected"]) for s in streams),
        "escapes": sum(len(s["escapes"]) for s in streams),
        "wall_seconds": round(wall, 1),
        "python": sys.version.split()[0],
    }
    summary["cases_per_second"] = round(summary["cases"] / wall, 1) if wall else None
    for s in streams:
        for key in ("refused", "refused_after_import"):
            for code, n in s[key].items():
                summary[key][code] = summary[key].get(code, 0) + n
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
        for item in s["unexpected"][:5] + s["host_crashes"][:5] + s["hangs"][:5]:
            print(f"seed {s['seed']}: {item}", file=sys.stderr)
    failed = summary["host_crashes"] or summary["hangs"] or summary["unexpected"] or summary["escapes"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
