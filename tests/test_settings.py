"""edgeopt.settings: folders from platformdirs, one meaning per variable, every variable documented."""

from __future__ import annotations

import re
from pathlib import Path

import platformdirs
import pytest

import edgeopt.plugin.manager
from edgeopt import settings
from edgeopt.registry.store import registry_path
from edgeopt.search.cache import cache_root

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
    manager = edgeopt.plugin.manager
    assert manager.cache_dir is settings.cache_dir and manager.data_dir is settings.data_dir
    monkeypatch.setenv("EDGEOPT_CACHE_DIR", str(tmp_path))
    assert edgeopt.plugin.manager.cache_dir("tensorrt") == tmp_path / "tensorrt"


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
