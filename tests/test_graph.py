"""edgeopt.graph: safe loading, normalization of real opset-9 models, inspection, fingerprints."""

from __future__ import annotations

import json
import os
import tracemalloc
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgeopt.errors import InputSpecError, ModelError, ResourceLimitError, UnsafeModelError, UnsupportedModelError
from edgeopt.graph.inspect import inspect_model
from edgeopt.graph.model_io import load_model, load_onnx
from edgeopt.graph.normalize import normalize
from edgeopt.hashing import sha256_bytes, sha256_file
from edgeopt.types import ImportOptions

LIGHT = Path(onnx.__file__).parent / "backend" / "test" / "data" / "light"
LIGHT_MODELS = ("light_squeezenet", "light_resnet50")
OPTS = ImportOptions()


def _run(path_or_model: Path | onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    source = str(path_or_model) if isinstance(path_or_model, Path) else path_or_model.SerializeToString()
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _normalize_file(path: Path, workdir: Path, options: ImportOptions = OPTS):
    model = load_onnx(path, options=options)
    return normalize(
        model,
        source_fingerprint=sha256_file(path),
        source_format="onnx",
        options=options,
        workdir=workdir,
        base_dir=path.parent,
    )


def _tiny(
    nodes, inputs, outputs, *, initializers=(), opset: int = 17, ir_version: int | None = None, domains=()
) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "tiny", inputs, outputs, initializer=list(initializers))
    opsets = [helper.make_opsetid("", opset), *(helper.make_opsetid(d, 1) for d in domains)]
    model = helper.make_model(graph, opset_imports=opsets)
    if ir_version is not None:
        model.ir_version = ir_version
    return model


