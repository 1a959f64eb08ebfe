"""Calibration/evaluation data loading and validation (edgeopt.data.datasets)."""

from __future__ import annotations

import itertools
import json
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from edgeopt.data.datasets import load_dataset, synthetic_dataset
from edgeopt.errors import DataError
from edgeopt.types import Dataset, Graph, TensorSpec


def _graph(*inputs: TensorSpec) -> Graph:
    return Graph(
        path=Path("model.onnx"), fingerprint="f" * 64, source_fingerprint="s" * 64, source_format="onnx", opset=17,
        inputs=tuple(inputs), outputs=(TensorSpec("y", "float32", (1, 10)),),
    )


IMG = TensorSpec("image", "float32", (1, 3, 4, 4))
IDS = TensorSpec("ids", "int64", (1, 6))
ONE = _graph(IMG)
TWO = _graph(IMG, IDS)


def _npz(tmp_path: Path, name: str = "data.npz", **arrays: np.ndarray) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_npz_roundtrip_casts_and_keeps_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.standard_normal((5, 3, 4, 4))  # float64 on disk
    ids = rng.integers(0, 100, size=(5, 6)).astype(np.int32)
    labels = np.arange(5)
    ds = load_dataset(_npz(tmp_path, image=image, ids=ids, labels=labels), TWO, purpose="calibration")
    assert ds.arrays["image"].dtype == np.float32 and ds.arrays["ids"].dtype == np.int64
    np.testing.assert_allclose(ds.arrays["image"], image.astype(np.float32))
    np.testing.assert_array_equal(ds.arrays["ids"], ids)
    np.testing.assert_array_equal(ds.labels, labels)
    assert len(ds) == 5 and not ds.synthetic and ds.source.endswith("data.npz")
    assert [b["image"].shape for b in ds.batches(2)] == [(2, 3, 4, 4), (2, 3, 4, 4)]


def test_single_input_model_accepts_any_key(tmp_path: Path) -> None:
    x = np.zeros((3, 3, 4, 4), np.float32)
    ds = load_dataset(_npz(tmp_path, whatever=x, labels=np.zeros(3, np.int64)), ONE, purpose="evaluation")
    assert set(ds.arrays) == {"image"} and ds.labels is not None


def test_npy_for_single_input(tmp_path: Path) -> None:
    np.save(tmp_path / "x.npy", np.ones((2, 3, 4, 4), np.float32))
    assert len(load_dataset(tmp_path / "x.npy", ONE, purpose="calibration")) == 2


