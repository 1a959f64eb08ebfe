"""Deploy every model the onnx wheel ships (converted PyTorch modules and the light zoo) with the CLI, and
check each outcome against edgeopt's contract: exit 0 only with a verified artifact; otherwise one
``error[E...]`` line with a hint, a non-zero exit, no traceback and no artifact left behind.

Run from the repository root::

    python bench/zoo_sweep.py --target cpu --precision int8 [--sets pytorch-converted,light] [--json out.json]

Exit status 0 when every model kept the contract (a refusal is fine; a broken promise is not).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import onnx

DATA = Path(onnx.__file__).parent / "backend" / "test" / "data"
ERROR_LINE = re.compile(r"^error\[E\d+\]: ")
EDGEOPT = [sys.executable, "-m", "edgeopt"]


def models(sets: list[str]) -> list[tuple[str, Path]]:
    found = []
    for name in sets:
        folder = DATA / name
        paths = sorted(folder.glob("*/model.onnx")) if name != "light" else sorted(folder.glob("light_*.onnx"))
        found += [(p.parent.name if p.name == "model.onnx" else p.stem, p) for p in paths]
    return found


def broken_promises(rc: int, stderr: str, artifact: Path) -> list[str]:
    """What about one deploy breaks the contract in the module docstring (empty when it kept it)."""
    errors = [line for line in stderr.splitlines() if ERROR_LINE.match(line)]
    problems = []
    if "Traceback (most recent call last)" in stderr:
        problems.append("a traceback reached the user")
    if rc == 0:
        if not (artifact / "manifest.json").is_file():
            problems.append("exit 0 without an artifact")
        if errors:
            problems.append("exit 0 with an error line")
    else:
        if artifact.exists():
            problems.append(f"exit {rc} left an artifact behind")
        if len(errors) != 1:
            problems.append(f"exit {rc} with {len(errors)} error lines")
    return problems


def sweep(target: str, precision: str, sets: list[str], timing_s: float) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="edgeopt-zoo-") as tmp:
        env = {**os.environ, "EDGEOPT_REGISTRY": str(Path(tmp) / "registry"), "COLUMNS": "200"}
        for name, path in models(sets):
            artifact = Path(tmp) / f"{name}.edgeopt"
            start = time.perf_counter()
            proc = subprocess.run(
                [*EDGEOPT, "deploy", str(path), "--target", target, "--precision", precision, "--out", str(artifact),
                 "--timing-s", str(timing_s), "--no-cache"],
                capture_output=True, text=True, env=env, timeout=1200,
            )  # fmt: skip
            stderr = proc.stderr + proc.stdout
            error = next((line for line in stderr.splitlines() if ERROR_LINE.match(line)), "")
            rows.append({
                "model": name, "rc": proc.returncode, "seconds": round(time.perf_counter() - start, 1),
                "outcome": "deployed" if proc.returncode == 0 else "refused", "error": error[:300],
                "broken": broken_promises(proc.returncode, stderr, artifact),
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cpu")
    parser.add_argument("--precision", default="int8")
    parser.add_argument("--sets", default="pytorch-converted,light")
    parser.add_argument("--timing-s", type=float, default=0.2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = sweep(args.target, args.precision, args.sets.split(","), args.timing_s)
    codes = Counter(re.sub(r":.*", "", r["error"]) for r in rows if r["outcome"] == "refused")
    broken = [r for r in rows if r["broken"]]
    print(f"{len(rows)} models: {sum(r['outcome'] == 'deployed' for r in rows)} deployed, "
          f"{len(rows) - sum(r['outcome'] == 'deployed' for r in rows)} refused {dict(codes)}, "
          f"{len(broken)} broke the contract")  # fmt: skip
    for row in broken:
        print(f"  {row['model']}: {'; '.join(row['broken'])}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