def _relu_model(shape) -> onnx.ModelProto:
    return _tiny(
        [helper.make_node("Relu", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )


def _randomized(model: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """The light model with every ConstantOfShape weight replaced by random values (IR v3 layout kept)."""
    rng = np.random.default_rng(seed)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    shapes = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    keep = []
    for node in out.graph.node:
        if node.op_type != "ConstantOfShape":
            keep.append(node)
            continue
        dims = [int(d) for d in shapes[node.input[0]]]
        values = rng.uniform(0.01, 0.03, size=dims).astype(np.float32)
        out.graph.initializer.append(numpy_helper.from_array(values, node.output[0]))
        out.graph.input.append(helper.make_tensor_value_info(node.output[0], TensorProto.FLOAT, dims))
    del out.graph.node[:]
    out.graph.node.extend(keep)
    return out


@pytest.fixture(scope="module")
def light_graphs(tmp_path_factory):
    root = tmp_path_factory.mktemp("light")
    return {name: _normalize_file(LIGHT / f"{name}.onnx", root / name) for name in LIGHT_MODELS}


# --- normalization of real models -----------------------------------------------------------------


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_normalizes_to_a_checked_opset17_graph(light_graphs, name):
    graph = light_graphs[name]
    model = onnx.load(str(graph.path))
    onnx.checker.check_model(str(graph.path), full_check=True)
    assert graph.opset >= 17 and graph.source_opset == 9
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")][0] >= 17
    assert len(graph.inputs) == 1 and len(model.graph.input) == 1
    assert graph.inputs[0].is_static and graph.inputs[0].dtype == "float32"
    assert not {t.name for t in model.graph.initializer} & {i.name for i in model.graph.input}
    ops = {n.op_type for n in model.graph.node}
    assert "ConstantOfShape" not in ops and "Conv" in ops
    assert len(model.graph.initializer) > 0  # the folded weights
    assert graph.fingerprint == sha256_file(graph.path)
    assert graph.source_fingerprint == sha256_file(LIGHT / f"{name}.onnx")
    assert graph.path.name == "model.onnx" and sorted(os.listdir(graph.path.parent)) == ["model.onnx"]
    assert all(v.type.tensor_type.HasField("shape") for v in model.graph.output)


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_light_model_output_matches_the_original(light_graphs, name):
    graph = light_graphs[name]
    x = np.random.default_rng(0).random((1, 3, 224, 224), dtype=np.float32)
    reference = _run(LIGHT / f"{name}.onnx", {graph.inputs[0].name: x})
    normalized = _run(graph.path, {graph.inputs[0].name: x})
    assert len(reference) == len(normalized)
    for ref, got in zip(reference, normalized, strict=True):
        assert ref.shape == got.shape
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", LIGHT_MODELS)
def test_random_weights_survive_opset_upgrade_and_simplification(tmp_path, name):
    original = _randomized(onnx.load(str(LIGHT / f"{name}.onnx")), seed=1)
    graph = normalize(original, source_fingerprint="x", source_format="onnx", options=OPTS, workdir=tmp_path)
    x = np.random.default_rng(2).random((1, 3, 224, 224), dtype=np.float32)
    ref = _run(original, {graph.inputs[0].name: x})[0]
    got = _run(graph.path, {graph.inputs[0].name: x})[0]
    assert np.std(ref) > 1e-6, "outputs must differ across classes for the comparison to mean anything"
    np.testing.assert_allclose(got, ref, rtol=1e-3, atol=1e-6)
    assert {n.op_type for n in onnx.load(str(graph.path)).graph.node}.isdisjoint({"BatchNormalization"})


def test_normalize_leaves_the_callers_model_alone_and_writes_only_in_workdir(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    model = onnx.load(str(LIGHT / "light_squeezenet.onnx"))
    before = model.SerializeToString()
    graph = normalize(model, source_fingerprint="x", source_format="onnx", options=OPTS, workdir=tmp_path / "w")
    assert model.SerializeToString() == before
    assert os.listdir(cwd) == []
    assert sorted(os.listdir(tmp_path)) == ["cwd", "w"]
    assert os.listdir(tmp_path / "w") == ["model.onnx"] and graph.path == tmp_path / "w" / "model.onnx"


def test_normalize_without_simplify_keeps_constant_of_shape(tmp_path):
    options = ImportOptions(simplify=False)
    graph = _normalize_file(LIGHT / "light_squeezenet.onnx", tmp_path, options)
    ops = {n.op_type for n in onnx.load(str(graph.path)).graph.node}
    assert "ConstantOfShape" in ops and graph.opset == 17


def test_simplifier_failure_falls_back_with_a_note(tmp_path, monkeypatch):
    import onnxslim

    def broken(model, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(onnxslim, "slim", broken)
    graph = _normalize_file(LIGHT / "light_squeezenet.onnx", tmp_path)
    assert graph.notes == ("onnxslim could not simplify the graph (boom); kept it unsimplified",)
    assert "ConstantOfShape" in {n.op_type for n in onnx.load(str(graph.path)).graph.node}
    assert sorted(os.listdir(tmp_path)) == ["model.onnx"]


# --- dynamic dims and --input-shape ---------------------------------------------------------------


def test_dynamic_dim_is_fixed_with_a_note(tmp_path):
    graph = normalize(
        _relu_model(["batch", 4]), source_fingerprint="x", source_format="onnx", options=OPTS, workdir=tmp_path
    )
    assert graph.inputs[0].shape == (1, 4) and graph.outputs[0].shape == (1, 4)
    assert graph.notes == ("input x dim 0 'batch' was dynamic; fixed to 1, pass --input-shape to choose",)


def test_input_shape_fixes_dynamic_dims(tmp_path):
    options = ImportOptions(input_shapes={"": (3, 4)})
    graph = normalize(
        _relu_model(["batch", 4]), source_fingerprint="x", source_format="onnx", options=options, workdir=tmp_path
    )
    assert graph.inputs[0].shape == (3, 4) and graph.outputs[0].shape == (3, 4) and graph.notes == ()
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(_run(graph.path, {"x": x})[0], np.maximum(x, 0))


@pytest.mark.parametrize(
    ("shapes", "needle"),
    [
        ({"": (1, 4, 1)}, "expects shape batchx4 (rank 2), given 1x4x1 (rank 3)"),
        ({"x": (2, 5)}, "expects shape batchx4"),
        ({"nope": (1, 4)}, "no input named 'nope'"),
        ({"x": (0, 4)}, "must be >= 1"),
    ],
)
def test_contradicting_input_shape_is_an_input_spec_error(tmp_path, shapes, needle):
    with pytest.raises(InputSpecError) as info:
        normalize(
            _relu_model(["batch", 4]),
            source_fingerprint="x",
            source_format="onnx",
            options=ImportOptions(input_shapes=shapes),
            workdir=tmp_path,
        )
    assert needle in str(info.value) and info.value.code == "E200"


def test_unnamed_shape_for_a_two_input_model_is_refused(tmp_path):
    model = _tiny(
        [helper.make_node("Add", ["a", "b"], ["y"])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 2]) for n in ("a", "b")],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 2])],
    )
    with pytest.raises(InputSpecError, match="2 inputs"):
        normalize(
            model,
            source_fingerprint="x",
            source_format="onnx",
            options=ImportOptions(input_shapes={"": (1, 2)}),
            workdir=tmp_path,
        )


