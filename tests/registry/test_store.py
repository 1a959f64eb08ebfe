"""The registry store: versions, refs, stages, rollback, and many processes registering at once."""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path

import pytest

from edgeopt.registry import Registry, RegistryError, open_registry, parse_ref, registry_path
from edgeopt.registry.records import DeploymentRecord


def record(name: str = "m", *, precision: str = "fp32", p50: float = 1e-3) -> DeploymentRecord:
    return DeploymentRecord(
        name=name, version=0, created="", source_path="/x/m.onnx", source_format="onnx", source_fingerprint="ab",
        graph_fingerprint="cd", target="cpu", device="host", precision=precision, plan={"precision": precision},
        metrics={"metric": "accuracy", "candidate": 97.5, "drop": 0.5, "units": "points"},
        profile={"latency": {"1": {"p50": p50, "p90": 2 * p50, "method": "measured:wallclock"}}, "size_bytes": 10},
        artifact_path="/x/m.edgeopt", manifest_sha256="ef", calibration={"features": {"x[c0].mean": {"n": 1}}},
    )


def test_versions_increment_per_name_and_round_trip(tmp_path):
    reg = Registry(tmp_path / "r.db")
    assert [reg.add(record("a")).version for _ in range(3)] == [1, 2, 3]
    assert reg.add(record("b")).version == 1
    got = reg.get("a", 2)
    assert (got.name, got.version, got.metrics["candidate"], got.profile["latency"]["1"]["p50"]) == ("a", 2, 97.5, 1e-3)
    assert got.calibration == {"features": {"x[c0].mean": {"n": 1}}}
    assert got.created and reg.get("a").version == 3
    assert [r.ref for r in reg.list()] == ["a:1", "a:2", "a:3", "b:1"]
    assert reg.names() == ["a", "b"]


def test_refs_parse_and_resolve(tmp_path):
    assert parse_ref("digits") == ("digits", None, None)
    assert parse_ref("digits:3") == ("digits", 3, None)
    assert parse_ref("digits:latest") == ("digits", None, None)
    assert parse_ref("digits@staging") == ("digits", None, "staging")
    for bad in ("digits:0", "digits:x", "digits@prod", "di/gits", "", "a:1@production"):
        with pytest.raises(RegistryError):
            parse_ref(bad)
    reg = Registry(tmp_path / "r.db")
    reg.add(record("digits"))
    with pytest.raises(RegistryError, match="not registered"):
        reg.resolve("digits:7")
    with pytest.raises(RegistryError, match="no deployment named"):
        reg.resolve("other")
    with pytest.raises(RegistryError, match="no production version"):
        reg.resolve("digits@production")


def test_promote_and_rollback_walk_back_through_promotions(tmp_path):
    reg = Registry(tmp_path / "r.db")
    for _ in range(3):
        reg.add(record("d"))
    assert reg.promote("d", 1) is None
    assert reg.promote("d", 2) == 1
    assert reg.promote("d", 3) == 2
    reg.promote("d", 1, "staging")
    assert reg.resolve("d@production").version == 3
    assert reg.get("d", 3).stages == ("production",)
    assert reg.rollback("d") == (3, 2)
    assert reg.rollback("d") == (2, 1)
    assert reg.resolve("d@production").version == 1
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback("d")
    assert reg.stages("d") == {"production": 1, "staging": 1}
    with pytest.raises(RegistryError):
        reg.promote("d", 9)
    with pytest.raises(RegistryError, match="unknown stage"):
        reg.promote("d", 1, "prod")


def test_environment_selects_the_database(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEOPT_REGISTRY", "off")
    assert registry_path() is None and open_registry() is None
    monkeypatch.setenv("EDGEOPT_REGISTRY", str(tmp_path))
    assert registry_path() == tmp_path / "registry.db"
    monkeypatch.setenv("EDGEOPT_REGISTRY", str(tmp_path / "x.sqlite"))
    assert open_registry().path == tmp_path / "x.sqlite"
    monkeypatch.delenv("EDGEOPT_REGISTRY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    if sys.platform.startswith("linux"):
        assert registry_path() == tmp_path / "data" / "edgeopt" / "registry.db"
    monkeypatch.setenv("EDGEOPT_DATA_DIR", str(tmp_path / "kept"))
    assert registry_path() == tmp_path / "kept" / "registry.db"


def test_the_test_suite_never_touches_the_real_registry(tmp_path_factory):
    """The root conftest points every test at a registry under pytest's own temp root."""
    chosen = Path(os.environ["EDGEOPT_REGISTRY"])
    assert chosen.is_relative_to(tmp_path_factory.getbasetemp())


def test_an_unwritable_location_is_a_registry_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(RegistryError, match="cannot create the registry directory"):
        Registry(blocker / "sub" / "r.db")


def _register_one(db: str, go, results, i: int) -> None:  # noqa: ANN001 - multiprocessing objects
    go.wait(60)
    rec = DeploymentRecord(
        name="digits", version=0, created="", source_path=f"/src/{i}", source_format="onnx",
        source_fingerprint=str(i), graph_fingerprint="", target="cpu", device="host", precision="fp32", plan={},
        metrics={"candidate": float(i)}, profile={}, artifact_path=f"/a/{i}", manifest_sha256=str(i),
    )
    results.put(Registry(Path(db)).add(rec).version)


def test_twenty_concurrent_processes_register_twenty_versions(tmp_path):
    """Twenty processes (forked, so none pays for imports) wait at one barrier, then all register at once."""
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    db = tmp_path / "concurrent.db"
    go, results = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_register_one, args=(str(db), go, results, i)) for i in range(20)]
    for p in procs:
        p.start()
    go.set()
    versions = sorted(results.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert versions == list(range(1, 21))
    records = Registry(db).list("digits")
    assert sorted(r.version for r in records) == list(range(1, 21))
    assert sorted(r.metrics["candidate"] for r in records) == [float(i) for i in range(20)]
    assert {r.artifact_path for r in records} == {f"/a/{i}" for i in range(20)}
