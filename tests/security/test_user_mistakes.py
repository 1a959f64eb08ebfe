"""User mistakes through the real CLI: one ``error[CODE]`` line plus a fix hint, exit 1, no traceback,
nothing left behind. Also: every error class has a stable, unique code documented in docs/errors.md."""

from __future__ import annotations

import errno
import inspect
import os
import re
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import edgeopt
from edgeopt import errors
from edgeopt.artifact import write as artifact
from edgeopt.data.datasets import load_dataset
from edgeopt.errors import DataError, EdgeoptError, OutputPathError
from edgeopt.types import Graph, TensorSpec
from tests.security.helpers import DIGITS, FAST, ROOT, assert_one_line_error, run_cli, run_cli_many, save


def _int_input_model(path: Path) -> Path:
    """ids (int64 [1, 4]) -> embedding rows -> mean: a model whose input is integer."""
    emb = numpy_helper.from_array(np.arange(30, dtype=np.float32).reshape(10, 3), "emb")
    graph = helper.make_graph(
        [helper.make_node("Gather", ["emb", "ids"], ["g"]), helper.make_node("ReduceMean", ["g"], ["y"], keepdims=0)],
        "ids",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [])],
        initializer=[emb],
    )
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _two_input_model(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "y"], ["z"])],
        "two",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4]) for n in ("x", "y")],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4])],
    )
    return save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_wrong_input_shapes(tmp_path):
    cases = {
        "input=1x3x224x224": ["input 'input' expects shape 1x1x8x8"],
        "nope=1x1x8x8": ["no input named 'nope'"],
        "1x0x8x8": ["dimensions must be positive"],
        "one-by-eight": ["cannot read dimensions"],
    }
    jobs = {}
    for i, shape in enumerate(cases):
        (tmp_path / str(i)).mkdir()
        jobs[shape] = (("deploy", str(DIGITS), "--input-shape", shape), tmp_path / str(i), None)
    for shape, result in run_cli_many(jobs).items():
        assert_one_line_error(result, code="E200", mentions=cases[shape], cwd=jobs[shape][1])


def test_wrong_data_dtypes_keys_and_counts(tmp_path):
    _int_input_model(tmp_path / "ids.onnx")
    _two_input_model(tmp_path / "two.onnx")
    np.savez(tmp_path / "fractional_ids.npz", ids=np.random.default_rng(0).random((8, 4)) * 9)  # for int64 ids
    np.savez(tmp_path / "keys.npz", x=np.zeros((4, 4), np.float32), w=np.zeros((4, 4), np.float32))
    np.savez(tmp_path / "labels.npz", input=np.zeros((4, 1, 8, 8), np.float32), labels=np.zeros(3, np.int64))
    cases = {
        "fractional_ids": ("ids.onnx", ["input 'ids' expects int64", "non-integral"]),
        "keys": ("two.onnx", ["missing ['y']", "unexpected ['w']"]),
        "labels": (str(DIGITS), ["3 labels for 4 samples"]),
    }
    jobs = {
        name: (("deploy", model, "--eval", f"{name}.npz", *FAST), tmp_path, None) for name, (model, _) in cases.items()
    }
    for name, result in run_cli_many(jobs).items():
        assert_one_line_error(result, code="E210", mentions=cases[name][1], cwd=tmp_path)


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (np.zeros((4, 1, 8, 8), np.complex64), "expects float32, got complex64"),
        (np.full((4, 1, 8, 8), "x"), "expects float32, got str"),
        (np.array([{"a": 1}] * 4, dtype=object), "pickled"),
    ],
    ids=["complex", "text", "object"],
)
def test_data_of_the_wrong_kind_is_one_line(tmp_path, data, needle):
    """The same DataError the CLI prints (one line: no newline in it), from a real .npy/.npz file."""
    path = tmp_path / ("data.npy" if data.dtype == object else "data.npz")
    if data.dtype == object:
        np.save(path, data, allow_pickle=True)
    else:
        np.savez(path, input=data)
    with pytest.raises(DataError) as info:
        load_dataset(path, _digits_graph(), purpose="evaluation")
    assert needle in info.value.message or needle in info.value.hint, info.value.message
    assert "\n" not in info.value.message and info.value.hint


def _digits_graph() -> Graph:
    return Graph(
        path=DIGITS, fingerprint="", source_fingerprint="", source_format="onnx", opset=17,
        inputs=(TensorSpec("input", "float32", (1, 1, 8, 8)),), outputs=(),
    )  # fmt: skip


def test_integer_data_for_a_float_model_is_converted_not_refused():
    """What data.py does with dtypes: ints to floats is accepted (exact for these values); floats to ints only
    when every value is integral (else the DataError above)."""
    graph = _digits_graph()
    ints = np.arange(4 * 64, dtype=np.int64).reshape(4, 1, 8, 8)
    data = load_dataset({"input": ints}, graph, purpose="evaluation")
    assert data.arrays["input"].dtype == np.float32
    np.testing.assert_array_equal(data.arrays["input"], ints.astype(np.float32))
    int_graph = Graph(
        path=DIGITS, fingerprint="", source_fingerprint="", source_format="onnx", opset=17,
        inputs=(TensorSpec("ids", "int64", (1, 4)),), outputs=(),
    )  # fmt: skip
    whole = load_dataset({"ids": np.array([[1.0, 2.0, 3.0, 4.0]])}, int_graph, purpose="evaluation")
    assert whole.arrays["ids"].dtype == np.int64


