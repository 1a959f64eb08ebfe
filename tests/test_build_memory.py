"""Memory-bounded builds: a candidate build past --max-memory (or one that crashes) is a failed candidate,
the search goes on, and the deploy still ends in a verified artifact."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgeopt.api import deploy
from edgeopt.artifact.write import verify_artifact
from edgeopt.errors import InputSpecError
from edgeopt.plugin.manager import get_plugin_manager
from edgeopt.process.isolation import IsolatedWorker, WorkerMemoryExceeded
from edgeopt.process.memory_limit import HEADROOM_BYTES, default_memory_limit, memory_limit_bytes
from edgeopt.search.build_worker import BuildWorker
from tests.plugin_dists import activate, make_plugin_dist

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits" / "digits_cnn.onnx"
CALIB, EVAL = DIGITS.with_name("calib.npz"), DIGITS.with_name("eval.npz")
M = "tests.memory_targets:"

MEMHOG = """
import os, shutil, time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from edgeopt import hookimpl
from edgeopt.types import Compiled, Plan

EDGEOPT_HOOK_API = 1
LEAKED = []


@hookimpl
def edgeopt_register_targets(register):
    register.add_target("memhog", description="ORT; two of its int8 builds misbehave", precisions=("fp32", "int8"))


@hookimpl
def edgeopt_plan(graph, target, device, precision):
    fp32 = [Plan("memhog", "fp32", label="fp32")]
    int8 = [Plan("memhog", "int8", label=label) for label in ("int8 hog", "int8 burst", "int8 crash")]
    return {"auto": fp32 + int8, "fp32": fp32, "int8": int8}.get(precision, [])


@hookimpl
def edgeopt_compile(graph, plan, target, device, calibration, workdir):
    if plan.label == "int8 hog":  # 64 MiB more every 20 ms, up to 2 GiB: the worker's limit stops it first
        hoard = []
        for _ in range(32):
            hoard.append(np.ones(64 << 20, dtype=np.uint8))
            time.sleep(0.02)
        raise RuntimeError("the memory limit never stopped this build")
    if plan.label == "int8 burst":  # 3 GiB at once, faster than any poll: the worker's RLIMIT_DATA refuses it
        np.ones(3 << 30, dtype=np.uint8)
        raise RuntimeError("the data limit never stopped this build")
    if plan.label == "int8 crash":
        os.abort()
    if plan.label == "leak":  # 300 MiB left behind in the worker
        LEAKED.append(np.ones(300 << 20, dtype=np.uint8))
    if plan.label == "big":  # 700 MiB: fits a fresh worker under 1 GiB, not one holding the leak
        np.ones(700 << 20, dtype=np.uint8)
        time.sleep(0.3)
    shutil.copyfile(graph.path, Path(workdir) / "model.onnx")
    return Compiled(Path(workdir), "model.onnx", ("model.onnx",), plan, runtime="onnxruntime")


class Runner:
    def __init__(self, path):
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run(self, feeds):
        return self.session.run(None, dict(feeds))

    def close(self):
        self.session = None


@hookimpl
def edgeopt_runner(compiled, target, device, settings):
    return Runner(compiled.model_path)
