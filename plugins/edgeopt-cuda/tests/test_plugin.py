"""The plugin as edgeopt sees it: installed entry point, target registration, hooks through the manager,
and what a user is told on a machine without a usable GPU."""

from __future__ import annotations

import ast
import importlib.metadata as md
import json
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest
from cuda_models import calibration_for
from edgeopt.plugin import RunSettings, TargetRegister, TargetUnavailable
from edgeopt.testing import ConformanceSuite, PluginManager, get_plugin_manager

import edgeopt_cuda
from edgeopt_cuda.status import SWAP_COMMAND, current_status

NO_CUDA = "CUDAExecutionProvider" not in ort.get_available_providers()
HOOKS = {"edgeopt_register_targets", "edgeopt_plan", "edgeopt_compile", "edgeopt_runner", "edgeopt_energy_meters"}


def test_entry_point_is_installed() -> None:
    found = {ep.name: ep.value for ep in md.entry_points(group="edgeopt")}
    assert found.get("cuda") == "edgeopt_cuda"


def test_manager_loads_the_installed_plugin(monkeypatch) -> None:
    for var in ("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD", "EDGEOPT_PLUGINS", "EDGEOPT_BLOCKED_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    pm = get_plugin_manager(builtins=False)
    status = {s.name: s for s in pm.plugins()}["cuda"]
    assert status.status == "ok", status.error
    assert set(status.hooks) >= HOOKS
    target = pm.target("cuda", require_available=False)
    assert (target.plugin, target.device_kinds, dict(target.tolerances)) == ("cuda", ("gpu",), {"tf32": 5e-3})
    assert target.available == current_status().available
    assert {"fp32", "tf32", "fp16"} <= set(target.precisions)


@pytest.mark.skipif(not NO_CUDA, reason="this onnxruntime has the CUDA provider")
def test_without_a_cuda_onnxruntime_the_target_says_what_to_install() -> None:
    register = TargetRegister(plugin="cuda")
    edgeopt_cuda.edgeopt_register_targets(register)
    (target,) = register.targets
    assert not target.available
    assert SWAP_COMMAND in target.reason and "docs/gpu.md" in target.reason
    assert target.precisions == ("fp32", "tf32", "fp16")  # no int8 without TensorRT


@pytest.mark.skipif(not NO_CUDA, reason="this onnxruntime has the CUDA provider")
def test_edgeopt_targets_cli_shows_the_reason() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "edgeopt", "targets", "--json"], capture_output=True, text=True, check=True, timeout=120
    )
    cuda = next(t for t in json.loads(done.stdout) if t["name"] == "cuda")
    assert cuda["available"] is False
    assert cuda["reason"].startswith(f"{current_status().reason.split(' has no ')[0]} has no CUDAExecutionProvider")
    assert SWAP_COMMAND in cuda["reason"]


@pytest.mark.skipif(not NO_CUDA, reason="this onnxruntime has the CUDA provider")
def test_deploy_to_cuda_stops_at_once_with_the_reason(tmp_path: Path) -> None:
    import edgeopt as api

    model = Path(__file__).resolve().parents[3] / "examples" / "digits" / "digits_cnn.onnx"
    with pytest.raises(TargetUnavailable, match="target 'cuda' is unavailable") as info:
        api.deploy(str(model), target="cuda", device="nvidia-h100", out=tmp_path / "out")
    assert SWAP_COMMAND in info.value.message  # the reason names the fix; the hint says to follow it
    assert "reason" in info.value.hint
    assert not (tmp_path / "out").exists()


def test_plan_and_compile_through_the_manager_work_without_a_gpu(conv_graph, h100, tmp_path: Path) -> None:
    pm = PluginManager()
    pm.register(edgeopt_cuda, "cuda")
    target = pm.target("cuda", require_available=False)
    plans = pm.plan(conv_graph, target, h100, "auto")
    assert plans[0].precision == "fp32"
    compiled = pm.compile(conv_graph, plans[0], target, h100, calibration_for(conv_graph), tmp_path / "c0")
    assert compiled.files == ("model.onnx", "cuda_config.json")
    if not target.available:
        with pytest.raises(TargetUnavailable, match="cannot run here"):
            pm.runner(compiled, target, h100, RunSettings(batch=1))
    assert {s.name: s.status for s in pm.plugins()}["cuda"] == "ok"


def test_plugin_imports_no_private_core_names() -> None:
    package = Path(edgeopt_cuda.__file__).parent
    offenders = []
    for source in package.glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "edgeopt":
                private = [a.name for a in node.names if a.name.startswith("_")]
                private += [part for part in node.module.split(".") if part.startswith("_")]
                offenders += [f"{source.name}: {node.module}.{name}" for name in private]
    assert offenders == []


def test_importing_the_plugin_loads_no_gpu_library() -> None:
    heavy = "('onnxruntime', 'pynvml', 'onnxconverter_common')"
    code = f"import sys, edgeopt_cuda; print(sorted(m for m in {heavy} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == "[]"


class TestCudaConformance(ConformanceSuite):
    """edgeopt's conformance suite; skipped with the target's reason where no GPU is usable."""

    target = "cuda"
