"""The lifecycle end to end on the bundled digits CNN: deploy twice, list, diff, promote, roll back, load
from the registry, monitor the field, redeploy — through the SDK and the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import edgeopt
from edgeopt.artifact.write import verify_artifact
from edgeopt.errors import RegistryError
from edgeopt.plugin import hookimpl
from edgeopt.plugin.manager import get_plugin_manager
from edgeopt.registry import Registry, diff_records, open_registry, registered
from edgeopt.registry.recording import register_deployment

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits"
FAST = {"timing_s": 0.05, "runs": 20}


class LinkPlugin:
    """A plugin using only the public hook: records what it saw and hands back a link."""

    EDGEOPT_HOOK_API = 1

    def __init__(self) -> None:
        self.seen: list = []

    @hookimpl
    def edgeopt_deployment_registered(self, record):  # noqa: ANN001, ANN201
        self.seen.append(record)
        return {"tracker": f"tracker://{record.name}/{record.version}"}


class BrokenPlugin:
    EDGEOPT_HOOK_API = 1

    @hookimpl
    def edgeopt_deployment_registered(self, record):  # noqa: ANN001, ANN201
        raise RuntimeError("tracker down")


def cli(*args: str, cwd: Path, env_registry: str) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, "EDGEOPT_REGISTRY": env_registry}
    return subprocess.run([sys.executable, "-m", "edgeopt", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)


@pytest.fixture(scope="module")
def lifecycle(tmp_path_factory):
    """Two deploys of one model under the name ``digits``: fp32, then int8 (forced), in a private registry."""
    work = tmp_path_factory.mktemp("lifecycle")
    db = work / "registry.db"
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGEOPT_REGISTRY", str(db))
    pm = get_plugin_manager()
    plugin = LinkPlugin()
    pm.register(plugin, "link-test")
    common = dict(calib=DIGITS / "calib.npz", eval=DIGITS / "eval.npz", name="digits", plugin_manager=pm, **FAST)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = edgeopt.deploy(str(DIGITS / "digits_cnn.onnx"), precision="fp32", out=work / "v1.edgeopt", **common)
        pm.register(BrokenPlugin(), "broken-test")
        second = edgeopt.deploy(str(DIGITS / "digits_cnn.onnx"), precision="int8", force_precision=True,
                                out=work / "v2.edgeopt", **common)
    yield {"work": work, "db": db, "first": first, "second": second, "plugin": plugin,
           "warnings": [str(w.message) for w in caught]}
    mp.undo()


def test_two_deploys_list_two_versions_with_metrics(lifecycle):
    records = Registry(lifecycle["db"]).list("digits")
    assert [r.ref for r in records] == ["digits:1", "digits:2"]
    assert [r.precision for r in records] == ["fp32", "int8"]
    for r, dep in zip(records, (lifecycle["first"], lifecycle["second"]), strict=True):
        assert r.metrics["metric"] == "accuracy" and r.metrics["candidate"] == dep.metrics["candidate"]
        assert r.profile["latency"]["1"]["method"] == "measured:wallclock" and r.profile["energy"]["method"]
        assert r.artifact_path == str(dep.path.resolve())
        assert r.source_fingerprint == dep.manifest["source"]["fingerprint"]
        assert r.request["calib"] == str((DIGITS / "calib.npz").resolve()) and r.request["precision"] == r.precision
        assert set(r.calibration["features"]) == {f"input[c0].{s}" for s in ("mean", "std", "min", "max")}
        assert r.calibration["samples"] == 200 and not r.calibration["synthetic"]


def test_diff_shows_deltas_and_plan_differences(lifecycle):
    reg = Registry(lifecycle["db"])
    d = diff_records(reg.get("digits", 1), reg.get("digits", 2))
    by = {x.what: x for x in d.deltas}
    size = by["size"]
    assert size.b < size.a and size.change == size.b - size.a  # int8 is smaller
    assert by["latency p90 (batch 1)"].a == lifecycle["first"].profile["latency"]["1"]["p90"]
    assert by["energy per inference"].method_a.startswith("estimated")
    assert "accuracy" in by
    assert d.plan["plan.precision"] == ("fp32", "int8") and "plan.passes" in d.plan
    out = cli("diff", "digits:1", "digits:2", "--json", cwd=lifecycle["work"], env_registry=str(lifecycle["db"]))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["a"] == "digits:1" and any(x["what"] == "size" and x["change"] < 0 for x in data["deltas"])


def test_second_report_links_the_first(lifecycle):
    second = lifecycle["second"]
    prev = second.manifest["previous"]
    assert prev["ref"] == "digits:1" and prev["precision"] == "fp32"
    assert (second.path / prev["report"]).resolve() == (lifecycle["first"].path / "report.md").resolve()
    verify_artifact(second.path)  # re-sealed, still verified
    md = (second.path / "report.md").read_text()
    assert "## Previous version" in md and "digits:1" in md and "../v1.edgeopt/report.md" in md
    assert "Previous version" in (second.path / "report.html").read_text()
    assert "previous" not in lifecycle["first"].manifest
    reg = Registry(lifecycle["db"])
    assert reg.get("digits", 2).manifest_sha256 == registered(second, registry=reg).manifest_sha256


def test_plugins_see_the_record_and_a_failing_one_only_warns(lifecycle):
    seen = lifecycle["plugin"].seen
    assert [r.ref for r in seen] == ["digits:1", "digits:2"]
    assert Registry(lifecycle["db"]).get("digits", 1).links == {"tracker": "tracker://digits/1"}
    assert any("broken-test" in w and "tracker down" in w for w in lifecycle["warnings"])
    verify_artifact(lifecycle["second"].path)


def test_promote_and_rollback_change_what_load_returns(lifecycle, monkeypatch):
    monkeypatch.setenv("EDGEOPT_REGISTRY", str(lifecycle["db"]))
    env, work = str(lifecycle["db"]), lifecycle["work"]
    assert cli("promote", "digits:1", "--stage", "production", cwd=work, env_registry=env).returncode == 0
    with edgeopt.load("registry:digits@production") as p:
        assert p.manifest["plan"]["precision"] == "fp32"
    assert Registry(lifecycle["db"]).promote("digits", 2) == 1
    with edgeopt.load("registry:digits@production") as p:
        assert p.manifest["plan"]["precision"] == "int8"
        x = np.load(DIGITS / "eval.npz")["input"][:1]
        assert p({"input": x})[p.output_names[0]].shape == (1, 10)
    out = cli("rollback", "digits", cwd=work, env_registry=env)
    assert out.returncode == 0 and "digits:2 → digits:1" in out.stdout
    with edgeopt.load("registry:digits@production") as p:
        assert p.manifest["plan"]["precision"] == "fp32"
    with edgeopt.load("registry:digits:2") as p:
        assert p.manifest["plan"]["precision"] == "int8"
    bad = cli("rollback", "digits", cwd=work, env_registry=env)
    assert bad.returncode == RegistryError.exit_status and "nothing to roll back" in bad.stderr
    assert "Traceback" not in bad.stderr
    listing = json.loads(cli("models", "--json", cwd=work, env_registry=env).stdout)
    assert [(r["ref"], r["stages"]) for r in listing] == [("digits:1", ["production"]), ("digits:2", [])]
    shown = cli("show", "digits:2", cwd=work, env_registry=env)
    assert shown.returncode == 0 and "int8" in shown.stdout and "tracker://digits/2" in shown.stdout


def _field_log(path: Path, log: Path, images: np.ndarray) -> None:
    with edgeopt.load(path, monitor_log=log) as p:
        for x in images:
            p({"input": x[None].astype(np.float32)})


def test_monitor_flags_shifted_inputs_and_stays_quiet_on_held_out(lifecycle, monkeypatch):
    monkeypatch.setenv("EDGEOPT_REGISTRY", str(lifecycle["db"]))
    work, path = lifecycle["work"], lifecycle["first"].path
    held_out = np.load(DIGITS / "eval.npz")["input"][:150]
    rng = np.random.default_rng(0)
    logs = {
        "held_out": held_out,
        "inverted": 1.0 - held_out,
        "noised": held_out + rng.normal(0, 0.1, held_out.shape).astype(np.float32),
    }
    reports = {}
    for kind, images in logs.items():
        _field_log(path, work / f"{kind}.jsonl", images)
        reports[kind] = edgeopt.monitor("digits:1", work / f"{kind}.jsonl")
    quiet = reports["held_out"]
    assert quiet.samples == 150 and not quiet.input_drift, [(f.feature, f.psi, f.p_value) for f in quiet.features]
    inverted = reports["inverted"]
    assert inverted.input_drift and "input[c0].mean" in {f.feature for f in inverted.features if f.drifted}
    assert any("redeploy digits:1 --calib" in a for a in inverted.advice)
    assert reports["noised"].input_drift
    env = str(lifecycle["db"])
    out = cli("monitor", "digits:1", str(work / "inverted.jsonl"), "--json", cwd=work, env_registry=env)
    assert out.returncode == 3 and json.loads(out.stdout)["input_drift"] is True
    out = cli("monitor", "digits:1", str(work / "held_out.jsonl"), "--latency-tolerance", "1000", cwd=work,
              env_registry=str(lifecycle["db"]))
    assert out.returncode == 0, out.stdout + out.stderr
    slow = edgeopt.monitor("digits:1", work / "held_out.jsonl", latency_tolerance=1e-6)
    assert slow.latency_drift and slow.latency[0].profiled_p90_s == lifecycle["first"].profile["latency"]["1"]["p90"]


def test_registration_failure_keeps_the_verified_artifact(lifecycle, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("EDGEOPT_REGISTRY", str(blocker / "r.db"))  # its directory cannot be created
    messages: list[str] = []
    got = register_deployment(lifecycle["first"], name="digits", request={}, calib=None, pm=None, warn=messages.append)
    assert got is None and "not registered" in messages[0] and "complete and verified" in messages[0]
    verify_artifact(lifecycle["first"].path)


def test_registry_off_registers_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEOPT_REGISTRY", "off")
    dep = edgeopt.deploy(str(DIGITS / "digits_cnn.onnx"), precision="fp32", calib=DIGITS / "calib.npz",
                         out=tmp_path / "off.edgeopt", **FAST)
    verify_artifact(dep.path)
    assert open_registry() is None and registered(dep) is None and "previous" not in dep.manifest


def test_redeploy_reruns_the_recorded_plan_and_diffs(lifecycle, monkeypatch):
    monkeypatch.setenv("EDGEOPT_REGISTRY", str(lifecycle["db"]))
    dep, d = edgeopt.redeploy("digits:2", timing_s=0.05)
    new = registered(dep)
    assert new is not None and new.name == "digits" and new.version >= 3
    assert new.precision == "int8" and new.request["calib"] == str((DIGITS / "calib.npz").resolve())
    assert d is not None and d.a == "digits:2" and d.b == new.ref
    assert dep.path.parent == lifecycle["second"].path.parent and dep.path.name.startswith("digits-redeploy-")
    assert dep.manifest["previous"]["ref"] == f"digits:{new.version - 1}"