# --- bad files ------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found") as info:
        load_onnx(tmp_path / "nope.onnx", options=OPTS)
    _one_line(info.value)


def test_random_bytes(tmp_path):
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelError, match="not a valid ONNX model") as info:
        load_onnx(path, options=OPTS)
    assert type(info.value) is ModelError
    _one_line(info.value)


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9])
def test_truncated_model(tmp_path, fraction):
    data = (LIGHT / "light_squeezenet.onnx").read_bytes()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(ModelError) as info:
        _normalize_file(path, tmp_path / "w")
    _one_line(info.value)


def test_custom_domain_is_refused_unless_allowed(tmp_path):
    model = _tiny(
        [helper.make_node("Foo", ["x"], ["t"], domain="com.example"), helper.make_node("Relu", ["t"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        domains=["com.example"],
    )
    path = tmp_path / "custom.onnx"
    onnx.save(model, str(path))
    with pytest.raises(UnsupportedModelError, match="com.example::Foo") as info:
        load_onnx(path, options=OPTS)
    assert info.value.code == "E130"
    with pytest.raises(UnsupportedModelError):
        normalize(model, source_fingerprint="x", source_format="onnx", options=OPTS, workdir=tmp_path / "w")
    assert load_onnx(path, options=ImportOptions(allow_custom_ops=True)).graph.node[0].domain == "com.example"


def test_opset_upgrade_failure_names_the_op(tmp_path):
    # onnx's version converter has no adapter for GlobalLpPool-1 (a valid opset-1 model)
    model = _tiny(
        [helper.make_node("GlobalLpPool", ["x"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 1, 1])],
        opset=1,
    )
    onnx.checker.check_model(model, full_check=True)
    with pytest.raises(UnsupportedModelError) as info:
        normalize(model, source_fingerprint="x", source_format="onnx", options=OPTS, workdir=tmp_path)
    assert str(info.value) == "cannot upgrade the model from opset 1 to 17: op GlobalLpPool failed to convert"
    assert "opset_version=17" in info.value.hint


# --- resource limits ------------------------------------------------------------------------------


def _huge_constant_of_shape() -> onnx.ModelProto:
    shape = numpy_helper.from_array(np.array([100000, 100000], dtype=np.int64), "shape")
    return _tiny(
        [helper.make_node("ConstantOfShape", ["shape"], ["big"]), helper.make_node("Add", ["x", "big"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 100000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [100000, 100000])],
        initializers=[shape],
    )


def test_huge_constant_of_shape_is_refused_without_allocating(tmp_path):
    path = tmp_path / "huge.onnx"
    model = _huge_constant_of_shape()
    onnx.save(model, str(path))
    tracemalloc.start()
    try:
        with pytest.raises(ResourceLimitError, match="'big' declares 37.3 GiB") as info:
            load_onnx(path, options=OPTS)
        with pytest.raises(ResourceLimitError):
            normalize(model, source_fingerprint="x", source_format="onnx", options=OPTS, workdir=tmp_path / "w")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024**2
    assert info.value.code == "E120"


def test_folding_that_would_create_a_huge_tensor_is_refused(tmp_path):
    inits = [
        numpy_helper.from_array(np.ones(1, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array([50000, 50000], dtype=np.int64), "shape"),
    ]
    model = _tiny(
        [helper.make_node("Expand", ["one", "shape"], ["big"]), helper.make_node("Add", ["x", "big"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 50000])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [50000, 50000])],
        initializers=inits,
    )
    options = ImportOptions(max_tensor_bytes=1024**3)
    assert load_onnx(_save(model, tmp_path / "expand.onnx"), options=options)  # nothing declared is too big
    tracemalloc.start()
    try:
        with pytest.raises(ResourceLimitError, match="folding constants into 'big'"):
            normalize(model, source_fingerprint="x", source_format="onnx", options=options, workdir=tmp_path / "w")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024**2


def test_initializer_over_the_limit(tmp_path):
    weight = numpy_helper.from_array(np.zeros((64, 64), dtype=np.float32), "w")
    model = _tiny(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64])],
        initializers=[weight],
    )
    path = _save(model, tmp_path / "m.onnx")
    with pytest.raises(ResourceLimitError, match="tensor 'w' declares 16.0 KiB"):
        load_onnx(path, options=ImportOptions(max_tensor_bytes=8 * 1024))
    assert load_onnx(path, options=ImportOptions(max_tensor_bytes=16 * 1024))


def _save(model: onnx.ModelProto, path: Path) -> Path:
    onnx.save(model, str(path))
    return path


# --- external data --------------------------------------------------------------------------------


def _external_model(folder: Path) -> tuple[Path, np.ndarray]:
    """A MatMul model whose 32x32 weight lives in ``folder/weights.bin``."""
    folder.mkdir(parents=True, exist_ok=True)
    w = np.random.default_rng(3).standard_normal((32, 32)).astype(np.float32)
    model = _tiny(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])],
        initializers=[numpy_helper.from_array(w, "w")],
    )
    path = folder / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin", size_threshold=0)
    return path, w


