"""Deploy each model of the real-model corpus (``bench/realzoo_models.py``) with the edgeopt CLI, as a user
would, and record what happened: outcome (a verified artifact, or the one ``error[E...]`` line), deploy wall
time, peak resident memory of the whole process tree, the chosen target and plan, the speedup over plain
ONNX Runtime fp32 on the same evaluation data, and quality (the manifest's metrics).

Run from the repository root (the first run downloads ~230 MB of wheels into the cache, see realzoo_models)::

    .venv/bin/python bench/realzoo.py [--models a,b | --smallest N] [--target auto] [--precision auto] \\
        [--json out.json] [--max-rss-gib 8] [--timeout-s 1800]

Each deploy runs ``edgeopt deploy MODEL --target T --precision P --calib C.npz --eval E.npz --json --out DIR
--no-cache`` in a subprocess (with ``--input-shape`` for the dimensions a model leaves dynamic). Its process
tree's RSS (the sum over the process and all its descendants; shared pages count once per process) is polled
every 50 ms. A deploy whose tree passes ``--max-rss-gib`` or ``--timeout-s`` is killed by the bench and the row
says so; a deploy killed by anything else (exit -9 / 137: the kernel's OOM killer) says that. Speed is timed in
a separate process: ``edgeopt.load(artifact)`` (which checks every file's hash) against a default ONNX Runtime
CPU session on the original file, batch 1, interleaved after warm-up (``edgeopt.measure.harness.measure_interleaved``).
The bench itself never raises on a model's failure: every failure is a row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil

if __package__ in (None, ""):  # run as a script: the bench modules are siblings of this file
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import realzoo_models as zoo  # type: ignore[no-redef]
    from zoo_sweep import broken_promises  # type: ignore[no-redef]
else:
    from bench import realzoo_models as zoo
    from bench.zoo_sweep import broken_promises

ERROR_LINE = re.compile(r"^error\[E\d+\]")
GIB = 1024**3


def edgeopt_command() -> list[str]:
    exe = Path(sys.executable).with_name("edgeopt")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "edgeopt"]


def _tree(root: psutil.Process) -> list[psutil.Process]:
    try:
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _sizes(procs: list[psutil.Process]) -> list[tuple[int, psutil.Process]]:
    """``(RSS bytes, process)`` of each process still readable (one read per process per poll)."""
    sizes = []
    for p in procs:
        with contextlib.suppress(psutil.Error):
            sizes.append((p.memory_info().rss, p))
    return sizes


def _parts(sizes: list[tuple[int, psutil.Process]]) -> list[str]:
    """Each process of the tree at a peak: ``"<GiB> <command>"``, largest first (what the peak is made of)."""
    return [f"{rss / GIB:.2f} {_name(p)[:100]}" for rss, p in sorted(sizes, key=lambda s: s[0], reverse=True)]


def _kill(procs: list[psutil.Process]) -> None:
    """SIGKILL each: the root first, so it cannot see a child die and exit as if nothing happened."""
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.kill()


def run_watched(cmd: list[str], *, env: dict, cwd: Path, logs: Path, max_rss: int | None, timeout_s: float,
                interval_s: float = 0.05) -> dict:
    """Run ``cmd``, polling its process tree's summed RSS every ``interval_s``; kill the tree past ``max_rss``
    bytes or ``timeout_s``. Returns rc, seconds, peak_rss (bytes), killed_by_bench (reason or None), stdout,
    stderr and ``left_running`` (descendants still alive after the command exited; killed then)."""
    logs.mkdir(parents=True, exist_ok=True)
    out_path, err_path = logs / "stdout.txt", logs / "stderr.txt"
    began = time.perf_counter()
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env, cwd=cwd)
        root = psutil.Process(proc.pid)
        peak, reason, seen, parts = 0, None, {}, []
        while proc.poll() is None:
            procs = _tree(root)
            seen.update({p.pid: p for p in procs[1:]})
            sizes = _sizes(procs)
            rss = sum(size for size, _ in sizes)
            if rss > peak:
                peak, parts = rss, _parts(sizes)
            if reason is None and max_rss and rss > max_rss:
                reason = f"killed by the bench: process tree RSS {rss / GIB:.1f} GiB > cap {max_rss / GIB:.1f} GiB"
            elif reason is None and time.perf_counter() - began > timeout_s:
                reason = f"killed by the bench: still running after {timeout_s:.0f} s"
            if reason:
                _kill(procs)
                proc.wait()  # reap the root here: psutil.wait_procs would take its exit status from Popen
                psutil.wait_procs(procs[1:], timeout=10)
                break
            time.sleep(interval_s)
        rc = proc.wait()
    seconds = time.perf_counter() - began
    _, alive = psutil.wait_procs([p for p in seen.values() if _alive(p)], timeout=2)  # grace for exiting workers
    left = [p for p in alive if _alive(p)]
    names = [f"{p.pid}:{_name(p)}" for p in left]
    _kill(left)
    return {"rc": rc, "seconds": round(seconds, 1), "peak_rss": peak, "killed_by_bench": reason,
            "stdout": out_path.read_text(errors="replace"), "stderr": err_path.read_text(errors="replace"),
            "left_running": names, "peak_parts": parts}  # fmt: skip


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _name(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())[:160] or p.name()
    except psutil.Error:
        return "?"


def deploy(model: zoo.Model, files: dict[str, Path], calib: Path, eval_: Path, *, target: str, precision: str,
           workdir: Path, max_rss: int | None, timeout_s: float, extra: tuple[str, ...] = ()) -> dict:
    """One ``edgeopt deploy`` of ``model`` in a fresh ``workdir``; the row for it (see the module docstring)."""
    outdir = workdir / "out"
    outdir.mkdir(parents=True, exist_ok=True)
    artifact = outdir / f"{model.name}.edgeopt"
    shapes = [a for s in model.shapes for a in ("--input-shape", s)]
    cmd = [*edgeopt_command(), "deploy", str(files["model"]), "--target", target, "--precision", precision,
           "--calib", str(calib), "--eval", str(eval_), "--json", "--out", str(artifact), "--no-cache",
           *shapes, *extra]  # fmt: skip
    env = {**os.environ, "EDGEOPT_REGISTRY": str(workdir / "registry"), "COLUMNS": "200"}
    res = run_watched(cmd, env=env, cwd=workdir, logs=workdir / "logs", max_rss=max_rss, timeout_s=timeout_s)
    row = {"model": model.name, "kind": model.kind, "size_mb": round(model.size_bytes / 1e6, 2),
           "command": " ".join(cmd), "rc": res["rc"], "seconds": res["seconds"],
           "peak_rss_gib": round(res["peak_rss"] / GIB, 2), "peak_parts": res["peak_parts"],
           "left_running": res["left_running"]}  # fmt: skip
    text = res["stderr"] + res["stdout"]
    errors = [line for line in text.splitlines() if ERROR_LINE.match(line)]
    if res["killed_by_bench"]:
        row.update(outcome="killed", error=res["killed_by_bench"])
    elif res["rc"] in (-9, 137):
        row.update(outcome="killed", error=f"exit {res['rc']}: killed by SIGKILL (the kernel's OOM killer?)")
    elif res["rc"] != 0:
        row.update(outcome="refused", error=errors[0][:400] if errors else _last_line(text))
    else:
        try:
            summary = json.loads(res["stdout"])
            row.update(outcome="deployed", target=summary["target"], precision=summary["precision"],
                       plan=summary["plan"], metrics=summary["metrics"], artifact=str(artifact))  # fmt: skip
        except (ValueError, KeyError, TypeError) as exc:
            row.update(outcome="deployed", error=f"exit 0 but stdout is not the deploy JSON: {exc}")
    if not res["killed_by_bench"]:
        broken = broken_promises(res["rc"], text, artifact)
        litter = sorted(p.name for p in outdir.iterdir() if p != artifact)
        broken += [f"left {litter} beside the artifact"] if litter else []
        broken += [f"left processes running: {res['left_running']}"] if res["left_running"] else []
        row["broken"] = broken
    return row


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return ("no error[E...] line; last output: " + lines[-1][:300]) if lines else "no output"


def samples(path: Path, stacked: tuple[str, ...], n: int) -> list[dict[str, np.ndarray]]:
    """The first ``n`` samples of an evaluation file as batch-1 feeds (``stacked`` inputs lose their new axis)."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "labels"}
    count = min(n, len(next(iter(arrays.values()))))
    return [{k: (np.asarray(v[i]) if k in stacked else v[i : i + 1]) for k, v in arrays.items()} for i in range(count)]


