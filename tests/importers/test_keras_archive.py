"""The Keras importer's checks that need no Keras: archive scanning, trust, layouts, Reshape clean-up.

Archives are written by hand here (a ``.keras`` file is a zip with ``config.json``), shaped exactly like
Keras 3 writes them, so these tests run without Keras installed.
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.errors import MissingExtraError, ModelError, ResourceLimitError, UnsafeModelError
from edgeopt.graph.canonical import plain_reshapes
from edgeopt.graph.layouts import LAYOUTS_KEY, layout_for_rank, read_layouts, stamp_layouts
from edgeopt.importers.keras import check_trust, edgeopt_import, read_archive
from edgeopt.plugin.manager import get_plugin_manager
from edgeopt.types import ImportOptions

DTYPE = {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}


def layer(cls: str, name: str, **config: object) -> dict:
    return {
        "module": "keras.layers",
        "class_name": cls,
        "config": {"name": name, "trainable": True, "dtype": DTYPE, **config},
        "registered_name": None,
        "build_config": {"input_shape": [None, 8, 8, 1]},
    }


def sequential(*layers: dict) -> dict:
    inp = {
        "module": "keras.layers",
        "class_name": "InputLayer",
        "config": {"batch_shape": [None, 8, 8, 1], "dtype": "float32", "name": "input_layer"},
        "registered_name": None,
    }
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "sequential", "trainable": True, "dtype": DTYPE, "layers": [inp, *layers]},
        "registered_name": None,
    }


def write_keras(path: Path, config: dict) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", b"")
    return path


CONV = layer("Conv2D", "conv2d", filters=4, kernel_size=[3, 3], data_format="channels_last", activation="relu")
LAMBDA = layer(
    "Lambda",
    "plus_one",
    function={"class_name": "__lambda__", "config": {"code": "4wEAAAAA", "defaults": None, "closure": None}},
    arguments={},
)
CUSTOM = {**layer("Double", "double"), "module": "mypkg.layers", "registered_name": "mypkg>Double"}
CUSTOM_FN = layer(
    "Dense",
    "dense",
    units=2,
    activation={"module": "builtins", "class_name": "function", "config": "mypkg>myact", "registered_name": "function"},
)
WRAPPED = layer("TorchModuleWrapper", "wrapped", module="gASV...")


def test_plain_keras_model_is_safe_and_channels_last(tmp_path):
    archive = read_archive(write_keras(tmp_path / "m.keras", sequential(CONV)), ImportOptions())
    assert archive.unsafe == () and archive.modules == ()
    assert archive.data_format == "channels_last" and archive.keras_version == "3.15.1"
    check_trust(archive, ImportOptions())  # nothing to refuse


@pytest.mark.parametrize(
    ("part", "mentions"),
    [
        (LAMBDA, "Lambda layer 'plus_one'"),
        (CUSTOM, "custom layer 'mypkg>Double' from module mypkg.layers"),
        (CUSTOM_FN, "custom function 'mypkg>myact'"),
        (WRAPPED, "TorchModuleWrapper layer 'wrapped'"),
    ],
)
def test_code_from_outside_keras_is_refused_unless_trusted(tmp_path, part, mentions):
    path = write_keras(tmp_path / "m.keras", sequential(CONV, part))
    with pytest.raises(UnsafeModelError) as info:
        edgeopt_import(path, ImportOptions(), tmp_path / "work")
    assert mentions in str(info.value) and "safe mode" in str(info.value)
    assert "--trust-code" in info.value.hint
    assert not (tmp_path / "work").exists(), "nothing is written before the file is trusted"
    check_trust(read_archive(path, ImportOptions()), ImportOptions(trust_code=True))  # trusted: let through


def test_custom_modules_are_listed_for_a_trusted_import(tmp_path):
    archive = read_archive(write_keras(tmp_path / "m.keras", sequential(CUSTOM)), ImportOptions())
    assert archive.modules == ("mypkg.layers",)


def test_lambda_is_reported_once(tmp_path):
    archive = read_archive(write_keras(tmp_path / "m.keras", sequential(LAMBDA)), ImportOptions())
    assert archive.unsafe == ("Lambda layer 'plus_one'",)


def test_not_a_zip(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    with pytest.raises(ModelError, match="not a Keras 3 .keras archive") as info:
        edgeopt_import(tmp_path / "m.keras", ImportOptions(), tmp_path)
    assert ".h5" in info.value.hint


def test_zip_without_config(tmp_path):
    with zipfile.ZipFile(tmp_path / "m.keras", "w") as z:
        z.writestr("readme.txt", "hi")
    with pytest.raises(ModelError, match="no config.json"):
        edgeopt_import(tmp_path / "m.keras", ImportOptions(), tmp_path)


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        edgeopt_import(tmp_path / "nope.keras", ImportOptions(), tmp_path)


def test_declared_size_over_the_limit(tmp_path):
    path = write_keras(tmp_path / "m.keras", sequential(CONV))
    with pytest.raises(ResourceLimitError, match="declares"):
        read_archive(path, ImportOptions(max_tensor_bytes=16))


def test_missing_keras_is_a_clear_error(tmp_path, monkeypatch):
    path = write_keras(tmp_path / "m.keras", sequential(CONV))
    monkeypatch.setitem(sys.modules, "keras", None)  # as if Keras were not installed
    with pytest.raises(MissingExtraError, match="needs keras, which is not installed") as info:
        edgeopt_import(path, ImportOptions(), tmp_path / "work")
    assert info.value.hint == "pip install 'edgeopt[keras]'"


@pytest.mark.parametrize("source", ["model.onnx", "pkg.mod:factory", "model.h5", 3, object()])
def test_other_sources_are_not_claimed(tmp_path, source):
    assert edgeopt_import(source, ImportOptions(), tmp_path) is None


def test_registered_as_a_builtin_plugin():
    statuses = {s.name: s for s in get_plugin_manager(entry_points=False).plugins()}
    assert statuses["edgeopt.importers.keras"].status == "ok" and statuses["edgeopt.importers.keras"].builtin


def test_layout_names():
    assert layout_for_rank("channels_last", 4) == "NHWC" and layout_for_rank("channels_first", 4) == "NCHW"
    assert layout_for_rank("channels_last", 3) == "NWC" and layout_for_rank("channels_first", 5) == "NCDHW"
    assert layout_for_rank("channels_last", 2) is None


def _reshape_model(shape: list[int], allowzero: int) -> onnx.ModelProto:
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=allowzero)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(shape, np.int64), "shape")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def test_plain_reshapes_drops_allowzero_only_where_it_changes_nothing():
    model = _reshape_model([1, 6], 1)
    assert plain_reshapes(model) == 1 and model.graph.node[0].attribute[0].i == 0
    kept = _reshape_model([0, 6], 1)  # a 0 in the shape means "copy" only without allowzero: keep it
    assert plain_reshapes(kept) == 0 and kept.graph.node[0].attribute[0].i == 1


def test_layouts_round_trip_through_the_model_file(tmp_path):
    model = _reshape_model([1, 6], 0)
    stamp_layouts(model, {"x": "NHWC"})
    stamp_layouts(model, {"x": "NCHW"})  # replaces, never duplicates
    assert [p.key for p in model.metadata_props] == [LAYOUTS_KEY]
    onnx.save(model, tmp_path / "m.onnx")
    assert read_layouts(tmp_path / "m.onnx") == {"x": "NCHW"}
    (tmp_path / "other.tflite").write_bytes(b"TFL3 not onnx")
    assert read_layouts(tmp_path / "other.tflite") == {}
