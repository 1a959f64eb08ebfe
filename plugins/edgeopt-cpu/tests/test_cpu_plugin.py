"""The plugin as edgeopt sees it: installed entry point, target registration, hooks through the manager."""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys
from pathlib import Path

from cpu_models import calibration_for, cosine, reference_outputs
from edgeopt.plugin import RunSettings, TargetRegister
from edgeopt.testing import PluginManager, get_plugin_manager

import edgeopt_cpu


def test_entry_point_is_installed() -> None:
    found = {ep.name: ep.value for ep in md.entry_points(group="edgeopt")}
    assert found.get("cpu") == "edgeopt_cpu"


def test_manager_loads_the_installed_plugin(monkeypatch) -> None:
    for var in ("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD", "EDGEOPT_PLUGINS", "EDGEOPT_BLOCKED_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    pm = get_plugin_manager(builtins=False)
    status = {s.name: s for s in pm.plugins()}["cpu"]
    assert status.status == "ok", status.error
    assert {"edgeopt_register_targets", "edgeopt_plan", "edgeopt_compile", "edgeopt_runner"} <= set(status.hooks)
    target = pm.target("cpu")
    assert target.available and target.reason == ""
    assert target.plugin == "cpu"
    assert target.precisions == ("fp32", "int8", "int8-dynamic")
    assert target.description == "ONNX Runtime CPU execution provider"


def test_missing_onnxruntime_is_reported_with_the_fix(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` raise ImportError
    register = TargetRegister(plugin="cpu")
    edgeopt_cpu.edgeopt_register_targets(register)
    (target,) = register.targets
    assert not target.available
    assert "pip install onnxruntime" in target.reason


def test_plugin_imports_no_private_core_names() -> None:
    package = Path(edgeopt_cpu.__file__).parent
    offenders = []
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "edgeopt":
                private = [a.name for a in node.names if a.name.startswith("_")]
                private += [part for part in node.module.split(".") if part.startswith("_")]
                offenders += [f"{source.name}: {node.module}.{name}" for name in private]
    assert offenders == []


def test_auto_deploy_path_through_the_manager(conv_graph, avx2, tmp_path: Path) -> None:
    pm = PluginManager()
    pm.register(edgeopt_cpu, "cpu")
    target = pm.target("cpu")
    plans = pm.plan(conv_graph, target, avx2, "auto")
    assert [p.precision for p in plans] == ["fp32", "int8", "int8", "int8"]
    feeds = calibration_for(conv_graph, n=1, seed=21).batches(1)[0]
    (want,) = reference_outputs(conv_graph, feeds)
    for index, plan in enumerate(plans[:2]):
        workdir = tmp_path / f"candidate-{index}"
        compiled = pm.compile(conv_graph, plan, target, avx2, calibration_for(conv_graph), workdir)
        runner = pm.runner(compiled, target, avx2, RunSettings(batch=1, threads=plan.threads))
        (got,) = runner.run(feeds)
        runner.close()
        assert cosine(got, want) > (0.9999 if plan.precision == "fp32" else 0.99)
    assert {s.name: s.status for s in pm.plugins()}["cpu"] == "ok"
