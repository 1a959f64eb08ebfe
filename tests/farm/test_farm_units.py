"""Farm pieces that need no cluster: job specs, resources, archives, hash-checked install, registry measured_on,
the extra's one-line refusal, and the same jobs run locally."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from edgeopt.artifact.write import verify_artifact
from edgeopt.errors import ArtifactError, InputSpecError
from edgeopt.farm.jobs import Blob, BuildJob, DeployOptions, MeasureJob, blob_for, job_from_json, job_to_json
from edgeopt.farm.receive import install_result
from edgeopt.farm.resources import DeviceSpec, farm_devices, measure_resources, node_resources, parse_device
from edgeopt.farm.transfer import pack_dir, sha256_bytes, unpack_into

SHA = "0" * 64


def _build() -> BuildJob:
    return BuildJob(Blob("m.onnx", SHA, 10), "cpu", "host-abc", "m", DeployOptions(precision="fp32",
                                                                                   input_shapes={"x": [1, 32]}))


def test_jobs_round_trip_and_keys() -> None:
    job = _build()
    assert job_from_json(job_to_json(job)) == job
    measure = MeasureJob(job.key, "cpu", "dev-a", timing_s=0.5)
    assert job_from_json(job_to_json(measure)) == measure
    assert job.key != BuildJob(Blob("m.onnx", SHA, 10), "openvino", "host-abc", "m").key


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(kind="shell"),
    lambda d: d.update(version=99),
    lambda d: d.update(extra=1),
    lambda d: d["job"].update(target=3),
    lambda d: d["job"].update(command="rm -rf /"),
    lambda d: d["job"]["model"].update(name="../../etc/passwd"),
    lambda d: d["job"]["model"].update(sha256="xyz"),
    lambda d: d["job"].update(model=None),
    lambda d: d["job"]["options"].update(input_shapes={"x": ["1"]}),
    lambda d: d["job"]["options"].update(cache="yes"),
])
def test_anything_but_a_known_job_is_refused(mutate) -> None:
    data = json.loads(job_to_json(_build()))
    mutate(data)
    with pytest.raises(InputSpecError):
        job_from_json(json.dumps(data))


def test_only_onnx_models_and_npz_data_travel(tmp_path: Path) -> None:
    for name in ("m.pt", "m.pkl", "m.keras"):
        (tmp_path / name).write_bytes(b"x")
        with pytest.raises(InputSpecError, match="the farm takes .onnx"):
            blob_for(tmp_path / name, kind="model")
    (tmp_path / "m.onnx").write_bytes(b"abc")
    blob = blob_for(tmp_path / "m.onnx", kind="model")
    assert blob.sha256 == sha256_bytes(b"abc") and blob.size == 3


def test_node_resources_and_devices_read_back() -> None:
    res = node_resources([DeviceSpec("dev-a"), parse_device("pi=raspberry-pi-5")], targets=["cpu"]).resources
    assert res["edgeopt:cpu@dev-a"] == 1 and res["edgeopt:device:dev-a"] == 1 and res["edgeopt:cpu@pi"] == 1
    assert any(k.startswith("edgeopt:build:cpu@host-") for k in res)
    assert "edgeopt:profile:pi=raspberry-pi-5" in res
    nodes = [{"NodeID": "n1", "Alive": True, "Resources": {**res, "CPU": 4.0}},
             {"NodeID": "n2", "Alive": False, "Resources": {"edgeopt:device:old": 1, "edgeopt:profile:old=host-x": 1,
                                                           "edgeopt:cpu@old": 1}}]
    devs = farm_devices(nodes)
    assert devs["dev-a"].targets == ("cpu",) and devs["dev-a"].cpus == 4.0 and not devs["dev-a"].gone
    assert devs["pi"].profile_key == "raspberry-pi-5" and not devs["pi"].is_host
    assert devs["old"].gone and devs["old"].nodes == ()
    assert measure_resources("cpu", "dev-a") == {"edgeopt:cpu@dev-a": 1, "edgeopt:device:dev-a": 1}


def _tar(entries: list[tarfile.TarInfo]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info in entries:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return buf.getvalue()


@pytest.mark.parametrize("make", [
    lambda: tarfile.TarInfo("../escape"),
    lambda: tarfile.TarInfo("/abs"),
    lambda: (lambda i: (setattr(i, "type", tarfile.SYMTYPE), setattr(i, "linkname", "/etc/passwd"), i)[-1])(
        tarfile.TarInfo("link")),
])
def test_unsafe_archives_are_refused(tmp_path: Path, make) -> None:
    info = make()
    if info.isfile():
        info.size = 1
    with pytest.raises(ArtifactError):
        unpack_into(_tar([info]), tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def local_result(farm_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """The farm's jobs run here without Ray (``LocalExecutor``): one model, target cpu."""
    from edgeopt.farm.executors import LocalExecutor
    from edgeopt.farm.scheduler import run_matrix

    out = tmp_path_factory.mktemp("local-farm")
    registry = out / "registry.db"
    with pytest.MonkeyPatch.context() as mp:  # module scope: set before the per-test registry fixture runs
        mp.setenv("EDGEOPT_REGISTRY", str(registry))
        result = run_matrix([farm_models["mlp_a"]], executor=LocalExecutor("here"), targets=["cpu"],
                            options=DeployOptions(precision="fp32", timing_s=0.1), out_dir=out / "results")
    return result, registry