def time_child(artifact: str, model: str, eval_: str, stacked: str, n: int, budget_s: float) -> dict:
    """In its own process: load the artifact (hash-checked) and a plain ORT session, time them interleaved."""
    import onnxruntime as ort

    import edgeopt
    from edgeopt.measure.harness import measure_interleaved

    feeds = samples(Path(eval_), tuple(s for s in stacked.split(",") if s), n)
    predictor = edgeopt.load(artifact)
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])

    class Plain:
        def run(self, feed: dict) -> list:
            return session.run(None, feed)

    class Artifact:
        def run(self, feed: dict) -> list:
            return list(predictor(feed).values())

    for feed in feeds[:3]:
        session.run(None, feed)
    began = time.perf_counter()
    for feed in feeds[:5]:
        session.run(None, feed)
    per_run = (time.perf_counter() - began) / min(5, len(feeds))
    k = int(np.clip(0.05 / max(per_run, 1e-6), 1, 50))
    stats = measure_interleaved({"ort_fp32": Plain(), "edgeopt": Artifact()}, feeds, warmup=10, runs_per_round=k,
                                budget_s=budget_s, min_rounds=5, settle_runs=2)  # fmt: skip
    plain, ours = stats["ort_fp32"], stats["edgeopt"]
    return {"verified": True, "ort_fp32_p50_ms": plain.p50 * 1e3, "edgeopt_p50_ms": ours.p50 * 1e3,
            "speedup": plain.p50 / ours.p50, "runs": ours.runs,
            "min_cosine": min_cosine(session, predictor, feeds)}  # fmt: skip


