"""The farm on a real Ray cluster on this machine: a head (no CPUs) and two worker nodes whose custom resources
stand for two devices (``dev-a``, ``dev-b``), each offering targets cpu and openvino.

Bounded: every test runs under a wall-clock guard, the cluster is small (1 CPU per worker, 100 MB object
store per node, no dashboard) and is stopped in ``finally`` by killing exactly the process groups it started.
"""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

from edgeopt.artifact.write import verify_artifact
from edgeopt.farm.jobs import DeployOptions
from tests.farm.conftest import deadline

ray = pytest.importorskip("ray", reason="the farm needs edgeopt[farm] (Ray)")

TARGETS = ("cpu", "openvino")
DEVICES = ("dev-a", "dev-b")
OPTIONS = DeployOptions(precision="fp32", timing_s=0.2)
FAST_HEALTH = {"RAY_health_check_period_ms": "500", "RAY_health_check_failure_threshold": "4",
               "RAY_health_check_timeout_ms": "500"}


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory):
    """(connected Farm, LocalCluster, workers by device, folder for this module's files)."""
    import edgeopt.farm
    from edgeopt.farm.local_cluster import LocalCluster
    from edgeopt.farm.resources import DeviceSpec, node_resources

    root = tmp_path_factory.mktemp("farm")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGEOPT_CACHE_DIR", str(root / "cache"))  # the nodes and the local runs share one search cache
        resources = [node_resources([DeviceSpec(d)], targets=TARGETS).resources for d in DEVICES]
        cluster = LocalCluster(resources, cpus_per_worker=1, env=FAST_HEALTH)
        connection = None
        try:
            with deadline(120, "starting the local farm"):
                cluster.start()
                connection = edgeopt.farm.connect(cluster.address, retries=2)
                cluster.wait_nodes(ray, 1 + len(DEVICES))
            yield connection, cluster, dict(zip(DEVICES, cluster.processes[1:], strict=True)), root
        finally:
            try:
                if connection is not None:
                    connection.close()  # ray.shutdown
            finally:
                cluster.close()  # kills exactly the process groups it started, even if shutdown raised


def _records(registry: Path) -> list:
    from edgeopt.registry import open_registry

    reg = open_registry(registry)
    return [r for name in reg.names() for r in reg.list(name)]


@pytest.mark.parametrize("names", [
    pytest.param(("mlp_a",), id="1-model"),
    pytest.param(("mlp_a", "mlp_b"), id="2-models", marks=pytest.mark.slow),
])
def test_matrix_matches_local_runs(farm, farm_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch,
                                   names: tuple[str, ...]) -> None:
    """Models x 2 targets x 2 devices on the farm: the same winners and registry entries as local deploys (CI runs
    one model; the slow variant is the full 2 x 2 x 2)."""
    import edgeopt

    connection, _, _, root = farm
    root = root / "-".join(names)
    models = [farm_models[n] for n in names]
    cells = len(models) * len(TARGETS) * len(DEVICES)
    farm_db, local_db = root / "farm-registry.db", root / "local-registry.db"
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(root / "cache"))
    monkeypatch.setenv("EDGEOPT_REGISTRY", str(farm_db))
    seen: list[tuple[int, int]] = []
    with deadline(240, "the farm matrix"):
        result = connection.compare(models, targets=TARGETS, devices=DEVICES, options=OPTIONS,
                                    out_dir=root / "results", timeout_s=200,
                                    progress=lambda done, total, what: seen.append((done, total)))
    assert seen[-1] == (cells, cells) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert [c.status for c in result.cells].count("winner") == cells // 2, [(c.status, c.reason) for c in result.cells]
    assert all(c.done for c in result.cells), [(c.target, c.device, c.reason) for c in result.cells]

    monkeypatch.setenv("EDGEOPT_REGISTRY", str(local_db))
    local: dict[tuple[str, str], dict] = {}
    with deadline(240, "the local runs"):
        for model in models:
            for target in TARGETS:
                d = edgeopt.deploy(str(model), target=target, precision=OPTIONS.precision, timing_s=OPTIONS.timing_s,
                                   out=root / "local" / f"{model.stem}-{target}")
                local[(model.stem, target)] = d.manifest
    for model in models:
        best = min(TARGETS, key=lambda t: local[(model.stem, t)]["profile"]["latency"]["1"]["p50"])
        for device in DEVICES:
            assert result.winners()[(model.stem, device)] == best, (model.stem, device, result.to_dict()["cells"])

    node_ids = {n["NodeID"] for n in ray.nodes() if (n.get("Resources") or {}).get("CPU")}
    farm_records, local_records = _records(farm_db), _records(local_db)
    assert len(farm_records) == cells and len(local_records) == cells // 2
    keys = ("precision", "target", "graph_fingerprint", "source_fingerprint", "source_format", "name")
    by_local = {(r.name, r.target): r for r in local_records}
    for rec in farm_records:
        ref = by_local[(rec.name, rec.target)]
        assert {k: getattr(rec, k) for k in keys} == {k: getattr(ref, k) for k in keys}
        assert rec.plan["label"] == ref.plan["label"] and rec.metrics["metric"] == ref.metrics["metric"]
        assert rec.source_path == str(farm_models[rec.name].resolve())  # the client's file, not the worker's copy
        assert rec.measured_on["device"] in DEVICES and rec.measured_on["node"] in node_ids
        assert not ref.measured_on
        verify_artifact(Path(rec.artifact_path))
    assert {(r.name, r.target, r.measured_on["device"]) for r in farm_records} == {
        (c.model, c.target, c.device) for c in result.cells}