def test_local_executor_runs_the_same_jobs(local_result) -> None:
    from edgeopt.registry import open_registry

    result, registry = local_result
    cell = result.cell("mlp_a", "cpu", "here")
    assert cell.status == "winner" and cell.p50_s and cell.measured_on["device"] == "here"
    manifest = verify_artifact(Path(cell.artifact))
    assert manifest["measured_on"]["node"] == "local" and manifest["profile"]["measured_on"].startswith("farm device")
    record = open_registry(registry).get("mlp_a")
    assert record.measured_on["device"] == "here" and record.artifact_path == cell.artifact


def test_install_checks_hashes_and_leaves_nothing_on_failure(local_result, tmp_path: Path) -> None:
    result, _ = local_result
    src = Path(result.cell("mlp_a", "cpu", "here").artifact)
    data = pack_dir(src)
    good = {"artifact": data, "sha256": sha256_bytes(data)}
    with pytest.raises(ArtifactError, match="sha256"):
        install_result({**good, "sha256": SHA}, tmp_path / "a.edgeopt", device="here", target="cpu")
    with pytest.raises(ArtifactError, match="says it is"):
        install_result(good, tmp_path / "b.edgeopt", device="elsewhere", target="cpu")
    # one byte of the model changed inside an archive whose own hash is consistent: the manifest catches it
    bad = bytearray(data)
    at = bad.find(b"ONNX") if b"ONNX" in bad else len(bad) // 2
    bad[at] ^= 1
    with pytest.raises(ArtifactError):
        install_result({"artifact": bytes(bad), "sha256": sha256_bytes(bytes(bad))}, tmp_path / "c.edgeopt",
                       device="here", target="cpu")
    assert list(tmp_path.iterdir()) == []
    path, manifest = install_result(good, tmp_path / "d.edgeopt", device="here", target="cpu")
    assert verify_artifact(path) == manifest and [p.name for p in tmp_path.iterdir()] == ["d.edgeopt"]


def test_farm_without_ray_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    (tmp_path / "m.onnx").write_bytes(b"x")
    code = ("import sys; sys.modules['ray'] = None; sys.argv = ['edgeopt', 'compare', 'm.onnx', '--farm', "
            "'127.0.0.1:1']; from edgeopt.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "EDGEOPT_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error[E900]: --farm needs ray") and "edgeopt[farm]" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_schema_1_registry_gains_measured_on(tmp_path: Path, local_result) -> None:
    """A registry written before the farm (schema 1, no measured_on column) opens, migrates, and records it."""
    import sqlite3

    from edgeopt.registry import open_registry
    from edgeopt.registry import store as registry_store

    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(registry_store._SCHEMA.replace("    measured_on TEXT NOT NULL DEFAULT '{}',\n", ""))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    result, registry = local_result
    record = open_registry(registry).get("mlp_a")
    migrated = open_registry(path)
    stored = migrated.add(record)
    assert migrated.get("mlp_a", stored.version).measured_on["device"] == "here"
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == registry_store.SCHEMA_VERSION
