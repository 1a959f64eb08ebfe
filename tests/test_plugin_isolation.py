"""Broken, hanging and half-written plugins are quarantined while real deploys with the others succeed.

Every plugin here is a real distribution (dist-info + module) on ``sys.path``, loaded through the
``edgeopt`` entry point with ``EDGEOPT_PLUGINS`` unset, exactly as an installed vendor plugin is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeopt.api import deploy
from edgeopt.artifact.write import verify_artifact
from edgeopt.errors import PluginError
from edgeopt.measure.devices import get_profile
from edgeopt.plugin.doctor import diagnose
from edgeopt.plugin.hook_timeout import HookTimeout, hook_timeout_s
from edgeopt.plugin.manager import get_plugin_manager
from edgeopt.plugin.register import TargetRegister
from edgeopt.types import ImportOptions
from tests.plugin_dists import activate, make_plugin_dist

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits" / "digits_cnn.onnx"

IMPORT_ERROR = """
import vendor_sdk_that_does_not_exist
EDGEOPT_HOOK_API = 1
"""

RAISING_HOOK = """
from edgeopt import hookimpl
EDGEOPT_HOOK_API = 1

@hookimpl
def edgeopt_register_targets(register):
    raise RuntimeError("vendor SDK exploded")
"""

WRONG_API = """
from edgeopt import hookimpl
EDGEOPT_HOOK_API = 2

@hookimpl
def edgeopt_register_targets(register):
    register.add_target("future", description="speaks a newer hook API", precisions=("fp32",))
"""

HANGING_REGISTER = """
import time
from edgeopt import hookimpl
EDGEOPT_HOOK_API = 1

@hookimpl
def edgeopt_register_targets(register):
    time.sleep(30)
    register.add_target("late", description="never arrives", precisions=("fp32",))
"""

HANGING_PLAN = """
import time
from edgeopt import hookimpl
EDGEOPT_HOOK_API = 1

@hookimpl
def edgeopt_register_targets(register):
    register.add_target("slowplan", description="plans forever", precisions=("fp32",))

@hookimpl
def edgeopt_plan(graph, target, device, precision):
    time.sleep(30)

@hookimpl
def edgeopt_compile(graph, plan, target, device, calibration, workdir):
    return None

@hookimpl
def edgeopt_runner(compiled, target, device, settings):
    return None
"""

HALF_WRITTEN = """
from edgeopt import hookimpl
EDGEOPT_HOOK_API = 1

@hookimpl
def edgeopt_register_targets(register):
    register.add_target("half", description="plans but cannot build", precisions=("fp32",))
    register.add_target("cpu", description="claims a name already taken", precisions=("fp32",))
    register.add_target("npu9", description="an NPU", precisions=("int8",), available=False,
                        reason="no NPU driver: install vendor-npu-driver")