def test_target_not_installed_and_device_absent(tmp_path):
    jobs = {
        "no plugins": (("deploy", str(DIGITS)), tmp_path, {"EDGEOPT_PLUGINS": "none-of-them"}),
        "autoload off": (("deploy", str(DIGITS)), tmp_path, {"EDGEOPT_DISABLE_PLUGIN_AUTOLOAD": "1"}),
        "unknown target": (("deploy", str(DIGITS), "--target", "tpu-v9"), tmp_path, None),
        "device": (("deploy", str(DIGITS), "--device", "nonexistent"), tmp_path, None),
        "device file": (("deploy", str(DIGITS), "--device", "missing/profile.yaml"), tmp_path, None),
    }
    results = run_cli_many(jobs)
    for label in ("no plugins", "autoload off"):
        assert_one_line_error(results[label], code="E300", mentions=["unknown target 'cpu'", "none installed"])
        assert "edgeopt targets" in results[label].stderr
    assert_one_line_error(results["unknown target"], code="E300", mentions=["unknown target 'tpu-v9'", "cpu"])
    assert_one_line_error(results["device"], code="E320", mentions=["nonexistent"])
    assert_one_line_error(results["device file"], code="E320", mentions=["profile.yaml"])
    assert not list(tmp_path.iterdir())


def _file_size_limit(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # then writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_disk_full_while_deploying_is_one_line(tmp_path):
    """A file size limit (RLIMIT_FSIZE) makes the first large write fail, as a full disk does."""
    limit = _file_size_limit(64 * 1024)
    result = run_cli("deploy", str(DIGITS), *FAST, "--out", "a.edgeopt", cwd=tmp_path, preexec=limit)
    assert_one_line_error(result, code="E710", mentions=["File too large"], cwd=tmp_path)
    assert "ulimit" in result.stderr


def test_disk_full_while_writing_the_artifact_keeps_nothing(tmp_path, monkeypatch):
    """ENOSPC in the middle of writing the artifact: OutputPathError with the disk-full hint, no partial artifact."""
    written: list[str] = []
    real_copy, real_write = artifact._copy, artifact._write_bytes

    def copy(src, dst, *, name):  # noqa: ANN001
        written.append(name)
        return real_copy(src, dst, name=name)

    def full_disk(dst, data):  # noqa: ANN001 - the model is in the temp dir already when the disk fills up
        if dst.name == "report.md":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))
        return real_write(dst, data)

    monkeypatch.setattr(artifact, "_copy", copy)
    monkeypatch.setattr(artifact, "_write_bytes", full_disk)
    with pytest.raises(OutputPathError, match="No space left on device") as info:
        edgeopt.deploy(str(DIGITS), precision="fp32", runs=3, timing_s=0.05, out=tmp_path / "a.edgeopt")
    assert "disk is full" in info.value.hint
    assert written, "the failure came before any artifact file was written"
    assert list(tmp_path.iterdir()) == []


def _read_only_dir(tmp_path: Path):
    """A directory this process cannot create entries in, even as root; (path, undo) or None."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0:
        ro.chmod(0o555)
        return ro, lambda: ro.chmod(0o755)
    chattr = shutil.which("chattr")
    if chattr and subprocess.run([chattr, "+i", str(ro)], capture_output=True).returncode == 0:
        return ro, lambda: subprocess.run([chattr, "-i", str(ro)], check=True)  # immutable: root cannot write either
    for candidate in (Path("/sys/fs"), Path("/proc")):  # pseudo filesystems refuse new entries to root too
        try:
            (candidate / "edgeopt-probe").mkdir()
        except OSError:
            return candidate, lambda: None
        (candidate / "edgeopt-probe").rmdir()
    return None


def test_read_only_output_directory_is_one_line(tmp_path):
    found = _read_only_dir(tmp_path)
    if found is None:
        pytest.skip("no directory here refuses writes to this user (root without chattr, no read-only pseudo fs)")
    ro, undo = found
    try:
        result = run_cli("deploy", str(DIGITS), *FAST, "--out", str(ro / "digits.edgeopt"), cwd=tmp_path)
        assert_one_line_error(result, code="E710", mentions=["cannot write the artifact", str(ro)], cwd=tmp_path)
        assert re.search(r"permission denied|read-only|No such file", result.stderr, re.I)
        assert not (ro / "digits.edgeopt").exists()
    finally:
        undo()


def test_every_error_class_has_a_unique_documented_code():
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, EdgeoptError)]
    assert len(classes) >= 10
    codes = [c.code for c in classes]
    assert len(set(codes)) == len(codes), sorted(codes)
    assert all(re.fullmatch(r"E\d{3}", code) for code in codes), codes
    doc = (ROOT / "docs" / "errors.md").read_text()
    for cls in classes:
        section = re.search(rf"^## {cls.code} `{cls.__name__}`$(.*?)(?=^## |\Z)", doc, re.M | re.S)
        assert section, f"docs/errors.md has no '## {cls.code} `{cls.__name__}`' section"
        body = section.group(1)
        for part in ("Meaning:", "Typical message:", "What to do:"):
            assert part in body, f"{cls.code} {cls.__name__} lacks {part!r}"
        # a subclass is documented as one (and the CLI's prefix is the code)
        parent = cls.__mro__[1]
        if parent is not EdgeoptError and issubclass(parent, EdgeoptError):
            assert parent.__name__ in body, f"{cls.__name__}: say that it is a kind of {parent.__name__}"
    documented = set(re.findall(r"^## (E\d{3}) ", doc, re.M))
    assert documented == set(codes), documented ^ set(codes)
