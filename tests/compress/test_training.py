"""Fine-tuning behaviour (seeded determinism, early stopping), binarization figures and image-folder training
data, on small slices of the digits data so that each test runs in seconds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgeopt.compression import compress
from edgeopt.compression.data import Split, load_split
from edgeopt.compression.measure import export_single_file
from edgeopt.compression.prune import apply_pruning, finalize
from edgeopt.compression.sdk import _graph_for
from edgeopt.compression.spec import TrainConfig, parse_prune
from edgeopt.compression.train_loop import fit


def _split(x: np.ndarray, y: np.ndarray) -> Split:
    return Split(inputs=(torch.from_numpy(x),), labels=torch.from_numpy(y), names=("input",))


def _tuned(digits_cnn, digits, *, seed: int) -> torch.nn.Module:
    x_train, x_test, y_train, y_test = digits
    model, _ = apply_pruning(digits_cnn, parse_prune("unstructured:0.5"), (torch.from_numpy(x_train[:1]),))
    fit(model, _split(x_train[:256], y_train[:256]), _split(x_test[:128], y_test[:128]),
        config=TrainConfig(epochs=2, seed=seed, batch_size=32, patience=5))
    finalize(model)
    return model


def test_same_seed_same_model_and_onnx_bytes_other_seed_differs(tmp_path, digits, digits_cnn):
    import copy

    runs = {name: _tuned(copy.deepcopy(digits_cnn), digits, seed=seed) for name, seed in
            (("a", 0), ("b", 0), ("c", 1))}
    x = torch.from_numpy(digits[1][:1])
    for name, model in runs.items():
        export_single_file(model, (x,), tmp_path / f"{name}.onnx")
    a, b, c = (runs[n].state_dict() for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert any(not torch.equal(a[k], c[k]) for k in a)
    assert (tmp_path / "a.onnx").read_bytes() != (tmp_path / "c.onnx").read_bytes()


def test_early_stopping_ends_before_max_epochs_and_keeps_the_best_weights(digits, digits_cnn):
    x_train, x_test, y_train, y_test = digits
    before = {k: v.clone() for k, v in digits_cnn.state_dict().items()}
    # a learning rate too small to change any prediction: the eval metric never improves on epoch 0
    result = fit(digits_cnn, _split(x_train[:128], y_train[:128]), _split(x_test[:128], y_test[:128]),
                 config=TrainConfig(epochs=20, lr=1e-12, patience=2, batch_size=64, lr_schedule="none"))
    assert result.stopped.startswith("early stop") and len(result.history) == 1 + 2  # epoch 0, then 2 stale
    assert result.best_epoch == 0
    assert all(torch.equal(before[k], v) for k, v in digits_cnn.state_dict().items())  # epoch 0 weights back


def test_fine_tuning_improves_and_reports_each_epoch(digits):
    from examples.digits.model import DigitsCNN

    x_train, x_test, y_train, y_test = digits
    torch.manual_seed(0)
    lines: list[str] = []
    result = fit(DigitsCNN(), _split(x_train[:384], y_train[:384]), _split(x_test[:128], y_test[:128]),
                 config=TrainConfig(epochs=2, lr=3e-3, patience=2, batch_size=32), report=lines.append)
    assert result.best_epoch >= 1 and result.best_metric > result.history[0].metric
    assert len(lines) == 2 and all("loss" in line and "eval" in line for line in lines)


def test_binarize_reports_its_accuracy_and_shrinks_the_file(digits, digits_cnn):
    x_train, x_test, y_train, y_test = digits
    result = compress(digits_cnn, (x_train[:400], y_train[:400]), (x_test[:200], y_test[:200]), binarize=True,
                      epochs=1, input_shapes=(1, 1, 8, 8), timing_s=0.1)
    original, binarized = result.stages[0], result.stages[-1]
    assert binarized.name == "binarized" and binarized.metric_name == "accuracy"
    assert 0.0 <= binarized.metric <= 100.0  # whatever it is, it is measured (ONNX Runtime, eval data) ...
    record = result.to_dict()
    assert record["summary"]["metric_drop"] == pytest.approx(original.metric - binarized.metric)  # ... and reported
    assert binarized.size_bytes < 0.4 * original.size_bytes
    assert any("first and last layer kept float" in n for n in binarized.notes)


def _image_folder(root, x: np.ndarray, y: np.ndarray):
    from PIL import Image

    for i, (image, label) in enumerate(zip(x, y, strict=True)):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(image[0] * 255).astype(np.uint8), mode="L").save(folder / f"{i}.png")
    (root / "preprocess.json").write_text(json.dumps({"scale": "1/255"}))
    return root


def test_image_folder_trains_like_the_npz(tmp_path, digits, digits_cnn):
    pytest.importorskip("PIL")
    x_train, x_test, y_train, y_test = digits
    folder = _image_folder(tmp_path / "train", x_train[:200], y_train[:200])
    export_single_file(digits_cnn, (torch.from_numpy(x_train[:1]),), tmp_path / "probe.onnx")
    split = load_split(folder, _graph_for(tmp_path / "probe.onnx"), purpose="training")
    assert sorted(split.labels.tolist()) == sorted(y_train[:200].tolist())
    got = {(int(lbl), tuple(np.round(img.numpy().ravel() * 255).astype(int)))
           for img, lbl in zip(split.inputs[0], split.labels, strict=True)}
    want = {(int(y_train[i]), tuple(np.round(x_train[i].ravel() * 255).astype(int))) for i in range(200)}
    assert got == want
    result = compress(digits_cnn, folder, (x_test[:150], y_test[:150]), prune="unstructured:0.3", epochs=1,
                      input_shapes=(1, 1, 8, 8), timing_s=0.1)
    assert result.training[0]["epochs_run"] == 2 and result.stages[-1].metric > 80  # epoch 0 + 1