def _relocate(path: Path, location: str) -> None:
    model = onnx.load(str(path), load_external_data=False)
    for entry in model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    onnx.save(model, str(path))


def test_external_data_inside_the_folder_loads(tmp_path):
    path, w = _external_model(tmp_path / "m")
    graph = _normalize_file(path, tmp_path / "w")
    x = np.ones((1, 32), dtype=np.float32)
    np.testing.assert_allclose(_run(graph.path, {"x": x})[0], x @ w, rtol=1e-5, atol=1e-5)
    assert os.listdir(tmp_path / "w") == ["model.onnx"]  # weights are inside the normalized file


def test_external_data_symlink_inside_the_folder_is_fine(tmp_path):
    path, _ = _external_model(tmp_path / "m")
    (tmp_path / "m" / "sub").mkdir()
    (tmp_path / "m" / "weights.bin").rename(tmp_path / "m" / "sub" / "real.bin")
    (tmp_path / "m" / "weights.bin").symlink_to(tmp_path / "m" / "sub" / "real.bin")
    assert load_onnx(path, options=OPTS).graph.initializer[0].raw_data


@pytest.mark.parametrize("how", ["dotdot", "absolute", "symlink", "hardlink"])
def test_external_data_escaping_the_folder_is_refused(tmp_path, how):
    path, _ = _external_model(tmp_path / "m")
    outside = tmp_path / "outside.bin"
    (tmp_path / "m" / "weights.bin").rename(outside)
    if how == "dotdot":
        _relocate(path, "../outside.bin")
    elif how == "absolute":
        _relocate(path, str(outside))
    elif how == "symlink":
        (tmp_path / "m" / "weights.bin").symlink_to(outside)
    else:
        os.link(outside, tmp_path / "m" / "weights.bin")
    with pytest.raises(UnsafeModelError) as info:
        load_onnx(path, options=OPTS)
    assert info.value.code == "E110"
    _one_line(info.value)


def test_external_data_with_wrong_length_or_missing_file(tmp_path):
    path, _ = _external_model(tmp_path / "m")
    with open(tmp_path / "m" / "weights.bin", "r+b") as fh:
        fh.truncate(100)
    with pytest.raises(ModelError, match="points past the end|needs 4096"):
        load_onnx(path, options=OPTS)
    (tmp_path / "m" / "weights.bin").unlink()
    with pytest.raises(ModelError, match="not found"):
        load_onnx(path, options=OPTS)


