"""``edgeopt plugins new``: names, files, and a scaffold that installs into a fresh venv and passes the
conformance suite there without a single edit."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from typer.testing import CliRunner

from edgeopt.api import plugins as sdk_plugins
from edgeopt.cli import app
from edgeopt.errors import OutputPathError, PluginError
from edgeopt.plugin.scaffold import FILES, plugin_names, render, scaffold_plugin


def test_plugin_names() -> None:
    names = plugin_names("acme-npu")
    assert (names.target, names.distribution, names.module, names.runner_class) == (
        "acme-npu",
        "edgeopt-acme-npu",
        "edgeopt_acme_npu",
        "AcmeNpuRunner",
    )
    assert plugin_names("edgeopt-acme").target == "acme"
    for bad in ("", "9lives", "acme npu", "acme--npu", "auto", "a.b", "acme-"):
        with pytest.raises(PluginError, match="cannot name a plugin"):
            plugin_names(bad)


def test_render_fills_every_placeholder_and_the_python_compiles() -> None:
    files = render(plugin_names("acme-npu"))
    assert set(files) == {rel.format(module="edgeopt_acme_npu") for rel in FILES}
    for rel, text in files.items():
        assert "${" not in text, rel
        if rel.endswith(".py"):
            compile(text, rel, "exec")
    assert 'acme-npu = "edgeopt_acme_npu"' in files["pyproject.toml"]
    assert 'target = "acme-npu"' in files["tests/test_conformance.py"]
    assert "EDGEOPT_HOOK_API = 1" in files["edgeopt_acme_npu/__init__.py"]


def test_scaffold_refuses_a_non_empty_destination_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    taken = tmp_path / "edgeopt-acme"
    taken.mkdir()
    (taken / "keep.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="not empty"):
        scaffold_plugin("acme", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgeopt-acme"]
    assert [p.name for p in taken.iterdir()] == ["keep.txt"]
    (taken / "keep.txt").unlink()
    root = scaffold_plugin("acme", tmp_path)  # an empty folder is fine
    assert root == taken and (root / "edgeopt_acme" / "runtime.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["edgeopt-acme"]


def test_cli_new_writes_a_ruff_clean_distribution(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["plugins", "new", "acme-npu", "--dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    root = tmp_path / "edgeopt-acme-npu"
    assert f"wrote {root}" in result.output
    assert (root / "edgeopt_acme_npu" / "compile.py").is_file()
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed")
    lint = subprocess.run([ruff, "check", "--no-cache", "."], cwd=root, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    again = CliRunner().invoke(app, ["plugins", "new", "acme-npu", "--dir", str(tmp_path)])
    assert again.exit_code != 0


def _venv_over_this_one(where: Path) -> Path:
    """A venv without pip whose site-packages also holds this interpreter's (so edgeopt, onnxruntime,
    pytest come along) while anything installed into it stays in it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout.strip()
    parent = sysconfig.get_paths()["purelib"]
    (Path(site) / "_edgeopt_parent.pth").write_text(f"import site; site.addsitedir({parent!r})\n")
    return python


def test_scaffold_installs_in_a_fresh_venv_and_passes_the_conformance_suite(tmp_path: Path) -> None:
    root = scaffold_plugin("acme-npu", tmp_path)
    python = _venv_over_this_one(tmp_path / "venv")
    offline = all(importlib.util.find_spec(m) is not None for m in ("hatchling", "editables"))
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "-e", str(root)]
    if offline:  # the build backend is here: no download needed
        install.insert(-2, "--no-build-isolation")
    done = subprocess.run(install, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout + done.stderr

    suite = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=root, capture_output=True, text=True, timeout=300, check=False,
    )
    assert suite.returncode == 0, suite.stdout[-4000:] + suite.stderr[-2000:]
    assert " passed" in suite.stdout and "failed" not in suite.stdout and "skipped" not in suite.stdout

    doctor = subprocess.run(
        [str(python), "-m", "edgeopt", "plugins", "doctor", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    report = {p["name"]: p for p in json.loads(doctor.stdout)["plugins"]}
    plugin = report["acme-npu"]
    assert (plugin["status"], plugin["version"], plugin["api_version"], plugin["problems"]) == ("ok", "0.1.0", 1, [])
    assert [t["name"] for t in plugin["targets"]] == ["acme-npu"]
    assert "acme-npu" not in {p.name for p in sdk_plugins()}, "the install leaked out of the venv"
