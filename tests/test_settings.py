"""edgeopt.settings: folders from platformdirs, one meaning per variable, every variable documented."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import platformdirs
import pytest

import edgeopt.plugin
from edgeopt import errors, settings
from edgeopt.registry.store import registry_path
from edgeopt.search.cache import cache_limit_bytes, cache_root

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
VAR = re.compile(r"\bEDGEOPT_[A-Z0-9_]*[A-Z0-9]\b")
NOT_VARIABLES = {"EDGEOPT_HOOK_API"}  # a plugin module's declared hook API version


@pytest.fixture
def no_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("EDGEOPT_CACHE_DIR", "EDGEOPT_DATA_DIR", "EDGEOPT_REGISTRY"):
        monkeypatch.delenv(name, raising=False)


def test_variables_override_the_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("EDGEOPT_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("EDGEOPT_REGISTRY", raising=False)
    assert settings.cache_dir() == tmp_path / "c"
    assert cache_root() == tmp_path / "c" / "search"  # the root of every cache, never the search cache itself
    assert settings.data_dir() == tmp_path / "d" and registry_path() == tmp_path / "d" / "registry.db"
    assert not (tmp_path / "c").exists() and not (tmp_path / "d").exists()  # asking creates nothing
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", "~/somewhere")
    assert settings.cache_dir("x") == Path.home() / "somewhere" / "x"
    with pytest.raises(ValueError, match="relative folder"):
        settings.cache_dir("../escape")


@pytest.mark.skipif(not __import__("sys").platform.startswith("linux"), reason="XDG folders are Linux's")
def test_linux_defaults_follow_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_overrides: None) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xc"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xd"))
    assert cache_root() == tmp_path / "xc" / "edgeopt" / "search"
    assert registry_path() == tmp_path / "xd" / "edgeopt" / "registry.db"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert settings.cache_dir() == Path.home() / ".cache" / "edgeopt"


@pytest.mark.parametrize(("dirs", "cache", "data"), [
    ("macos.MacOS", "Library/Caches/edgeopt", "Library/Application Support/edgeopt"),
    ("unix.Unix", ".cache/edgeopt", ".local/share/edgeopt"),
])
def test_platform_defaults_come_from_platformdirs(
    dirs: str, cache: str, data: str, monkeypatch: pytest.MonkeyPatch, no_overrides: None
) -> None:
    """Each platform's own convention (platformdirs' class for it), not a hand-written guess."""
    module, cls = dirs.split(".")
    kind = getattr(__import__(f"platformdirs.{module}", fromlist=[cls]), cls)
    for var in ("XDG_CACHE_HOME", "XDG_DATA_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(platformdirs, "user_cache_dir", lambda app, appauthor: kind(app, appauthor).user_cache_dir)
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda app, appauthor: kind(app, appauthor).user_data_dir)
    assert cache_root() == Path.home() / cache / "search"
    assert registry_path() == Path.home() / data / "registry.db"


def test_plugins_get_the_folder_helpers_from_their_facade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    facade = edgeopt.plugin
    assert facade.cache_dir is settings.cache_dir and facade.data_dir is settings.data_dir
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(tmp_path))
    assert edgeopt.plugin.cache_dir("tensorrt") == tmp_path / "tensorrt"


def _sources(*roots: str) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        files += [p for p in (ROOT / root).rglob("*") if p.suffix in (".py", ".sh") and ".venv" not in p.parts]
    return files


def test_no_hand_written_folder_resolvers() -> None:
    """Core and plugins take user folders from edgeopt.settings (platformdirs), never by hand."""
    hand = re.compile(r"XDG_(CACHE|DATA)_HOME|[\"']\.cache[\"']|[\"']Library[\"']|LOCALAPPDATA")
    offenders = [str(p.relative_to(ROOT)) for p in _sources("edgeopt", *[f"plugins/{d.name}/{d.name.replace('-', '_')}"
                 for d in (ROOT / "plugins").iterdir() if d.is_dir()])
                 if p.name != "settings.py" and hand.search(p.read_text())]
    assert offenders == []


def _documented() -> set[str]:
    return {m for line in DOC.read_text().splitlines() if line.startswith("| `EDGEOPT_")
            for m in VAR.findall(line.split("|")[1])}


def test_every_core_setting_is_documented_as_declared() -> None:
    text = DOC.read_text()
    for s in settings.SETTINGS:
        assert f"| `{s.name}` | {s.kind} | {s.unset} | {s.meaning} |" in text, s.name


def test_every_variable_in_the_source_tree_is_documented() -> None:
    core = {v for p in _sources("edgeopt") for v in VAR.findall(p.read_text())} - NOT_VARIABLES
    assert core <= {s.name for s in settings.SETTINGS}, core - {s.name for s in settings.SETTINGS}
    everywhere = {v for p in _sources("edgeopt", "plugins", "examples", "bench", "scripts", "tests", ".ci")
                  for v in VAR.findall(p.read_text())} - NOT_VARIABLES
    assert everywhere - _documented() == set()
    assert _documented() - everywhere == set()  # nothing documented that no code reads


# -- typed readers -----------------------------------------------------------------------------------------


def test_flag_reads_off_words_as_off_and_blank_as_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEOPT_ISOLATION", raising=False)
    assert settings.flag("EDGEOPT_ISOLATION", default=True) is True
    for value, expected in (("1", True), ("on", True), ("yes", True), (" ", True), ("0", False), ("OFF", False),
                            ("false", False), ("No", False)):
        monkeypatch.setenv("EDGEOPT_ISOLATION", value)
        assert settings.flag("EDGEOPT_ISOLATION", default=True) is expected, value
    monkeypatch.setenv("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD", "")
    assert settings.flag("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD") is False  # blank: the default
    monkeypatch.setenv("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert settings.flag("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD") is True


def test_seconds_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    name = "EDGEOPT_ISOLATION_TIMEOUT_S"
    monkeypatch.delenv(name, raising=False)
    assert settings.seconds(name, 600.0) == 600.0
    monkeypatch.setenv(name, " 2.5 ")
    assert settings.seconds(name, 600.0) == 2.5
    monkeypatch.setenv(name, "0")
    assert settings.seconds(name, 600.0) is None
    for bad in ("soon", "-1", "nan", "inf"):
        monkeypatch.setenv(name, bad)
        with pytest.raises(errors.CommandLineError, match=rf"{name}='{bad}' is not a number of seconds"):
            settings.seconds(name, 600.0)
    monkeypatch.setenv("EDGEOPT_HOOK_TIMEOUT_S", "soon")  # each setting raises its own module's error class
    with pytest.raises(errors.PluginError, match="EDGEOPT_HOOK_TIMEOUT_S='soon'") as info:
        settings.seconds("EDGEOPT_HOOK_TIMEOUT_S", 60.0)
    assert "0: no limit" in info.value.hint and "unset it for 60" in info.value.hint


def test_size_and_mebibytes_readers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEOPT_MAX_MODEL_BYTES", raising=False)
    assert settings.size("EDGEOPT_MAX_MODEL_BYTES") is None
    for value, expected in (("4096", 4096), ("4GiB", 4 * 2**30), ("512M", 512 * 2**20), ("3GB", 3 * 10**9)):
        monkeypatch.setenv("EDGEOPT_MAX_MODEL_BYTES", value)
        assert settings.size("EDGEOPT_MAX_MODEL_BYTES") == expected
    monkeypatch.setenv("EDGEOPT_MAX_MODEL_BYTES", "lots")
    with pytest.raises(errors.ResourceLimitError, match="EDGEOPT_MAX_MODEL_BYTES='lots' is not a size") as info:
        settings.size("EDGEOPT_MAX_MODEL_BYTES")
    assert "4GiB" in info.value.hint
    monkeypatch.setenv("EDGEOPT_CACHE_MAX_MB", "1.5")
    assert settings.mebibytes("EDGEOPT_CACHE_MAX_MB") == 1.5
    for bad in ("lots", "-3"):
        monkeypatch.setenv("EDGEOPT_CACHE_MAX_MB", bad)
        with pytest.raises(errors.EdgeoptError, match="is not a number of MiB"):
            settings.mebibytes("EDGEOPT_CACHE_MAX_MB")
        assert cache_limit_bytes() == 2048 * 2**20  # the search cache keeps its default, as it always has


def test_names_folders_level_and_text_readers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EDGEOPT_PLUGINS", raising=False)
    assert settings.names("EDGEOPT_PLUGINS") is None  # unset: no filter
    monkeypatch.setenv("EDGEOPT_PLUGINS", " cpu, ,openvino ")
    assert settings.names("EDGEOPT_PLUGINS") == {"cpu", "openvino"}
    monkeypatch.setenv("EDGEOPT_PLUGINS", "")
    assert settings.names("EDGEOPT_PLUGINS") == set()  # set but empty: load none
    monkeypatch.delenv("EDGEOPT_DEVICE_PROFILES", raising=False)
    assert settings.folders("EDGEOPT_DEVICE_PROFILES") == []
    monkeypatch.setenv("EDGEOPT_DEVICE_PROFILES", f"{tmp_path / 'a'}{os.pathsep}{os.pathsep}{tmp_path / 'b'}")
    assert settings.folders("EDGEOPT_DEVICE_PROFILES") == [tmp_path / "a", tmp_path / "b"]
    monkeypatch.setenv("EDGEOPT_LOG_LEVEL", "INFO")
    assert settings.level("EDGEOPT_LOG_LEVEL") == "info"
    monkeypatch.setenv("EDGEOPT_LOG_LEVEL", "loud")
    with pytest.raises(errors.CommandLineError, match="is not one of debug, info, warning, error"):
        settings.level("EDGEOPT_LOG_LEVEL")
    monkeypatch.setenv("EDGEOPT_REGISTRY", "  off ")
    assert settings.text("EDGEOPT_REGISTRY") == "off" and registry_path() is None
    monkeypatch.setenv("EDGEOPT_REGISTRY", "  ")
    assert settings.text("EDGEOPT_REGISTRY") is None


@pytest.mark.parametrize("reader", [settings.flag, settings.size, settings.mebibytes, settings.names,
                                    settings.folders, settings.level, settings.text, settings.problem,
                                    lambda name: settings.seconds(name, 1.0)])
def test_every_reader_refuses_a_name_not_in_the_table(reader: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDGEOPT_not_a_setting", "1")
    with pytest.raises(KeyError, match=r"EDGEOPT_not_a_setting is not an edgeopt core setting .*SETTINGS"):
        reader("EDGEOPT_not_a_setting")


def test_a_reader_refuses_a_setting_of_another_kind() -> None:
    with pytest.raises(TypeError, match="EDGEOPT_PLUGINS is a names setting, not flag"):
        settings.flag("EDGEOPT_PLUGINS")


def test_current_and_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    for s in settings.SETTINGS:
        monkeypatch.delenv(s.name, raising=False)
    assert [(s.name, v) for s, v in settings.current()] == [(s.name, None) for s in settings.SETTINGS]
    assert all(settings.problem(s.name) is None for s in settings.SETTINGS)  # unset reads fine
    monkeypatch.setenv("EDGEOPT_MAX_TENSOR_BYTES", " 16KiB ")
    monkeypatch.setenv("EDGEOPT_HOOK_TIMEOUT_S", "soon")
    values = {s.name: v for s, v in settings.current()}
    assert values["EDGEOPT_MAX_TENSOR_BYTES"] == " 16KiB " and values["EDGEOPT_DEBUG"] is None  # raw
    assert settings.problem("EDGEOPT_MAX_TENSOR_BYTES") is None
    found = settings.problem("EDGEOPT_HOOK_TIMEOUT_S")
    assert isinstance(found, errors.PluginError) and "'soon' is not a number of seconds" in found.message


def test_doctor_json_lists_every_setting_with_its_value(tmp_path: Path) -> None:
    env = {**os.environ, "EDGEOPT_DISABLE_PLUGIN_AUTOLOAD": "1", "EDGEOPT_MAX_TENSOR_BYTES": "16KiB",
           "EDGEOPT_CACHE_MAX_MB": "lots", "EDGEOPT_REGISTRY": "off"}
    env.pop("EDGEOPT_DEVICE_PROFILES", None)
    done = subprocess.run([sys.executable, "-m", "edgeopt", "plugins", "doctor", "--json"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr  # an unreadable setting is a problem line, not a broken plugin
    found = {s["name"]: s for s in json.loads(done.stdout)["settings"]}
    assert list(found) == [s.name for s in settings.SETTINGS]
    assert found["EDGEOPT_MAX_TENSOR_BYTES"] == {
        "name": "EDGEOPT_MAX_TENSOR_BYTES", "kind": "bytes", "value": "16KiB", "unset": "2 GiB",
        "meaning": settings.setting("EDGEOPT_MAX_TENSOR_BYTES").meaning, "problem": None}
    assert found["EDGEOPT_DEVICE_PROFILES"]["value"] is None
    assert found["EDGEOPT_CACHE_MAX_MB"]["problem"].startswith("EDGEOPT_CACHE_MAX_MB='lots' is not a number of MiB")
    table = subprocess.run([sys.executable, "-m", "edgeopt", "plugins", "doctor"], env={**env, "COLUMNS": "200"},
                           cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert table.returncode == 0 and "Traceback" not in table.stderr
    assert "EDGEOPT_MAX_TENSOR_BYTES = '16KiB'" in table.stdout
    assert "EDGEOPT_DEVICE_PROFILES = (unset: the built-in profiles only)" in table.stdout
    assert "problem: EDGEOPT_CACHE_MAX_MB='lots' is not a number of MiB" in table.stdout


# -- no core module reads an EDGEOPT_ variable by itself ---------------------------------------------------

_ALLOWED_READS = {
    ("edgeopt/farm/worker.py", "EDGEOPT_REGISTRY"): "saved to restore it after turning the registry off",
}


def _env_reads(tree: ast.AST, constants: dict[str, str]) -> list[tuple[int, str]]:
    """(line, variable) of each read of an EDGEOPT_ variable from os.environ / os.getenv in ``tree``."""

    def var(node: ast.AST | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            value = node.value
        elif isinstance(node, ast.Name | ast.Attribute):
            value = constants.get(node.id if isinstance(node, ast.Name) else node.attr, "")
        else:
            return None
        return value if value.startswith("EDGEOPT_") else None

    def is_environ(node: ast.AST) -> bool:
        return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
            isinstance(node, ast.Name) and node.id == "environ")

    discarded = {id(s.value) for s in ast.walk(tree) if isinstance(s, ast.Expr)}  # `os.environ.pop(X)` alone
    found = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            f = node.func
            if (is_environ(f.value) and f.attr in ("get", "pop", "setdefault") and id(node) not in discarded) or (
                    f.attr == "getenv"):
                name = var(node.args[0])
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and is_environ(node.value):
            name = var(node.slice)
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            name = var(node.left)
        if name:
            found.append((node.lineno, name))
    return found


def test_no_core_module_reads_an_edgeopt_variable_outside_settings() -> None:
    """Every EDGEOPT_ read goes through an edgeopt.settings reader (writes for child processes are fine)."""
    files = [p for p in _sources("edgeopt") if p.suffix == ".py"]
    trees = {p: ast.parse(p.read_text()) for p in files}
    constants = {t.id: n.value.value for tree in trees.values() for n in tree.body if isinstance(n, ast.Assign)
                 and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)
                 for t in n.targets if isinstance(t, ast.Name)}
    offenders = [f"{p.relative_to(ROOT)}:{line}: {name}" for p, tree in trees.items() if p.name != "settings.py"
                 for line, name in _env_reads(tree, constants)
                 if (str(p.relative_to(ROOT)), name) not in _ALLOWED_READS]
    assert offenders == []


def test_the_read_finder_finds_reads_and_ignores_writes() -> None:
    """The scan above can fail: each way of reading is caught, writing and dropping are not (lower-case names:
    not variables for the documentation test above)."""
    source = '''
import os
KEY = "EDGEOPT_x_env"
a = os.environ.get("EDGEOPT_a")
b = os.environ["EDGEOPT_b"]
c = os.getenv(KEY)
d = "EDGEOPT_d" in os.environ
e = os.environ.pop("EDGEOPT_e", "")
os.environ["EDGEOPT_w"] = "1"
env = dict(os.environ)
env["EDGEOPT_w2"] = "1"
os.environ.pop("EDGEOPT_dropped", None)
f = os.environ.get("HOME")
'''
    reads = [name for _, name in _env_reads(ast.parse(source), {"KEY": "EDGEOPT_x_env"})]
    assert sorted(reads) == ["EDGEOPT_a", "EDGEOPT_b", "EDGEOPT_d", "EDGEOPT_e", "EDGEOPT_x_env"]