def test_large_models_are_saved_with_external_data_in_workdir(tmp_path, monkeypatch):
    import edgeopt.graph.model_io

    monkeypatch.setattr(edgeopt.graph.model_io, "LARGE_MODEL_BYTES", 1024)  # the 4 KiB weight counts as "large"
    path, w = _external_model(tmp_path / "m")
    graph = _normalize_file(path, tmp_path / "w")
    assert sorted(os.listdir(tmp_path / "w")) == ["model.onnx", "model.onnx.data"]
    assert graph.fingerprint == sha256_file(graph.path, tmp_path / "w" / "model.onnx.data")
    x = np.ones((1, 32), dtype=np.float32)
    np.testing.assert_allclose(_run(graph.path, {"x": x})[0], x @ w, rtol=1e-5, atol=1e-5)
    assert numpy_helper.to_array(load_model(graph).graph.initializer[0]).shape == (32, 32)
    (tmp_path / "w" / "model.onnx.data").write_bytes(b"\0" * 4096)
    with pytest.raises(ModelError, match="changed since it was imported"):
        load_model(graph)


def test_normalize_needs_base_dir_for_unloaded_external_data(tmp_path):
    path, _ = _external_model(tmp_path / "m")
    model = onnx.load(str(path), load_external_data=False)
    with pytest.raises(ModelError, match="external data"):
        normalize(model, source_fingerprint="x", source_format="onnx", options=OPTS, workdir=tmp_path / "w")
    graph = normalize(
        model, source_fingerprint="x", source_format="onnx", options=OPTS, workdir=tmp_path / "w", base_dir=path.parent
    )
    assert graph.inputs[0].shape == (1, 32)


# --- load_model, fingerprints, inspect ------------------------------------------------------------


def test_load_model_checks_the_fingerprint(tmp_path):
    graph = normalize(_relu_model([2, 3]), source_fingerprint="x", source_format="onnx", options=OPTS, workdir=tmp_path)
    assert load_model(graph).graph.node[0].op_type == "Relu"
    graph.path.write_bytes(graph.path.read_bytes() + b"\x00")
    with pytest.raises(ModelError, match="changed since it was imported"):
        load_model(graph)


def test_sha256_helpers(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert sha256_bytes(b"abc") == sha256_file(tmp_path / "f") == expected


def test_inspect_resnet50(light_graphs):
    summary = inspect_model(onnx.load(str(light_graphs["light_resnet50"].path)))
    assert summary.opset == 17 and summary.ir_version >= 8 and summary.producer.startswith("onnx-caffe2")
    assert summary.op_histogram["Conv"] == 53 and "BatchNormalization" not in summary.op_histogram
    assert 25.4e6 < summary.params < 25.7e6  # ResNet-50: 25.5 M parameters
    assert 0 <= summary.weight_bytes - 4 * summary.params <= 64  # float32 weights plus a Reshape shape (int64)
    assert 7.6e9 < summary.flops < 8.8e9  # ~4.1 GMACs
    assert summary.activation_bytes > 50e6 and summary.input_bytes == 3 * 224 * 224 * 4
    assert summary.dynamic_dims == () and summary.unestimated_ops == ()
    data = json.loads(json.dumps(summary.to_dict()))
    assert data["inputs"] == [{"name": "gpu_0/data_0", "dtype": "float32", "shape": [1, 3, 224, 224]}]


def test_inspect_counts_flops_exactly_on_a_tiny_graph():
    w = numpy_helper.from_array(np.ones((3, 5), dtype=np.float32), "w")
    model = _tiny(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2, 5])],
        initializers=[w],
    )
    summary = inspect_model(model)
    assert summary.flops == 2 * (2 * 5) * 3 + 2 * 5  # per unit of the dynamic batch
    assert summary.params == 15 and summary.weight_bytes == 60
    assert summary.activation_bytes == 2 * (2 * 5 * 4)
    assert summary.dynamic_dims == (("x", 0, "batch"), ("y", 0, "batch"))
    assert summary.to_dict()["dynamic_dims"][0] == {"tensor": "x", "axis": 0, "name": "batch"}


