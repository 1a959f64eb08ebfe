"""Fuzz driver: mutate the seed models, import each one through ``load_onnx`` + ``normalize``, and take every
model that imports on through what a deploy does next (``take_further``).

    python -m tests.security.fuzzing --cases 1000 --seed 0 [--json report.json] [--progress FILE] [--only M,..]

The native-crash-prone steps of every import (checker, ONNX Runtime session) run in one shared
``IsolatedWorker``; a case that kills it is counted as a worker crash (a host crash avoided) and the
next case gets a fresh worker. An imported model then goes through the steps of ``deploy.prepare`` and
the manifest that read its names and shapes: inspection, the manifest's input records, synthetic data,
the fp32 reference run on ONNX Runtime (in this process, as in a deploy) and the fidelity metrics of the
reference against itself. Each case must either get through or raise an EdgeoptError; anything else
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

from edgeopt.artifact.manifest import input_dicts
from edgeopt.data.datasets import synthetic_dataset
from edgeopt.errors import EdgeoptError
from edgeopt.evaluate.judge import check_outputs, evaluate, run_outputs
from edgeopt.evaluate.reference import ReferenceRunner, batch_size_of
from edgeopt.graph.inspect import inspect_model
from edgeopt.graph.model_io import load_model, load_onnx
from edgeopt.graph.normalize import normalize
from edgeopt.process.isolation import IsolatedWorker
from edgeopt.types import Graph, ImportOptions
from tests.security.fuzz_mutators import STRUCTURAL, mutate
from tests.security.fuzz_mutators_names import ATTRIBUTES, NAMES, SHAPES
from tests.security.fuzz_seeds import Seed, all_seeds

OPTIONS = ImportOptions(max_tensor_bytes=64 * 1024**2)
"""A lower size limit than the default keeps memory bombs cheap to refuse; everything else is the default."""
CANARY = b"EDGEOPT-CANARY-OUTSIDE!" * 8
WORKER_TIMEOUT_S = 30.0
DEEP = frozenset(NAMES) | frozenset(ATTRIBUTES) | frozenset(SHAPES)
SAMPLES = 4
"""Synthetic samples per imported model for the reference run (a few batches, so outputs are concatenated)."""


@dataclass
class FuzzReport:
    seed: int
    cases: int = 0
    imported: int = 0
    names_attributes_shapes: int = 0
    """Cases with at least one mutation of names, attributes or shapes (``fuzz_mutators_names``)."""
    ran: int = 0
    """Imported cases that also got through synthetic data, the reference run and the metrics."""
    refused: dict[str, int] = field(default_factory=dict)
    """EdgeoptError code -> count, wherever the case was refused."""
    refused_after_import: dict[str, int] = field(default_factory=dict)
    """The part of ``refused`` raised after the import (by ``take_further``)."""
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


def take_further(graph: Graph) -> None:
    """What a deploy does with an imported graph before any target sees it (``deploy.prepare``, the manifest):
    raises EdgeoptError where a deploy would refuse."""
    inspect_model(load_model(graph))
    json.dumps(input_dicts(graph))
    data = synthetic_dataset(graph, samples=SAMPLES, seed=0)
    reference = ReferenceRunner(graph.path, threads=1)
    try:
        outputs = run_outputs(reference, data, batch=batch_size_of(graph.inputs))
    finally:
        reference.close()
    check_outputs(outputs, outputs)
    evaluate(outputs, outputs, labels=None, synthetic=True)


def run_case(
    index: int, *, seed: int, seeds: list[Seed], root: Path, worker: IsolatedWorker, report: FuzzReport,
    only: tuple[str, ...] = (),
):
    """Mutate, write, import and take further case ``index``; record its outcome in ``report``."""
    rng = random.Random(f"{seed}:{index}")
    base = rng.choice(seeds)
    data, applied = mutate(rng, base.model, only=only)
    case = _prepare(root, base, data)
    crashes, timeouts = worker.crashes, worker.timeouts
    report.cases += 1
    report.seeds[base.name] = report.seeds.get(base.name, 0) + 1
    for name in applied:
        report.mutations[name] = report.mutations.get(name, 0) + 1
    if set(applied) & DEEP:
        report.names_attributes_shapes += 1
    graph = None
    try:
        model = load_onnx(case / "model.onnx", options=OPTIONS)
        graph = normalize(
            model,
            source_fingerprint="fuzz",
            source_format="onnx",
            options=OPTIONS,
            workdir=case / "w",
            base_dir=case,
            worker=worker,
        )
        report.imported += 1
        if _escaped(case):
            report.escapes.append({"case": index, "seed_model": base.name, "mutations": applied})
        take_further(graph)
    except EdgeoptError as exc:
        report.refused[exc.code] = report.refused.get(exc.code, 0) + 1
        if graph is not None:
            report.refused_after_import[exc.code] = report.refused_after_import.get(exc.code, 0) + 1
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
        report.ran += 1
    report.worker_crashes += worker.crashes - crashes
    report.worker_timeouts += worker.timeouts - timeouts


def run_fuzz(
    cases: int, *, seed: int = 0, first: int = 0, progress: Path | None = None, only: tuple[str, ...] = ()
) -> FuzzReport:
    """Run cases ``first .. first+cases-1`` of the stream for ``seed``; return the report. ``only``: use just
    these structural mutators (see ``fuzz_mutators.mutate``)."""
    unknown = sorted(set(only) - set(STRUCTURAL))
    if unknown:
        raise ValueError(f"unknown mutators {unknown}; known: {sorted(STRUCTURAL)}")
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
            run_case(index, seed=seed, seeds=seeds, root=root, worker=w, report=report, only=only)
        report.worker_starts = w.starts
    report.seconds = round(time.perf_counter() - start, 2)
    return report


def _limit_memory(text: str) -> None:
    import resource

    from edgeopt.settings import parse_size

    if text.strip() in ("", "0"):
        return
    limit = parse_size(text, name="--max-memory")
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--first", type=int, default=0, help="index of the first case (to replay one case)")
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--progress", type=Path, help="file holding the index of the case being run")
    parser.add_argument("--only", default="", help="comma-separated structural mutators to use (default: all)")
    parser.add_argument("--max-memory", default="6GiB",
                        help="address-space limit of this process (RLIMIT_AS), so a model that allocates without "
                        "bound fails here instead of taking the machine's memory; 0: no limit")
    args = parser.parse_args(argv)
    _limit_memory(args.max_memory)
    only = tuple(m.strip() for m in args.only.split(",") if m.strip())
    report = run_fuzz(args.cases, seed=args.seed, first=args.first, progress=args.progress, only=only)
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
