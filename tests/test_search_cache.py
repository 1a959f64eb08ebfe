"""The search cache: keyed by the code that builds a candidate (not a version string), bounded in size."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest

from edgeopt.search import code_fingerprint as cf


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    root = tmp_path / "site"
    (root / "fp_probe_pkg").mkdir(parents=True)
    (root / "fp_probe_pkg" / "__init__.py").write_text("VALUE = 1\n")
    (root / "fp_probe_pkg" / "build.py").write_text("def build():\n    return 1\n")
    monkeypatch.syspath_prepend(str(root))
    module = importlib.import_module("fp_probe_pkg")
    yield module, root / "fp_probe_pkg"
    sys.modules.pop("fp_probe_pkg", None)
    cf._source_digest.cache_clear()


def test_an_edit_to_any_source_file_changes_the_fingerprint(package) -> None:
    module, folder = package
    before = cf.code_fingerprint(module)
    assert before and before == cf.code_fingerprint(module)
    (folder / "build.py").write_text("def build():\n    return 2\n")  # same version, same size, new code
    cf._source_digest.cache_clear()
    assert cf.code_fingerprint(module) != before


def test_a_file_moved_between_names_changes_the_fingerprint(package) -> None:
    module, folder = package
    before = cf.code_fingerprint(module)
    (folder / "build.py").rename(folder / "compile.py")
    cf._source_digest.cache_clear()
    assert cf.code_fingerprint(module) != before


def test_instances_and_classes_fingerprint_their_package(package) -> None:
    module, _ = package
    assert cf.code_fingerprint(Path) == cf.code_fingerprint(Path("x"))
    assert cf.code_fingerprint(module) != cf.code_fingerprint(Path)


def test_requirement_versions_cover_the_toolchain_a_plugin_builds_with() -> None:
    versions = dict(cf.requirement_versions("edgeopt-cpu"))
    assert {"edgeopt-cpu", "onnxruntime", "onnx"} <= set(versions)
    assert "pytest" not in versions  # extras are not the toolchain
    assert cf.requirement_versions("no-such-distribution-xyz") == ()
    assert cf.distribution_of_plugin("cpu") == "edgeopt-cpu"
    assert cf.distribution_of_plugin("not-a-plugin") is None


def test_a_toolchain_upgrade_changes_the_fingerprint(package, monkeypatch: pytest.MonkeyPatch) -> None:
    import edgeopt_cpu

    before = cf.code_fingerprint(edgeopt_cpu, distribution="edgeopt-cpu")
    upgraded = tuple((n, "99.0" if n == "onnxruntime" else v) for n, v in cf.requirement_versions("edgeopt-cpu"))
    monkeypatch.setattr(cf, "requirement_versions", lambda _name: upgraded)
    assert cf.code_fingerprint(edgeopt_cpu, distribution="edgeopt-cpu") != before


def test_evict_removes_least_recently_used_entries_until_the_cache_fits(tmp_path: Path, monkeypatch) -> None:
    import os

    from edgeopt.search.cache import cache_limit_bytes, evict

    for i, age in enumerate((300, 100, 200)):
        entry = tmp_path / "ab" / f"entry{i}"
        (entry / "files").mkdir(parents=True)
        (entry / "files" / "model.onnx").write_bytes(b"x" * 1000)
        os.utime(entry, (1e9 - age, 1e9 - age))
    (tmp_path / "ab" / ".tmp-writing").mkdir()
    assert evict(tmp_path, 2500) == 1
    assert sorted(p.name for p in (tmp_path / "ab").iterdir()) == [".tmp-writing", "entry1", "entry2"]
    assert evict(tmp_path, 2500) == 0
    assert evict(tmp_path, 0) == 2 and [p.name for p in (tmp_path / "ab").iterdir()] == [".tmp-writing"]
    monkeypatch.setenv("EDGEOPT_CACHE_MAX_MB", "1.5")
    assert cache_limit_bytes() == int(1.5 * 2**20)
    monkeypatch.setenv("EDGEOPT_CACHE_MAX_MB", "lots")
    assert cache_limit_bytes() == 2048 * 2**20
