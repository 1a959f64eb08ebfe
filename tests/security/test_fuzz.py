"""Malformed models: thousands of mutated files through load_onnx + normalize, each refused cleanly or imported.

The fuzz driver (``tests/security/fuzzing.py``) runs in a subprocess, which is the "host" here: if a
case crashed it natively, this test sees the signal and the index of the case that caused it. Native
steps inside each case run in the driver's isolated worker, whose deaths are counted, not fatal.
``EDGEOPT_FUZZ_CASES`` / ``EDGEOPT_FUZZ_SEED`` change the stream (defaults: 2000 cases, seed 8).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.security.fuzz_mutators import BYTES, STRUCTURAL
from tests.security.fuzz_seeds import all_seeds
from tests.security.helpers import ROOT

CASES = int(os.environ.get("EDGEOPT_FUZZ_CASES", "2000"))
SEED = int(os.environ.get("EDGEOPT_FUZZ_SEED", "8"))


def test_mutated_models_are_imported_or_refused_with_an_edgeopt_error(tmp_path):
    report_path, progress = tmp_path / "report.json", tmp_path / "progress"
    result = subprocess.run(
        [sys.executable, "-m", "tests.security.fuzzing", "--cases", str(CASES), "--seed", str(SEED),
         "--json", str(report_path), "--progress", str(progress)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if result.returncode < 0:
        case = progress.read_text().strip() if progress.exists() else "?"
        raise AssertionError(
            f"host crash: case {case} (seed {SEED}) killed the importing process with signal {-result.returncode}; "
            f"replay it with: python -m tests.security.fuzzing --seed {SEED} --first {case} --cases 1"
        )
    report = json.loads(report_path.read_text())
    assert report["unexpected"] == [], json.dumps(report["unexpected"][:3], indent=1)
    assert report["escapes"] == [], report["escapes"]
    assert result.returncode == 0, result.stderr[-2000:]
    assert report["cases"] == CASES
    # the stream really exercises the importer: some cases get through every step, the rest are refused
    # for the reasons a hostile file gives (corrupt / unsafe / too big / non-standard ops)
    assert report["imported"] >= CASES * 0.05, report["imported"]
    assert {"E100", "E110", "E120", "E130"} <= set(report["refused"]), report["refused"]
    assert report["imported"] + sum(report["refused"].values()) == CASES
    assert set(report["mutations"]) == set(STRUCTURAL) | set(BYTES)
    assert min(report["mutations"].values()) >= CASES // 200, report["mutations"]
    assert set(report["seeds"]) == {s.name for s in all_seeds()}
    # a worker death is a host crash avoided: counted, and the worker restarted for the next case
    assert report["worker_starts"] == 1 + report["worker_crashes"] + report["worker_timeouts"]
    print(
        f"\nfuzz: {report['cases']} cases in {report['seconds']} s, imported {report['imported']}, refused "
        f"{report['refused']}, worker crashes contained {report['worker_crashes']}, host crashes 0"
    )