"""


@pytest.fixture
def memhog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    make_plugin_dist(root, "memhog", MEMHOG)
    activate(root, monkeypatch)
    monkeypatch.setenv("EDGEOPT_PLUGINS", "memhog")
    monkeypatch.delenv("EDGEOPT_ISOLATION", raising=False)
    return root


def _check_candidates(candidates: list[dict]) -> None:
    by = {c["label"]: c for c in candidates}
    assert by["fp32"]["status"] == "accepted" and by["fp32"]["build_memory_bytes"] > 0
    hog = by["int8 hog"]
    assert hog["status"] == "failed", hog
    assert "building int8 hog (it calibrates on" in hog["reason"]
    assert "needed more than 400 MiB (--max-memory, stopped at" in hog["reason"], hog["reason"]
    assert "try a larger --max-memory or fewer --calib samples" in hog["reason"]
    assert 400 << 20 < hog["build_memory_bytes"] < 2 << 30
    burst = by["int8 burst"]
    assert burst["status"] == "failed" and "needed more than 400 MiB (--max-memory, an allocation failed)" in \
        burst["reason"], burst
    crash = by["int8 crash"]
    assert crash["status"] == "failed" and "signal 6: SIGABRT" in crash["reason"], crash


def test_a_build_past_max_memory_is_a_failed_candidate_and_the_deploy_finishes(memhog: Path, tmp_path: Path) -> None:
    deployment = deploy(DIGITS, target="memhog", precision="auto", calib=CALIB, eval=EVAL, max_memory="400MiB",
                        out=tmp_path / "hog.edgeopt", runs=5, timing_s=0.1, cache=False,
                        plugin_manager=get_plugin_manager())
    manifest = verify_artifact(deployment.path)
    assert manifest["plan"]["label"] == "fp32"
    _check_candidates(manifest["candidates"])


def test_the_cli_bounds_builds_with_max_memory(memhog: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("EDGEOPT_ISOLATION",)}
    env["PYTHONPATH"] = os.pathsep.join([str(memhog), str(REPO), env.get("PYTHONPATH", "")])
    out = tmp_path / "cli.edgeopt"
    cli = [sys.executable, "-m", "edgeopt", "deploy", str(DIGITS), "--target", "memhog", "--calib", str(CALIB),
           "--eval", str(EVAL), "--out", str(out), "--timing-s", "0.1", "--runs", "5", "--no-cache"]
    done = subprocess.run([*cli, "--max-memory", "400MiB", "--json"], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    _check_candidates(json.loads(done.stdout)["candidates"])
    verify_artifact(out)
    bad = subprocess.run([*cli, "--max-memory", "lots"], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, check=False)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    errors = [line for line in bad.stderr.splitlines() if line.startswith("error[")]
    assert len(errors) == 1 and errors[0].startswith("error[E200]") and "--max-memory" in errors[0], bad.stderr
    assert not (tmp_path / "cli-bad.edgeopt").exists()


def test_the_worker_is_stopped_past_its_limit_and_replaced() -> None:
    with IsolatedWorker(memory_limit=300 << 20) as worker:
        first = worker.pid
        with pytest.raises(WorkerMemoryExceeded, match=r"needed more than 300 MiB of memory \(stopped at") as info:
            worker.call(M + "grow", 32, 40, what="growing")
        assert info.value.peak > info.value.limit == 300 << 20
        assert worker.memory_kills == 1 and worker.pid is None
        assert worker.call(M + "small") == "ok" and worker.pid != first


def test_an_allocation_burst_meets_the_data_limit_backstop() -> None:
    """One allocation past 2x the limit + 1 GiB fails in the child at once; it is reported as the memory limit."""
    with IsolatedWorker(memory_limit=64 << 20) as worker:
        with pytest.raises(WorkerMemoryExceeded, match=r"needed more than 64 MiB of memory \(an allocation failed"):
            worker.call(M + "burst", 1.5, what="bursting")
        assert worker.call(M + "small") == "ok"


def test_memory_limits_read_sizes_and_default_to_a_share_of_available_memory() -> None:
    assert memory_limit_bytes("2GiB") == 2 << 30
    assert memory_limit_bytes("1500MB") == 1_500_000_000
    assert memory_limit_bytes("512M") == 512 << 20
    assert memory_limit_bytes(3 << 30) == 3 << 30
    for bad in ("lots", "-1G", "0", 12, True, 1.5):
        with pytest.raises(InputSpecError, match="--max-memory"):
            memory_limit_bytes(bad)  # type: ignore[arg-type]
    import psutil

    available = psutil.virtual_memory().available
    default = memory_limit_bytes(None)
    assert default == default_memory_limit()
    assert default <= max(0.6 * available, 512 << 20) + (64 << 20)
    assert default <= max(available - HEADROOM_BYTES, 512 << 20) + (64 << 20)


def test_isolation_off_builds_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEOPT_ISOLATION", "0")
    pm = get_plugin_manager()
    target = pm.target("cpu")
    assert BuildWorker(pm, target, memory_limit=1 << 30).bounded is False
    monkeypatch.delenv("EDGEOPT_ISOLATION")
    assert BuildWorker(pm, target, memory_limit=1 << 30).bounded is True


def test_compare_bounds_builds_too(memhog: Path) -> None:
    from edgeopt.api import compare

    comparison = compare(DIGITS, targets=["memhog"], calib=CALIB, eval=EVAL, max_memory="400MiB", timing_s=0.1,
                         cache=False, plugin_manager=get_plugin_manager())
    result = comparison.result("memhog")
    assert result.label == "fp32" and result.status == "winner"
    _check_candidates(list(result.candidates))


def test_a_build_past_the_limit_in_a_used_worker_is_retried_in_a_fresh_one(memhog: Path, tmp_path: Path) -> None:
    from edgeopt.measure.devices import host_profile
    from edgeopt.types import Dataset, ImportOptions, Plan

    pm = get_plugin_manager()
    graph = pm.import_model(DIGITS, ImportOptions(), tmp_path / "graph")
    builder = BuildWorker(pm, pm.target("memhog"), memory_limit=1 << 30)
    data = Dataset({})
    try:
        for label in ("leak", "big"):
            (tmp_path / label).mkdir()
            compiled = builder.compile(graph, Plan("memhog", "fp32", label=label), host_profile(), data,
                                       tmp_path / label)
            assert compiled.files == ("model.onnx",)
        assert builder._worker is not None and builder._worker.starts == 2 and builder._worker.memory_kills == 1
        assert builder.peaks["big"] < 1 << 30
    finally:
        builder.close()