def test_key_mismatch_names_expected_and_found(tmp_path: Path) -> None:
    path = _npz(tmp_path, image=np.zeros((2, 3, 4, 4)), tokens=np.zeros((2, 6)))
    with pytest.raises(DataError) as info:
        load_dataset(path, TWO, purpose="calibration")
    msg = str(info.value)
    assert "calibration data" in msg and "['image', 'ids']" in msg and "tokens" in msg
    assert "missing ['ids']" in msg and "unexpected ['tokens']" in msg
    assert info.value.hint


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="evaluation data not found"):
        load_dataset(tmp_path / "nope.npz", ONE, purpose="evaluation")
    (tmp_path / "data.csv").write_text("1,2,3")
    with pytest.raises(DataError, match="not an .npz/.npy file"):
        load_dataset(tmp_path / "data.csv", ONE, purpose="evaluation")
    (tmp_path / "broken.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DataError, match="not a readable"):
        load_dataset(tmp_path / "broken.npz", ONE, purpose="evaluation")


def test_per_sample_dims_mismatch_is_explained(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_dataset(_npz(tmp_path, image=np.zeros((2, 3, 5, 4))), ONE, purpose="calibration")
    msg = str(info.value)
    assert "'image'" in msg and "(N, 3, 4, 4)" in msg and "(2, 3, 5, 4)" in msg
    with pytest.raises(DataError, match=r"got \(3, 4, 4\)"):  # a single sample without the batch axis
        load_dataset(_npz(tmp_path, image=np.zeros((3, 4, 4))), ONE, purpose="calibration")


def test_dynamic_dims_accept_any_size() -> None:
    graph = _graph(TensorSpec("tokens", "int64", ("batch", "seq")))
    ds = load_dataset({"tokens": np.ones((4, 17), np.int64)}, graph, purpose="evaluation")
    assert ds.arrays["tokens"].shape == (4, 17)


@pytest.mark.parametrize(
    ("dtype", "values", "ok"),
    [
        ("float32", np.arange(6, dtype=np.int64), True),
        ("float16", np.array([1e6, 0, 0, 0, 0, 0]), False),  # would become inf
        ("int64", np.arange(6, dtype=np.float64), True),  # integral floats
        ("int64", np.arange(6) + 0.5, False),
        ("int64", np.array([np.nan, 0, 0, 0, 0, 0]), False),
        ("uint8", np.array([300, 0, 0, 0, 0, 0]), False),
        ("int32", np.arange(6, dtype=np.int64), True),
        ("bool", np.array([0, 1, 1, 0, 0, 1]), True),
        ("bool", np.array([0, 2, 1, 0, 0, 1]), False),
    ],
)
def test_dtype_casts_only_when_lossless(dtype: str, values: np.ndarray, ok: bool) -> None:
    graph = _graph(TensorSpec("x", dtype, (1, 1)))
    source = {"x": values.reshape(6, 1)}
    if ok:
        ds = load_dataset(source, graph, purpose="calibration")
        assert ds.arrays["x"].dtype == np.dtype(dtype)
        np.testing.assert_array_equal(ds.arrays["x"].ravel(), values.astype(dtype))
    else:
        with pytest.raises(DataError, match=f"expects {np.dtype(dtype).name}.*refusing to convert"):
            load_dataset(source, graph, purpose="calibration")


def test_sample_counts_must_agree(tmp_path: Path) -> None:
    path = _npz(tmp_path, image=np.zeros((3, 3, 4, 4)), ids=np.zeros((2, 6), np.int64))
    with pytest.raises(DataError, match="different numbers of samples"):
        load_dataset(path, TWO, purpose="evaluation")
    path = _npz(tmp_path, image=np.zeros((3, 3, 4, 4)), labels=np.zeros(4))
    with pytest.raises(DataError, match="4 labels for 3 samples"):
        load_dataset(path, ONE, purpose="evaluation")
    with pytest.raises(DataError, match="no samples"):
        load_dataset({"image": np.zeros((0, 3, 4, 4))}, ONE, purpose="evaluation")


def test_pickled_object_arrays_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "evil.npz"
    np.savez(path, image=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DataError, match="pickled"):
        load_dataset(path, ONE, purpose="calibration")
    np.save(tmp_path / "evil.npy", np.array([1, "x", None], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="pickled"):
        load_dataset(tmp_path / "evil.npy", ONE, purpose="calibration")
    (tmp_path / "raw.npy").write_bytes(pickle.dumps({"image": np.zeros(3)}))
    with pytest.raises(DataError, match="pickled"):
        load_dataset(tmp_path / "raw.npy", ONE, purpose="calibration")
    with pytest.raises(DataError, match="object arrays"):
        load_dataset({"image": np.array([object()] * 2)}, ONE, purpose="calibration")


def test_max_samples_keeps_the_first(tmp_path: Path) -> None:
    x = np.arange(10 * 48, dtype=np.float32).reshape(10, 3, 4, 4)
    ds = load_dataset(_npz(tmp_path, image=x, labels=np.arange(10)), ONE, purpose="calibration", max_samples=4)
    assert len(ds) == 4 and list(ds.labels) == [0, 1, 2, 3]
    np.testing.assert_array_equal(ds.arrays["image"], x[:4])


def test_iterable_of_feeds_is_stacked() -> None:
    feeds = [
        {"image": np.zeros((1, 3, 4, 4)), "ids": np.zeros((1, 6), np.int64), "labels": np.array([7])},
        {"image": np.ones((3, 3, 4, 4)), "ids": np.ones((3, 6), np.int64), "labels": np.array([1, 2, 3])},
    ]
    ds = load_dataset(iter(feeds), TWO, purpose="calibration")
    assert len(ds) == 4 and ds.source == "iterable" and ds.arrays["image"].dtype == np.float32
    assert list(ds.labels) == [7, 1, 2, 3]
    pairs = [(np.zeros((3, 4, 4), np.float32), 5), (np.ones((2, 3, 4, 4), np.float32), np.array([6, 6]))]
    ds = load_dataset(pairs, ONE, purpose="evaluation")  # (feed, labels) tuples; a sample without batch axis
    assert len(ds) == 3 and list(ds.labels) == [5, 6, 6]


def test_endless_iterable_stops_at_max_samples() -> None:
    endless = ({"image": np.full((2, 3, 4, 4), i, np.float32)} for i in itertools.count())
    ds = load_dataset(endless, ONE, purpose="calibration", max_samples=5)
    assert len(ds) == 5 and ds.arrays["image"][4, 0, 0, 0] == 2


def test_iterable_errors() -> None:
    with pytest.raises(DataError, match="item 1 .* expected a dict"):
        load_dataset([{"image": np.zeros((1, 3, 4, 4))}, 42], ONE, purpose="calibration")
    with pytest.raises(DataError, match="yielded no samples"):
        load_dataset(iter([]), ONE, purpose="calibration")
    with pytest.raises(DataError, match="some items carry labels"):
        load_dataset(
            [{"image": np.zeros((1, 3, 4, 4)), "labels": [1]}, {"image": np.zeros((1, 3, 4, 4))}],
            ONE, purpose="calibration",
        )
    with pytest.raises(DataError, match=r"item 0\).*\(N, 3, 4, 4\)"):
        load_dataset([{"image": np.zeros((1, 3, 4, 5))}], ONE, purpose="calibration")


def test_dataset_source_is_validated() -> None:
    good = Dataset({"image": np.zeros((2, 3, 4, 4), np.float32)}, synthetic=True, source="mine")
    ds = load_dataset(good, ONE, purpose="calibration")
    assert ds.synthetic and ds.source == "mine"
    with pytest.raises(DataError, match="expects samples"):
        load_dataset(Dataset({"image": np.zeros((2, 4, 4))}), ONE, purpose="calibration")


def test_none_gives_synthetic() -> None:
    ds = load_dataset(None, TWO, purpose="calibration", max_samples=8)
    assert ds.synthetic and len(ds) == 8


def test_synthetic_dataset_shapes_types_and_determinism() -> None:
    graph = _graph(IMG, IDS, TensorSpec("mask", "bool", (1, 6)), TensorSpec("seq", "float16", (1, "len", 2)))
    ds = synthetic_dataset(graph, samples=16, seed=3)
    assert ds.synthetic and ds.labels is None and ds.source == "synthetic"
    assert ds.arrays["image"].shape == (16, 3, 4, 4) and ds.arrays["image"].dtype == np.float32
    assert np.abs(ds.arrays["image"]).max() <= 3.0 and abs(float(ds.arrays["image"].mean())) < 0.2
    ids = ds.arrays["ids"]
    assert ids.dtype == np.int64 and ids.min() >= 0 and ids.max() < 10
    assert ds.arrays["mask"].dtype == np.bool_ and ds.arrays["mask"].any() and not ds.arrays["mask"].all()
    assert ds.arrays["seq"].shape == (16, 1, 2) and ds.arrays["seq"].dtype == np.float16
    again = synthetic_dataset(graph, samples=16, seed=3)
    other = synthetic_dataset(graph, samples=16, seed=4)
    np.testing.assert_array_equal(ds.arrays["image"], again.arrays["image"])
    assert not np.array_equal(ds.arrays["image"], other.arrays["image"])
    assert [b["ids"].shape for b in ds.batches(4)] == [(4, 6)] * 4
    load_dataset(ds, graph, purpose="calibration")  # synthetic data fits its own graph


def test_synthetic_refuses_string_inputs_and_feeds_scalars_whole() -> None:
    with pytest.raises(DataError, match="synthetic"):
        synthetic_dataset(_graph(TensorSpec("text", "str", (1, 1))))
    ds = synthetic_dataset(_graph(TensorSpec("x", "float32", (1, 3)), TensorSpec("t", "float32", ())), samples=4)
    assert ds.fed_whole == ("t",) and ds.arrays["t"].shape == (4,)
    assert [f["t"].shape for f in ds.batches(1)] == [()] * 4  # a scalar input gets a scalar each step
    assert ds.not_batchable == ""  # a scalar is the same for every sample of a larger batch


def test_inputs_without_a_shared_batch_axis_are_fed_whole() -> None:
    """``A[2,3] @ B[3,4]`` with both as inputs: B has no sample axis, and A's 2 is then no batch either, so each
    sample is one whole (A, B) feed, stacked on a new axis 0 in data files."""
    graph = _graph(TensorSpec("a", "float32", (2, 3)), TensorSpec("b", "float32", (3, 4)))
    ds = synthetic_dataset(graph, samples=3)
    assert ds.fed_whole == ("a", "b") and ds.arrays["a"].shape == (3, 2, 3) and ds.arrays["b"].shape == (3, 3, 4)
    assert "no batch axis" in ds.not_batchable
    loaded = load_dataset({"a": np.ones((5, 2, 3)), "b": np.ones((5, 3, 4))}, graph, purpose="calibration")
    assert [f["a"].shape for f in loaded.batches(1)] == [(2, 3)] * 5
    with pytest.raises(DataError, match="input 'b' has no batch axis at 0") as caught:
        load_dataset({"a": np.ones((5, 2, 3)), "b": np.ones((5, 4))}, graph, purpose="calibration")
    assert "\n" not in str(caught.value)
    with pytest.raises(DataError, match="not batchable"):
        loaded.batches(2)
    shared = _graph(TensorSpec("x", "float32", ("N", 3)), TensorSpec("h", "float32", (1, 4)))
    assert len(synthetic_dataset(shared, samples=4)) == 4  # a dynamic leading dim is taken as shared
    assert synthetic_dataset(shared, samples=4).fed_whole == ()


# --------------------------------------------------------------------------------------------- images


def _image_tree(root: Path, spec: dict | None = None, *, yaml_spec: bool = False) -> Path:
    from PIL import Image

    colors = {"cat": (255, 0, 0), "dog": (0, 0, 255)}
    for cls, color in colors.items():
        (root / cls).mkdir(parents=True)
        for i in range(3 if cls == "cat" else 2):
            Image.new("RGB", (8, 6), color).save(root / cls / f"{i}.png")
    if spec is not None:
        if yaml_spec:
            import yaml

            (root / "preprocess.yaml").write_text(yaml.safe_dump(spec))
        else:
            (root / "preprocess.json").write_text(json.dumps(spec))
    return root


def test_image_folder_with_class_subfolders(tmp_path: Path) -> None:
    spec = {"size": [4, 4], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.25, 0.5], "layout": "NCHW", "scale": "1/255"}
    ds = load_dataset(_image_tree(tmp_path / "imgs", spec), ONE, purpose="evaluation")
    assert ds.arrays["image"].shape == (5, 3, 4, 4) and ds.arrays["image"].dtype == np.float32
    assert list(ds.labels) == [0, 1, 0, 1, 0]  # cat=0, dog=1, interleaved
    red = ds.arrays["image"][0]
    np.testing.assert_allclose(red[:, 0, 0], [(1 - 0.5) / 0.5, (0 - 0.5) / 0.25, (0 - 0.5) / 0.5], atol=1e-6)
    blue = ds.arrays["image"][1]
    np.testing.assert_allclose(blue[:, 2, 3], [-1.0, -2.0, 1.0], atol=1e-6)


def test_image_folder_nhwc_yaml_resize_crop_and_limit(tmp_path: Path) -> None:
    graph = _graph(TensorSpec("img", "float32", (1, 4, 4, 3)))
    spec = {"resize": 5, "scale": 1.0}  # size and layout from the graph
    ds = load_dataset(
        _image_tree(tmp_path / "imgs", spec, yaml_spec=True), graph, purpose="calibration", max_samples=2
    )
    assert ds.arrays["img"].shape == (2, 4, 4, 3) and list(ds.labels) == [0, 1]  # both classes kept
    np.testing.assert_allclose(ds.arrays["img"][0, 1, 1], [255.0, 0.0, 0.0])


def test_flat_image_folder_has_no_labels(tmp_path: Path) -> None:
    from PIL import Image

    for i in range(2):
        Image.new("L", (4, 4), 128).save(tmp_path / f"{i}.jpg")
    (tmp_path / "preprocess.json").write_text(json.dumps({"size": [4, 4]}))
    gray = _graph(TensorSpec("x", "float32", (1, 1, 4, 4)))
    ds = load_dataset(tmp_path, gray, purpose="calibration")
    assert ds.labels is None and ds.arrays["x"].shape == (2, 1, 4, 4)


def test_image_folder_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _image_tree(tmp_path / "imgs")
    with pytest.raises(DataError, match="preprocess.json") as info:
        load_dataset(root, ONE, purpose="calibration")
    assert "size" in info.value.hint
    (root / "preprocess.json").write_text(json.dumps({"sise": [4, 4]}))
    with pytest.raises(DataError, match=r"unknown settings \['sise'\]"):
        load_dataset(root, ONE, purpose="calibration")
    (root / "preprocess.json").write_text(json.dumps({"size": [4, 4]}))
    (root / "cat" / "9.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="9.png"):
        load_dataset(root, ONE, purpose="calibration")
    (root / "cat" / "9.png").unlink()
    (root / "stray.png").write_bytes((root / "cat" / "0.png").read_bytes())
    with pytest.raises(DataError, match="mixes images"):
        load_dataset(root, ONE, purpose="calibration")
    (root / "stray.png").unlink()
    with pytest.raises(DataError, match="one 4-D image input"):
        load_dataset(root, TWO, purpose="calibration")
    monkeypatch.setitem(sys.modules, "PIL", None)  # as if Pillow were not installed
    with pytest.raises(DataError, match="Pillow") as info:
        load_dataset(root, ONE, purpose="calibration")
    assert info.value.hint == "pip install pillow"