@pytest.mark.slow
def test_cli_compare_on_the_farm_and_status(farm, farm_models: dict[str, Path], tmp_path: Path) -> None:
    """``edgeopt compare MODEL --farm ADDRESS --devices ... --json`` and ``edgeopt farm status ADDRESS --json``."""
    import json
    import os
    import subprocess
    import sys

    _, cluster, _, root = farm
    env = {**os.environ, "EDGEOPT_CACHE_DIR": str(root / "cache"), "EDGEOPT_REGISTRY": str(tmp_path / "reg.db")}
    cmd = [sys.executable, "-m", "edgeopt", "compare", str(farm_models["mlp_a"]), "--farm", cluster.address,
           "--devices", "dev-a", "--targets", "cpu", "--precision", "fp32", "--timing-s", "0.2", "--json",
           "--html", str(tmp_path / "m.html")]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    data = json.loads(done.stdout)
    assert data["winners"] == [{"model": "mlp_a", "device": "dev-a", "target": "cpu"}]
    assert "mlp_a" in (tmp_path / "m.html").read_text() and (tmp_path / "edgeopt-farm/mlp_a/cpu@dev-a.edgeopt").is_dir()
    st = subprocess.run([sys.executable, "-m", "edgeopt", "farm", "status", cluster.address, "--json"], cwd=tmp_path,
                        env=env, capture_output=True, text=True, timeout=120)
    assert st.returncode == 0, st.stderr[-2000:]
    status = json.loads(st.stdout)
    assert set(status["devices"]) == set(DEVICES) and not any(d["gone"] for d in status["devices"].values())
    assert sum(1 for n in status["nodes"] if n["alive"]) == 3 and all(n["facts"].get("isa") for n in status["nodes"])


def _build_process(timeout_s: float) -> psutil.Process:
    """The Ray worker process running a build task (Ray titles it after the task's name)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        for proc in psutil.process_iter(["cmdline"]):
            cmd = " ".join(proc.info.get("cmdline") or [])
            if cmd.startswith("ray::edgeopt-build"):
                return proc
        time.sleep(0.05)
    raise AssertionError("no build task started")


def test_worker_killed_mid_job_is_retried_or_reported_and_nothing_is_torn(
    farm, farm_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The node running the build is killed mid-build: the build is retried on the other node (same resource);
    the killed node's device ends as ``gone`` with its reason, shows as gone in status; every file written is a
    complete verified artifact and the registry holds exactly the cells that finished."""
    import threading

    connection, cluster, workers, root = farm
    monkeypatch.setenv("EDGEOPT_REGISTRY", str(root / "fault-registry.db"))
    out = root / "fault-results"
    box: dict = {}

    def run() -> None:
        try:
            box["result"] = connection.compare([farm_models["mlp_c"]], targets=["cpu"], devices=DEVICES,
                                               options=OPTIONS, out_dir=out, timeout_s=120)
        except BaseException as exc:  # reported by the assertion below
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    with deadline(180, "the fault test"):
        thread.start()
        victim = _build_process(60)
        ancestors = {p.pid for p in victim.parents()}  # worker process <- raylet <- `ray start --block`
        killed = next(d for d, proc in workers.items() if proc.pid in ancestors)
        cluster.kill_node(workers[killed])
        while thread.is_alive():
            thread.join(0.2)
        assert "error" not in box, box.get("error")
        result = box["result"]
        status = connection.status()
    survivor = next(d for d in DEVICES if d != killed)
    lost, kept = result.cell("mlp_c", "cpu", killed), result.cell("mlp_c", "cpu", survivor)
    assert lost.status in ("gone", "failed") and lost.reason and not lost.artifact, lost
    assert kept.status == "winner", kept
    manifest = verify_artifact(Path(kept.artifact))
    assert manifest["measured_on"]["device"] == survivor
    killed_node = next(n for n in status.nodes if not n.alive)
    assert manifest["measured_on"]["built_on"]["node"] != killed_node.node_id  # the build ran again elsewhere
    assert status.devices[killed].gone and not status.devices[survivor].gone
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.parent.name == "mlp_c")
    assert files == [f"mlp_c/cpu@{survivor}.edgeopt"], files  # no temp dir, no partial artifact
    records = _records(root / "fault-registry.db")
    assert [(r.name, r.measured_on["device"]) for r in records] == [("mlp_c", survivor)]
