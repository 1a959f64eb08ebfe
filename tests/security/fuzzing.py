"""Fuzz driver: mutate the seed models and import each one through ``load_onnx`` + ``normalize``.

    python -m tests.security.fuzzing --cases 1000 --seed 0 [--json report.json] [--progress FILE]

The native-crash-prone steps of every case (checker, ONNX Runtime session) run in one shared
``IsolatedWorker``; a case that kills it is counted as a worker crash (a host crash avoided) and the
next case gets a fresh worker. Each case must either import or raise an EdgeoptError; anything else
is listed under ``unexpected``. A canary file sits just outside every case folder (reachable through
``..``, a symlink and a hard link): a model that imports with the canary's bytes in it is an escape.
Before each case the driver writes the case index to ``--progress``, so if this process itself dies
the caller knows which case killed it. Exit status 0 when nothing unexpected happened.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from edgeopt.errors import EdgeoptError
from edgeopt.graph import load_onnx, normalize
from edgeopt.isolation import IsolatedWorker
from edgeopt.types import ImportOptions
from tests.security.fuzz_mutators import mutate
from tests.security.fuzz_seeds import Seed, all_seeds

OPTIONS = ImportOptions(max_tensor_bytes=64 * 1024**2)
"""A lower size limit than the default keeps memory bombs cheap to refuse; everything else is the default."""
CANARY = b"EDGEOPT-CANARY-OUTSIDE!" * 8
WORKER_TIMEOUT_S = 30.0


@dataclass
class FuzzReport:
    seed: int
    cases: int = 0
    imported: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    """EdgeoptError code -> count."""
    worker_crashes: int = 0
    """Cases whose native step killed the isolated worker: host crashes avoided."""
    worker_timeouts: int = 0
    worker_starts: int = 0
    unexpected: list[dict] = field(default_factory=list)
    escapes: list[dict] = field(default_factory=list)
    mutations: dict[str, int] = field(default_factory=dict)
    seeds: dict[str, int] = field(default_factory=dict)
    crash_examples: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def host_crashes(self) -> int:
        return 0  # this process is the host: a report exists only if it survived every case


def _prepare(root: Path, seed: Seed, data: bytes) -> Path:
    case = root / "case"
    shutil.rmtree(case, ignore_errors=True)
    case.mkdir()
    (case / "model.onnx").write_bytes(data)
    for name, content in seed.files.items():
        (case / name).write_bytes(content)
    os.symlink("../outside.bin", case / "link.bin")
    os.link(root / "outside.bin", case / "hard.bin")
    return case


def _escaped(case: Path) -> bool:
    marker = CANARY[:24]
    return any(marker in p.read_bytes() for p in (case / "w").rglob("*") if p.is_file() and not p.is_symlink())


def run_case(index: int, *, seed: int, seeds: list[Seed], root: Path, worker: IsolatedWorker, report: FuzzReport):
    """Mutate, write and import case ``index``; record its outcome in ``report``."""
    rng = random.Random(f"{seed}:{index}")
    base = rng.choice(seeds)
    data, applied = mutate(rng, base.model)
    case = _prepare(root, base, data)
    crashes, timeouts = worker.crashes, worker.timeouts
    report.cases += 1
    report.seeds[base.name] = report.seeds.get(base.name, 0) + 1
    for name in applied:
        report.mutations[name] = report.mutations.get(name, 0) + 1
    try:
        model = load_onnx(case / "model.onnx", options=OPTIONS)
        normalize(
            model,
            source_fingerprint="fuzz",
            source_format="onnx",
            options=OPTIONS,
            workdir=case / "w",
            base_dir=case,
            worker=worker,
        )
    except EdgeoptError as exc:
        report.refused[exc.code] = report.refused.get(exc.code, 0) + 1
        if worker.crashes > crashes and len(report.crash_examples) < 20:
            report.crash_examples.append(f"case {index} ({base.name}: {', '.join(applied)}): {exc.message}")
    except Exception as exc:  # the finding this fuzzer exists for
        report.unexpected.append(
            {
                "case": index,
                "seed_model": base.name,
                "mutations": applied,
                "type": type(exc).__name__,
                "message": str(exc)[:500],
                "traceback": traceback.format_exc()[-3000:],
            }
        )
    else:
        report.imported += 1
        if _escaped(case):
            report.escapes.append({"case": index, "seed_model": base.name, "mutations": applied})
    report.worker_crashes += worker.crashes - crashes
    report.worker_timeouts += worker.timeouts - timeouts


def run_fuzz(cases: int, *, seed: int = 0, first: int = 0, progress: Path | None = None) -> FuzzReport:
    """Run cases ``first .. first+cases-1`` of the stream for ``seed``; return the report."""
    report = FuzzReport(seed=seed)
    seeds = all_seeds()
    start = time.perf_counter()
    worker = IsolatedWorker(preload=("onnx", "onnxruntime"))
    with tempfile.TemporaryDirectory(prefix="edgeopt-fuzz-") as tmp, worker as w:
        root = Path(tmp)
        (root / "outside.bin").write_bytes(CANARY * 64)
        for index in range(first, first + cases):
            if progress is not None:
                progress.write_text(f"{index}\n")
            run_case(index, seed=seed, seeds=seeds, root=root, worker=w, report=report)
        report.worker_starts = w.starts
    report.seconds = round(time.perf_counter() - start, 2)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0, help="index of the first case (to replay one case)")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--progress", type=Path, help="file holding the index of the case being run")
    args = parser.parse_args(argv)
    report = run_fuzz(args.cases, seed=args.seed, first=args.first, progress=args.progress)
    body = asdict(report)
    if args.json:
        args.json.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    summary = {k: v for k, v in body.items() if k not in ("unexpected", "crash_examples")}
    summary["unexpected"] = len(report.unexpected)
    print(json.dumps(summary, sort_keys=True))
    for item in report.unexpected[:10]:
        print(f"UNEXPECTED case {item['case']} {item['seed_model']} {item['mutations']}: {item['type']}: "
              f"{item['message']}", file=sys.stderr)
    return 1 if report.unexpected or report.escapes else 0


if __name__ == "__main__":
    raise SystemExit(main())
