"""Malformed models: thousands of mutated files through load_onnx + normalize and, when they import, synthetic
data and the reference run; each refused cleanly or taken through.

The fuzz driver (``tests/security/fuzzing.py``) runs in a subprocess, which is the "host" here: if a
case crashed it natively, this test sees the signal and the index of the case that caused it. Native
steps inside each case run in the driver's isolated worker, whose deaths are counted, not fatal.
``EDGEOPT_FUZZ_CASES`` / ``EDGEOPT_FUZZ_SEED`` change the stream (defaults: 2000 cases, seed 8).
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import edgeopt.graph.safety
from tests.security.fuzz_mutators import BYTES, STRUCTURAL
from tests.security.fuzz_mutators_names import ATTRIBUTES, NAMES, SHAPES
from tests.security.fuzz_seeds import all_seeds
from tests.security.fuzzing import run_fuzz
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
    assert report["ran"] + sum(report["refused"].values()) == CASES
    # imported models go on through synthetic data and the reference run; some are refused there
    assert report["imported"] == report["ran"] + sum(report["refused_after_import"].values())
    assert report["ran"] >= CASES * 0.04, report["ran"]
    assert report["names_attributes_shapes"] >= CASES * 0.2, report["names_attributes_shapes"]
    assert set(report["mutations"]) == set(STRUCTURAL) | set(BYTES)
    assert min(report["mutations"].values()) >= CASES // 200, report["mutations"]
    assert set(report["seeds"]) == {s.name for s in all_seeds()}
    # a worker death is a host crash avoided: counted, and the worker restarted for the next case
    assert report["worker_starts"] == 1 + report["worker_crashes"] + report["worker_timeouts"]
    print(
        f"\nfuzz: {report['cases']} cases in {report['seconds']} s, imported {report['imported']}, refused "
        f"{report['refused']}, worker crashes contained {report['worker_crashes']}, host crashes 0"
    )


def test_the_fuzzer_finds_non_utf8_names_when_the_check_is_off(monkeypatch, tmp_path):
    """Without ``graph_text.check_text`` a name that is not valid UTF-8 gets through the import and breaks
    later (ONNX Runtime's ``NodeArg.name``, the manifest's JSON): the widened fuzzer must find that, and
    with the check on, refuse every such case in one EdgeoptError."""
    assert set(NAMES) | set(ATTRIBUTES) | set(SHAPES) <= set(STRUCTURAL)
    monkeypatch.setattr(edgeopt.graph.safety, "check_text", lambda *a, **k: None)
    unchecked = run_fuzz(40, seed=5, only=("bad_utf8_name",))
    kinds = {u["type"] for u in unchecked.unexpected}
    assert kinds & {"UnicodeDecodeError", "TypeError"}, (kinds, unchecked.refused)
    monkeypatch.undo()
    checked = run_fuzz(40, seed=5, only=("bad_utf8_name",))
    assert checked.unexpected == [], checked.unexpected[:2]
    assert checked.refused.get("E100", 0) >= 30, checked.refused


def _fuzz_long():
    spec = importlib.util.spec_from_file_location("fuzz_long", ROOT / "bench" / "fuzz_long.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_long_run_kills_a_hung_case_and_names_it(tmp_path):
    progress = tmp_path / "progress"
    writer = f"import time, pathlib; pathlib.Path({str(progress)!r}).write_text('7'); time.sleep(60)"
    returncode, hung = _fuzz_long()._drive([sys.executable, "-c", writer], progress, 5, case_timeout=1.5)
    assert hung == 7 and returncode < 0
