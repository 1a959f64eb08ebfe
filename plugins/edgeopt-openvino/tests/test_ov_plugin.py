"""The plugin as edgeopt sees it: installed entry point, target registration, availability reasons."""

from __future__ import annotations

import ast
import importlib.metadata as md
import sys
from pathlib import Path

import pytest
from edgeopt.plugin import TargetRegister, TargetUnavailable
from edgeopt.testing import get_plugin_manager

import edgeopt_openvino
from edgeopt_openvino.devices import absent_reason, computes_bf16, device_present, target_spec


def _registered() -> dict:
    register = TargetRegister(plugin="openvino")
    edgeopt_openvino.edgeopt_register_targets(register)
    return {t.name: t for t in register.targets}


def test_entry_point_is_installed() -> None:
    found = {ep.name: ep.value for ep in md.entry_points(group="edgeopt")}
    assert found.get("openvino") == "edgeopt_openvino"


def test_manager_loads_the_installed_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD", "EDGEOPT_PLUGINS", "EDGEOPT_BLOCKED_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    pm = get_plugin_manager(builtins=False)
    status = {s.name: s for s in pm.plugins()}["openvino"]
    assert status.status == "ok", status.error
    assert {"edgeopt_register_targets", "edgeopt_plan", "edgeopt_compile", "edgeopt_runner"} <= set(status.hooks)
    target = pm.target("openvino")
    assert target.available and target.reason == ""
    bf16 = ("bf16",) if computes_bf16("CPU") else ()  # offered only where the CPU computes bf16
    assert target.precisions == ("fp32", "fp16", *bf16, "int8")
    assert target.device_kinds == ("cpu",)
    assert "devices found: CPU" in target.description


def test_devices_absent_here_are_listed_unavailable_with_what_was_found() -> None:
    import openvino as ov

    devices = tuple(ov.Core().available_devices)
    targets = _registered()
    assert set(targets) == {"openvino", "openvino-gpu", "openvino-npu"}
    for name, kind in (("openvino-gpu", "GPU"), ("openvino-npu", "NPU")):
        target = targets[name]
        assert target.device_kinds == (kind.lower(),)
        if device_present(kind, devices):
            assert target.available
        else:
            assert not target.available
            assert target.reason.startswith(f"OpenVINO reports no {kind} device here (available: {', '.join(devices)})")


def test_absent_reason_names_the_device_and_what_exists() -> None:
    reason = absent_reason(target_spec("openvino-gpu"), ("CPU",))
    assert reason.startswith("OpenVINO reports no GPU device here (available: CPU)")
    assert device_present("GPU", ("CPU", "GPU.0")) and not device_present("GPU", ("CPU",))


def test_missing_openvino_is_reported_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # makes `import openvino` raise ImportError
    targets = _registered()
    assert all(not t.available for t in targets.values())
    assert all("pip install edgeopt-openvino (openvino, nncf)" in t.reason for t in targets.values())


def test_missing_nncf_drops_int8_and_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "nncf", None)  # importlib.util.find_spec("nncf") is then None
    target = _registered()["openvino"]
    assert target.available
    bf16 = ("bf16",) if computes_bf16("CPU") else ()
    assert target.precisions == ("fp32", "fp16", *bf16)
    assert "pip install nncf" in target.description


def test_runner_for_an_absent_device_raises_target_unavailable(tmp_path: Path) -> None:
    import openvino as ov

    from edgeopt_openvino.runner import OpenVinoRunner

    if device_present("NPU", tuple(ov.Core().available_devices)):
        pytest.skip("this machine has an NPU")
    with pytest.raises(TargetUnavailable, match="no NPU device"):
        OpenVinoRunner(tmp_path / "model.xml", ov_device="NPU")


def test_plugin_imports_no_private_core_names() -> None:
    package = Path(edgeopt_openvino.__file__).parent
    offenders = []
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "edgeopt":
                private = [a.name for a in node.names if a.name.startswith("_")]
                private += [part for part in node.module.split(".") if part.startswith("_")]
                offenders += [f"{source.name}: {node.module}.{name}" for name in private]
    assert offenders == []