def min_cosine(session, predictor, feeds: list[dict]) -> float | None:  # noqa: ANN001 - ORT session, Predictor
    """The bench's own check, independent of the manifest: the lowest cosine between the artifact's and plain
    ORT fp32's float outputs (paired by position, skipping pairs of different sizes) over ``feeds``; ``None``
    when no output pair qualifies."""
    worst = None
    for feed in feeds:
        for ref, got in zip(session.run(None, feed), predictor(feed).values(), strict=True):
            if np.asarray(ref).dtype.kind != "f":
                continue
            a, b = np.asarray(ref, np.float64).ravel(), np.asarray(got, np.float64).ravel()
            if a.size != b.size:
                continue
            cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))
            worst = cos if worst is None else min(worst, cos)
    return worst


def time_artifact(row: dict, model: zoo.Model, files: dict[str, Path], eval_: Path, *, n: int, budget_s: float) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "_time", row["artifact"], str(files["model"]), str(eval_),
           ",".join(model.stacked), str(n), str(budget_s)]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired:
        return {"timing_error": "timing did not finish in 600 s"}
    if proc.returncode != 0:
        return {"timing_error": _last_line(proc.stderr or proc.stdout)}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def quality(metrics: dict | None) -> str:
    """``metric reference -> candidate (drop d)`` plus the fidelity cosine when there is one."""
    if not metrics:
        return ""
    ref, cand, drop = metrics.get("reference"), metrics.get("candidate"), metrics.get("drop")
    text = f"{metrics.get('metric')} {_g(ref)}→{_g(cand)}" + (f" (drop {_g(drop)})" if drop is not None else "")
    cosine = (metrics.get("fidelity") or {}).get("cosine")
    if cosine is not None and "cosine" not in str(metrics.get("metric")):
        text += f", cos {cosine:.4f}"
    return text + (" [synthetic data]" if metrics.get("synthetic_data") else "")


def _g(v: object) -> str:
    return f"{v:.4g}" if isinstance(v, int | float) else str(v)


