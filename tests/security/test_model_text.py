"""Names and strings that are not valid UTF-8 are refused at load in one line, like any other malformed model.

Found by fuzzing ``deploy`` (issue 22): a tensor name that is not valid UTF-8 got through the import (protobuf
hands it back as ``bytes``) and ended in a ``UnicodeDecodeError`` traceback from ``edgeopt/data/feeds.py`` when ONNX
Runtime's ``NodeArg.name`` decoded it. Python's protobuf refuses to set such a string, so the models here are
edited after serialization (a placeholder of the same length replaced by invalid bytes).
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from edgeopt.errors import ModelError, UnsafeModelError
from edgeopt.graph.model_io import load_onnx
from edgeopt.graph.normalize import normalize
from edgeopt.graph.utf8 import check_text, invalid_text
from edgeopt.types import ImportOptions
from tests.security.fuzz_mutators_names import INVALID_UTF8, PLACEHOLDER, rename_everywhere
from tests.security.helpers import FAST, assert_one_line_error, external_weight, matmul_model, run_cli


def _with_invalid(model: onnx.ModelProto, path: Path) -> Path:
    """``model`` written to ``path`` with every ``PLACEHOLDER`` turned into invalid UTF-8."""
    data = model.SerializeToString()
    assert PLACEHOLDER.encode() in data
    path.write_bytes(data.replace(PLACEHOLDER.encode(), INVALID_UTF8))
    return path


def _renamed(old: str) -> onnx.ModelProto:
    model = matmul_model()
    rename_everywhere(model, old, PLACEHOLDER)
    return model


@pytest.mark.parametrize(("edit", "field"), [
    (lambda: _renamed("y"), "graph.output[0].name"),
    (lambda: _renamed("x"), "graph.input[0].name"),
    (lambda: _renamed("w"), ".initializer[0].name"),
    (lambda: _doc(matmul_model()), "graph.node[0].doc_string"),
])
def test_a_name_or_string_that_is_not_utf8_is_refused_at_load(edit, field, tmp_path) -> None:
    path = _with_invalid(edit(), tmp_path / "m.onnx")
    with pytest.raises(ModelError) as info:
        load_onnx(path, options=ImportOptions())
    assert type(info.value) is ModelError and info.value.code == "E100"
    assert "not valid UTF-8" in info.value.message and field in info.value.message
    assert info.value.hint


def _doc(model: onnx.ModelProto) -> onnx.ModelProto:
    model.graph.node[0].doc_string = PLACEHOLDER
    return model


def test_string_attributes_and_string_tensors_must_be_utf8_too() -> None:
    """ONNX declares ``AttributeProto.s``/``strings`` and ``TensorProto.string_data`` UTF-8 (they are bytes)."""
    node = helper.make_node("Pad", ["x", "p"], ["y"], mode=b"\xffreflect")
    assert [p for p, _ in invalid_text(node)] == ["attribute[0].s"]
    tensor = helper.make_tensor("t", TensorProto.STRING, [2], [b"ok", b"\xc0\xaf"])
    assert [p for p, _ in invalid_text(tensor)] == ["string_data[1]"]
    with pytest.raises(ModelError, match=r"string_data\[1\]"):
        check_text(tensor)
    check_text(helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect"))  # valid: nothing raised


def test_an_external_data_reference_that_is_not_utf8_stays_an_unsafe_model(tmp_path) -> None:
    model = matmul_model(external_weight("w", [16, 4], location=PLACEHOLDER))
    path = _with_invalid(model, tmp_path / "m.onnx")
    with pytest.raises(UnsafeModelError, match="external data file that is not valid UTF-8"):
        load_onnx(path, options=ImportOptions())


def test_valid_unicode_names_import_and_keep_their_names(tmp_path) -> None:
    model = matmul_model()
    rename_everywhere(model, "x", "entrée 😀")
    rename_everywhere(model, "y", "выход/α")
    graph = normalize(model, source_fingerprint="t", source_format="onnx", options=ImportOptions(),
                      workdir=tmp_path / "w")
    assert [s.name for s in graph.inputs] == ["entrée 😀"] and [s.name for s in graph.outputs] == ["выход/α"]


def test_the_cli_refuses_an_invalid_utf8_tensor_name_in_one_line(tmp_path) -> None:
    path = _with_invalid(_renamed("y"), tmp_path / "bad.onnx")
    result = run_cli("deploy", str(path), *FAST, "--out", "a.edgeopt", cwd=tmp_path, env={"EDGEOPT_REGISTRY": "off"})
    assert_one_line_error(result, code="E100", mentions=["not valid UTF-8", "graph.output[0].name"], cwd=tmp_path)


def test_in_memory_models_from_importers_are_checked_at_normalize(tmp_path) -> None:
    """normalize() runs the same check for a ModelProto an importer built (torch, Keras, skl2onnx)."""
    model = onnx.load_from_string(_with_invalid(_renamed("y"), tmp_path / "m.onnx").read_bytes())
    with pytest.raises(ModelError, match="not valid UTF-8"):
        normalize(model, source_fingerprint="t", source_format="torch", options=ImportOptions(),
                  workdir=tmp_path / "w")
