"""The built-in torch importer: export, weights, pickle refusal, lazy import."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

torch = pytest.importorskip("torch")

from edgeopt.errors import InputSpecError, ModelError, UnsafeModelError  # noqa: E402
from edgeopt.hashing import sha256_file  # noqa: E402
from edgeopt.importers import torch as torch_importer  # noqa: E402
from edgeopt.importers.torch import TorchSource, edgeopt_import  # noqa: E402
from edgeopt.plugin.manager import get_plugin_manager  # noqa: E402
from edgeopt.types import ImportOptions  # noqa: E402
from tests.importers.torch_factory import Branchy, TinyCNN, TwoInputs  # noqa: E402

FACTORY = "tests.importers.torch_factory:tiny_cnn"
SHAPE = ImportOptions(input_shapes={"": (1, 3, 16, 16)})
REPO = Path(__file__).resolve().parents[2]


def _ort(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)


def _torch(module: torch.nn.Module, *arrays: np.ndarray) -> np.ndarray:
    module.eval()
    with torch.no_grad():
        return module(*(torch.from_numpy(a) for a in arrays)).numpy()


@pytest.fixture()
def image() -> np.ndarray:
    return np.random.default_rng(0).standard_normal((1, 3, 16, 16)).astype(np.float32)


def test_module_exports_and_matches_torch(tmp_path, image, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    module = TinyCNN().train()
    graph = edgeopt_import(module, SHAPE, tmp_path / "w")
    assert module.training, "the caller's module must be put back in training mode"
    assert graph.source_format == "torch" and graph.opset >= 17
    assert [s.name for s in graph.inputs] == ["input"] and graph.inputs[0].shape == (1, 3, 16, 16)
    assert [s.name for s in graph.outputs] == ["output"] and graph.outputs[0].shape == (1, 5)
    onnx.checker.check_model(str(graph.path), full_check=True)
    got = _ort(graph.path, {"input": image})[0]
    np.testing.assert_allclose(got, _torch(module, image), rtol=1e-4, atol=1e-5)
    assert os.listdir(cwd) == [] and os.listdir(tmp_path / "w") == ["model.onnx"]
    assert len(graph.source_fingerprint) == 64 and graph.source_fingerprint != graph.fingerprint
    assert graph.notes == ()  # the dynamo exporter handled it


def test_data_dependent_branch_falls_back_to_the_torchscript_exporter(tmp_path, capfd):
    module = Branchy()
    graph = edgeopt_import(TorchSource(module, (torch.ones(2, 3),)), ImportOptions(), tmp_path)
    assert graph.notes[0].startswith("dynamo exporter failed (Could not guard on data-dependent expression")
    assert "\x1b" not in graph.notes[0]
    assert any(n.startswith("TorchScript tracer: Converting a tensor to a Python boolean") for n in graph.notes)
    x = np.random.default_rng(5).random((2, 3), dtype=np.float32)  # positive, like the example: same branch
    np.testing.assert_allclose(_ort(graph.path, {"input": x})[0], _torch(module, x), rtol=1e-6)
    assert "def forward" not in capfd.readouterr().err  # the exporter's graph dumps are held back


def test_forward_returning_no_tensor_is_a_model_error(tmp_path):
    class Describe(torch.nn.Module):
        def forward(self, x):
            return f"shape {tuple(x.shape)}"

    with pytest.raises(ModelError, match="produced no outputs for Describe") as info:
        edgeopt_import(Describe(), ImportOptions(input_shapes={"": (1, 3)}), tmp_path)
    assert "tuple of tensors" in info.value.hint
    assert not (tmp_path / "torch-export").exists()


def test_module_without_input_shape_is_an_input_spec_error(tmp_path):
    with pytest.raises(InputSpecError) as info:
        edgeopt_import(TinyCNN(), ImportOptions(), tmp_path)
    assert "--input-shape (e.g. 1x3x224x224)" in info.value.hint


def test_wrong_input_shape_for_the_module(tmp_path):
    with pytest.raises(InputSpecError, match="failed on inputs of shape"):
        edgeopt_import(TinyCNN(), ImportOptions(input_shapes={"": (1, 4, 16, 16)}), tmp_path)


def test_named_input_shapes_follow_forward_parameters(tmp_path):
    module = TwoInputs()
    options = ImportOptions(input_shapes={"b": (2, 6), "a": (2, 4)})
    graph = edgeopt_import(module, options, tmp_path)
    assert [s.name for s in graph.inputs] == ["a", "b"]
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal((2, 4), dtype=np.float32), rng.standard_normal((2, 6), dtype=np.float32)
    np.testing.assert_allclose(_ort(graph.path, {"a": a, "b": b})[0], _torch(module, a, b), rtol=1e-5, atol=1e-6)


def test_torch_source_with_example_inputs(tmp_path):
    module = TwoInputs()
    source = TorchSource(module, (torch.zeros(3, 4), torch.ones(3, 6)), input_names=["left", "right"])
    graph = edgeopt_import(source, ImportOptions(), tmp_path)
    assert [(s.name, s.shape) for s in graph.inputs] == [("left", (3, 4)), ("right", (3, 6))]


def test_factory_with_safetensors_and_pt_weights(tmp_path, image):
    from safetensors.torch import save_file

    torch.manual_seed(123)
    trained = TinyCNN()
    save_file(trained.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    expected = _torch(trained, image)
    fresh = edgeopt_import(FACTORY, SHAPE, tmp_path / "fresh")
    assert not np.allclose(_ort(fresh.path, {"input": image})[0], expected, atol=1e-3)
    for name in ("w.safetensors", "w.pt"):
        options = ImportOptions(input_shapes={"": (1, 3, 16, 16)}, weights=tmp_path / name)
        graph = edgeopt_import(FACTORY, options, tmp_path / name.replace(".", "_"))
        np.testing.assert_allclose(_ort(graph.path, {"input": image})[0], expected, rtol=1e-4, atol=1e-5)


def test_factory_errors(tmp_path):
    with pytest.raises(ModelError, match="cannot find 'tests.importers.torch_factory:nope'"):
        edgeopt_import("tests.importers.torch_factory:nope", SHAPE, tmp_path)
    with pytest.raises(ModelError, match="not a torch.nn.Module"):
        edgeopt_import("tests.importers.torch_factory:not_a_module", SHAPE, tmp_path)
    missing = ImportOptions(input_shapes={"": (1, 3, 16, 16)}, weights=tmp_path / "missing.pt")
    with pytest.raises(ModelError, match="not found"):
        edgeopt_import(FACTORY, missing, tmp_path)
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="do not fit TinyCNN"):
        edgeopt_import(FACTORY, ImportOptions(input_shapes={"": (1, 3, 16, 16)}, weights=tmp_path / "bad.pt"), tmp_path)
    (tmp_path / "junk.pt").write_bytes(b"garbage" * 10)
    with pytest.raises(ModelError, match="not a readable torch checkpoint") as info:
        edgeopt_import(
            FACTORY, ImportOptions(input_shapes={"": (1, 3, 16, 16)}, weights=tmp_path / "junk.pt"), tmp_path
        )
    assert not isinstance(info.value, UnsafeModelError)


def test_pickled_whole_model_needs_trust(tmp_path, image):
    module = TinyCNN()
    torch.save(module, tmp_path / "whole.pt")
    for source, options in [
        (tmp_path / "whole.pt", SHAPE),
        (FACTORY, ImportOptions(input_shapes={"": (1, 3, 16, 16)}, weights=tmp_path / "whole.pt")),
    ]:
        with pytest.raises(UnsafeModelError) as info:
            edgeopt_import(source, options, tmp_path / "w")
        assert info.value.code == "E110" and "--trust-pickle" in info.value.hint
    trusted = ImportOptions(input_shapes={"": (1, 3, 16, 16)}, trust_pickle=True)
    graph = edgeopt_import(str(tmp_path / "whole.pt"), trusted, tmp_path / "trusted")
    np.testing.assert_allclose(_ort(graph.path, {"input": image})[0], _torch(module, image), rtol=1e-4, atol=1e-5)
    assert graph.source_fingerprint != sha256_file(tmp_path / "whole.pt")  # it is the exported bytes' hash


def test_state_dict_file_as_source_says_use_a_factory(tmp_path):
    torch.save(TinyCNN().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ModelError, match="holds weights only") as info:
        edgeopt_import(tmp_path / "sd.pt", SHAPE, tmp_path / "w")
    assert "--weights" in info.value.hint


@pytest.mark.parametrize("source", ["model.onnx", "plain-string", 42, object(), np.zeros(3), Path("x.joblib")])
def test_other_sources_are_not_claimed(tmp_path, source):
    assert edgeopt_import(source, SHAPE, tmp_path) is None
    assert not list(tmp_path.iterdir())


def test_registered_as_a_builtin_plugin(tmp_path, image):
    assert torch_importer.EDGEOPT_HOOK_API == 1
    pm = get_plugin_manager(entry_points=False)
    status = {s.name: s for s in pm.plugins()}["edgeopt.importers.torch"]
    assert status.status == "ok" and "edgeopt_import" in status.hooks
    graph = pm.import_model(TinyCNN(), SHAPE, tmp_path)
    assert graph is not None and graph.source_format == "torch"


def test_importing_edgeopt_does_not_import_torch_or_sklearn():
    code = (
        "import sys, edgeopt, edgeopt.graph.normalize, edgeopt.importers.torch, edgeopt.importers.sklearn, "
        "edgeopt.importers.onnx_file; "
        "print(sorted(m for m in ('torch', 'sklearn', 'skl2onnx', 'onnxslim') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "[]"