"""

BROKEN = {"importerr": IMPORT_ERROR, "raising": RAISING_HOOK, "wrongapi": WRONG_API}


@pytest.fixture
def broken_dists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    for name, source in BROKEN.items():
        make_plugin_dist(root, name, source)
    activate(root, monkeypatch)
    for var in ("EDGEOPT_PLUGINS", "EDGEOPT_DISABLE_PLUGIN_AUTOLOAD", "EDGEOPT_BLOCKED_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    return root


def test_broken_plugins_are_quarantined_while_a_cpu_deploy_succeeds(broken_dists: Path, tmp_path: Path) -> None:
    pm = get_plugin_manager()
    out = tmp_path / "digits.edgeopt"
    eval_data = DIGITS.with_name("eval.npz")
    deployment = deploy(
        DIGITS, target="cpu", precision="fp32", eval=eval_data, out=out, runs=10, timing_s=0.2, plugin_manager=pm
    )
    manifest = verify_artifact(deployment.path)
    assert manifest["target"]["name"] == "cpu" and manifest["target"]["plugin_version"]
    assert set(manifest["plugins"]).isdisjoint(BROKEN)
    status = {p.name: p for p in pm.plugins()}
    assert status["importerr"].status == "broken" and "vendor_sdk_that_does_not_exist" in status["importerr"].error
    assert status["raising"].status == "broken" and "vendor SDK exploded" in status["raising"].error
    assert status["wrongapi"].status == "broken" and "EDGEOPT_HOOK_API=2" in status["wrongapi"].error
    assert status["wrongapi"].api_version == 2
    assert "future" not in {t.name for t in pm.targets()}


def test_the_cli_deploys_with_broken_plugins_installed_and_doctor_names_them(
    broken_dists: Path, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEOPT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(broken_dists), str(REPO), env.get("PYTHONPATH", "")])
    out = tmp_path / "cli.edgeopt"
    cli = [sys.executable, "-m", "edgeopt"]
    done = subprocess.run(
        [*cli, "deploy", str(DIGITS), "--target", "cpu", "--precision", "fp32", "--out", str(out), "--timing-s", "0.2"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    verify_artifact(out)
    doctor = subprocess.run(
        [*cli, "plugins", "doctor", "--json"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert doctor.returncode == 1, "doctor must fail while a plugin is broken"
    report = {p["name"]: p for p in json.loads(doctor.stdout)["plugins"]}
    assert report["cpu"]["status"] == "ok" and not report["cpu"]["problems"]
    assert [t["name"] for t in report["cpu"]["targets"]] == ["cpu"]
    for name in BROKEN:
        assert report[name]["status"] == "broken" and report[name]["problems"]
    assert report["wrongapi"]["api_version"] == 2


def test_a_register_hook_that_hangs_is_abandoned_and_quarantined(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_plugin_dist(tmp_path, "hangreg", HANGING_REGISTER)
    activate(tmp_path, monkeypatch)
    monkeypatch.delenv("EDGEOPT_PLUGINS", raising=False)
    monkeypatch.setenv("EDGEOPT_HOOK_TIMEOUT_S", "0.5")
    pm = get_plugin_manager()
    started = time.perf_counter()
    names = {t.name for t in pm.targets()}
    assert time.perf_counter() - started < 10
    assert "cpu" in names and "late" not in names
    status = {p.name: p for p in pm.plugins()}["hangreg"]
    assert status.status == "broken" and "did not return from edgeopt_register_targets within 0.5 s" in status.error


def test_a_plan_hook_that_hangs_raises_and_takes_only_its_own_target_away(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_plugin_dist(tmp_path, "hangplan", HANGING_PLAN)
    activate(tmp_path, monkeypatch)
    monkeypatch.delenv("EDGEOPT_PLUGINS", raising=False)
    monkeypatch.setenv("EDGEOPT_HOOK_TIMEOUT_S", "0.5")
    pm = get_plugin_manager()
    graph_dir = tmp_path / "graph"
    graph_dir.mkdir()
    graph = pm.import_model(DIGITS, ImportOptions(), graph_dir)
    with pytest.raises(HookTimeout, match="'hangplan' did not return from edgeopt_plan within 0.5 s"):
        pm.plan(graph, pm.target("slowplan"), get_profile("host"), "fp32")
    assert {p.name: p for p in pm.plugins()}["hangplan"].status == "broken"
    assert "slowplan" not in {t.name for t in pm.targets()}
    assert pm.plan(graph, pm.target("cpu"), get_profile("host"), "fp32")


def test_doctor_lists_missing_hooks_clashing_and_unavailable_targets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_plugin_dist(tmp_path, "half", HALF_WRITTEN)
    activate(tmp_path, monkeypatch)
    monkeypatch.delenv("EDGEOPT_PLUGINS", raising=False)
    report = {d.name: d for d in diagnose(get_plugin_manager())}
    half = report["half"]
    assert half.status == "ok" and half.api_version == 1
    assert {t.name for t in half.targets} == {"half", "cpu", "npu9"}
    problems = " | ".join(half.problems)
    assert "does not implement edgeopt_plan, edgeopt_compile, edgeopt_runner" in problems
    assert "target 'cpu' is also registered by 'cpu'" in problems
    assert "target 'npu9' is unavailable: no NPU driver: install vendor-npu-driver" in problems
    assert not report["cpu"].problems


def test_hook_timeout_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEOPT_HOOK_TIMEOUT_S", raising=False)
    assert hook_timeout_s() == 60.0
    monkeypatch.setenv("EDGEOPT_HOOK_TIMEOUT_S", "2.5")
    assert hook_timeout_s() == 2.5
    monkeypatch.setenv("EDGEOPT_HOOK_TIMEOUT_S", "0")
    assert hook_timeout_s() is None
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("EDGEOPT_HOOK_TIMEOUT_S", bad)
        with pytest.raises(PluginError, match="EDGEOPT_HOOK_TIMEOUT_S"):
            hook_timeout_s()


def test_tolerances_are_checked_when_a_target_is_registered() -> None:
    register = TargetRegister(plugin="p")
    register.add_target("t", description="d", precisions=("fp32", "fp16"), tolerances={"fp16": 0.02})
    assert register.targets[0].tolerances == {"fp16": 0.02}
    with pytest.raises(PluginError, match="undeclared precision 'int8'"):
        register.add_target("u", description="d", precisions=("fp32",), tolerances={"int8": 0.1})
    with pytest.raises(PluginError, match="positive number"):
        register.add_target("v", description="d", precisions=("fp32",), tolerances={"fp32": -1})