def test_reshape_allowzero_is_dropped_only_where_it_changes_nothing(tmp_path):
    """Converters (onnx2torch, TFLite paths) refuse allowzero=1; with a constant target shape holding no 0 it is
    a no-op and normalization drops it; with a shape known only at run time it stays."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 6])
    s = helper.make_tensor_value_info("s", TensorProto.INT64, [2])
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Reshape", ["r", "plain"], ["a"], allowzero=1),
             helper.make_node("Reshape", ["a", "s"], ["y"], allowzero=1)]
    inits = [numpy_helper.from_array(np.array([3, 4], np.int64), "plain")]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["d0", "d1"])
    model = _tiny(nodes, [x, s], [y], initializers=inits, opset=17)
    graph = normalize(model, source_fingerprint="t", source_format="onnx", options=ImportOptions(simplify=False),
                      workdir=tmp_path)
    reshapes = [n for n in load_model(graph).graph.node if n.op_type == "Reshape"]
    assert [next((a.i for a in n.attribute if a.name == "allowzero"), 0) for n in reshapes] == [0, 1]
    feeds = {"x": np.arange(12, dtype=np.float32).reshape(2, 6) - 6, "s": np.array([4, 3], np.int64)}
    np.testing.assert_array_equal(_run(graph.path, feeds)[0], _run(model, feeds)[0])


def _if_reshape_model() -> onnx.ModelProto:
    """x [n, m] reshaped to [-1, 4] or [-1, 3] by an If on ``flag``: valid with dynamic dims, while fixed ones
    make one branch's shape inference fail in ONNX Runtime (the pattern of a sample-rate switch around an LSTM)."""

    def branch(name: str, cols: int) -> onnx.GraphProto:
        shape = numpy_helper.from_array(np.array([-1, cols], np.int64), f"{name}_shape")
        out = helper.make_tensor_value_info(f"{name}_y", TensorProto.FLOAT, ["rows", cols])
        return helper.make_graph([helper.make_node("Reshape", ["x", f"{name}_shape"], [f"{name}_y"])], name, [],
                                 [out], [shape])

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", "m"])
    flag = helper.make_tensor_value_info("flag", TensorProto.BOOL, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["rows", "cols"])
    node = helper.make_node("If", ["flag"], ["y"], name="switch", then_branch=branch("then", 4),
                            else_branch=branch("else", 3))
    return helper.make_model(helper.make_graph([node], "g", [x, flag], [y]),
                             opset_imports=[helper.make_opsetid("", 17)])


def test_fixed_dims_that_onnx_runtime_refuses_are_kept_dynamic_and_fed_fixed(tmp_path: Path) -> None:
    options = ImportOptions(input_shapes={"x": (1, 6)})
    graph = normalize(_if_reshape_model(), source_fingerprint="x", source_format="onnx", options=options,
                      workdir=tmp_path)
    assert any("keeps its own dynamic dims" in n for n in graph.notes)
    assert graph.input("x").shape == (1, 6)  # what the deploy feeds
    saved = onnx.load(graph.path)
    assert [d.dim_value for d in saved.graph.input[0].type.tensor_type.shape.dim] == [0, 0]  # dynamic in the file
    session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": np.arange(6, dtype=np.float32).reshape(1, 6), "flag": np.array(False)})
    assert y.shape == (2, 3)


def test_fixed_dims_are_kept_when_onnx_runtime_loads_them(tmp_path: Path) -> None:
    options = ImportOptions(input_shapes={"x": (1, 12)})  # both branches divide 12
    graph = normalize(_if_reshape_model(), source_fingerprint="x", source_format="onnx", options=options,
                      workdir=tmp_path)
    assert not any("dynamic dims" in n for n in graph.notes)
    saved = onnx.load(graph.path)
    assert [d.dim_value for d in saved.graph.input[0].type.tensor_type.shape.dim] == [1, 12]