def host() -> dict:
    from edgeopt.measure import host as hostinfo
    return {"cpu": hostinfo.cpu_name(), "isa": list(hostinfo.cpu_isa()), "int8_family": hostinfo.int8_family(
        hostinfo.cpu_isa()), "physical_cores": hostinfo.physical_cores(), "logical_cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / GIB, 1), "python": sys.version.split()[0]}  # fmt: skip


def markdown(rows: list[dict]) -> str:
    head = ("| model | kind | MB | outcome | target / precision / plan | deploy s | peak RSS GiB | speedup vs ORT fp32 "
            "| quality | error / notes |")  # fmt: skip
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        plan = f"{r.get('target', '')} / {r.get('precision', '')} / {r.get('plan', '')}" if "target" in r else ""
        speed = ""
        if "speedup" in r:
            speed = f"{r['speedup']:.2f}× ({r['ort_fp32_p50_ms']:.2f}→{r['edgeopt_p50_ms']:.2f} ms)"
        notes = "; ".join(x for x in (r.get("error", ""), r.get("timing_error", ""), *r.get("broken", [])) if x)
        judged = quality(r.get("metrics"))
        if r.get("min_cosine") is not None:
            judged += f"; bench min cos {r['min_cosine']:.4f}"
        cells = [r["model"], r["kind"], r["size_mb"], r["outcome"], plan, r.get("seconds", ""),
                 r.get("peak_rss_gib", ""), speed, judged, notes.replace("|", "/")]  # fmt: skip
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def run(models: list[zoo.Model], *, target: str, precision: str, max_rss: int | None, timeout_s: float,
        timing_n: int, timing_s: float, extra: tuple[str, ...] = (), keep: Path | None = None) -> list[dict]:
    """Deploy and time each model; one row each, whatever happens."""
    rows = []
    for model in models:
        row = {"model": model.name, "kind": model.kind, "size_mb": round(model.size_bytes / 1e6, 2)}
        try:
            files = zoo.fetch(model)
        except zoo.FetchError as exc:
            rows.append({**row, "outcome": "not fetched", "error": str(exc)})
            continue
        try:
            calib, eval_ = zoo.datasets(model, files)
        except Exception as exc:  # noqa: BLE001 - a data generator's failure is this model's row, not the bench's end
            rows.append({**row, "outcome": "no data", "error": f"{type(exc).__name__}: {exc}"})
            continue
        with tempfile.TemporaryDirectory(prefix=f"realzoo-{model.name}-") as tmp:
            workdir = (keep / model.name) if keep else Path(tmp)
            row = deploy(model, files, calib, eval_, target=target, precision=precision, workdir=workdir,
                         max_rss=max_rss, timeout_s=timeout_s, extra=extra)  # fmt: skip
            if row["outcome"] == "deployed" and "artifact" in row:
                row.update(time_artifact(row, model, files, eval_, n=timing_n, budget_s=timing_s))
        rows.append(row)
        print(json.dumps({k: v for k, v in row.items() if k != "command"}), file=sys.stderr, flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_time"]:
        artifact, model, eval_, stacked, n, budget = argv[1:7]
        print(json.dumps(time_child(artifact, model, eval_, stacked, int(n), float(budget))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help=f"comma-separated, from {[m.name for m in zoo.MODELS]}")
    parser.add_argument("--smallest", type=int, help="only the N smallest models (by model file size)")
    parser.add_argument("--target", default="auto")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--max-rss-gib", type=float, default=8.0,
                        help="kill a deploy whose process tree passes this (0: no cap); protects a shared machine")
    parser.add_argument("--timeout-s", type=float, default=1800.0, help="kill a deploy running longer")
    parser.add_argument("--timing-samples", type=int, default=20)
    parser.add_argument("--timing-s", type=float, default=4.0, help="interleaved timing budget per model")
    parser.add_argument("--extra", default="", help="more deploy options, space-separated (e.g. '--timing-s 0.5')")
    parser.add_argument("--keep", type=Path, help="keep each model's work folder (artifact, logs) under this folder")
    parser.add_argument("--json", type=Path, help="also write host, load and rows as JSON here")
    args = parser.parse_args(argv)
    try:
        models = zoo.by_name(args.models, smallest=args.smallest)
    except KeyError as exc:
        parser.error(str(exc))
    load_before = os.getloadavg()
    began = time.time()
    rows = run(models, target=args.target, precision=args.precision,
               max_rss=int(args.max_rss_gib * GIB) if args.max_rss_gib else None, timeout_s=args.timeout_s,
               timing_n=args.timing_samples, timing_s=args.timing_s, extra=tuple(args.extra.split()),
               keep=args.keep)  # fmt: skip
    info = {"host": host(), "load_before": load_before, "load_after": os.getloadavg(),
            "wall_s": round(time.time() - began), "target": args.target, "precision": args.precision,
            "max_rss_gib": args.max_rss_gib, "rows": rows}  # fmt: skip
    print(markdown(rows))
    h = info["host"]
    print(f"\nhost: {h['cpu']}, {h['logical_cpus']} CPUs, {h['memory_gib']} GiB, int8 family {h['int8_family']}; "
          f"load {load_before[0]:.1f} before, {info['load_after'][0]:.1f} after; {info['wall_s']} s in all")
    if args.json:
        args.json.write_text(json.dumps(info, indent=1, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
