"""The built-in ONNX-file importer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeopt.errors import ModelError
from edgeopt.hashing import sha256_file
from edgeopt.importers import onnx_file
from edgeopt.importers.onnx_file import edgeopt_import
from edgeopt.plugin.manager import get_plugin_manager
from edgeopt.types import ImportOptions

SQUEEZENET = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light" / "light_squeezenet.onnx"


def test_imports_an_onnx_file_and_writes_only_in_workdir(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    graph = edgeopt_import(str(SQUEEZENET), ImportOptions(), tmp_path / "w")
    assert graph.source_format == "onnx" and graph.source_fingerprint == sha256_file(SQUEEZENET)
    assert graph.opset >= 17 and graph.source_opset == 9 and len(graph.inputs) == 1
    assert os.listdir(cwd) == [] and os.listdir(tmp_path / "w") == ["model.onnx"]


def test_suffix_is_case_insensitive_and_path_objects_work(tmp_path):
    upper = tmp_path / "M.ONNX"
    upper.write_bytes(SQUEEZENET.read_bytes())
    assert edgeopt_import(upper, ImportOptions(), tmp_path / "w").source_format == "onnx"


def test_missing_file_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        edgeopt_import(tmp_path / "missing.onnx", ImportOptions(), tmp_path / "w")


@pytest.mark.parametrize("source", ["model.pt", "pkg.mod:factory", "model", 3, object(), np.zeros(2), None])
def test_other_sources_are_not_claimed(tmp_path, source):
    assert edgeopt_import(source, ImportOptions(), tmp_path) is None


def test_registered_as_a_builtin_plugin(tmp_path):
    assert onnx_file.EDGEOPT_HOOK_API == 1
    pm = get_plugin_manager(entry_points=False)
    assert {s.name: s.status for s in pm.plugins()}["edgeopt.importers.onnx_file"] == "ok"
    graph = pm.import_model(SQUEEZENET, ImportOptions(), tmp_path)
    assert graph is not None and graph.path == tmp_path / "model.onnx"
