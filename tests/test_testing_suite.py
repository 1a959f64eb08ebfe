"""The conformance suite itself: it passes a correct plugin, and each broken contract fails it.

The suite runs in an inner pytest (pytester) against ``faulty_*`` plugin modules: a working ONNX
Runtime target with exactly one fault switched on. The healthy variant passes everything, so each
failure below is the fault's doing.
"""

from __future__ import annotations

import importlib.metadata as md
import textwrap
from pathlib import Path

import numpy as np
import onnx
import pytest

from edgeopt.testing import (
    DEFAULT_TOLERANCES,
    GOLDEN_MODELS,
    compare_runs,
    confined,
    golden_feeds,
    relative_error,
    tolerance_for,
    write_golden,
)
from edgeopt.testing.gen_docs import END, START, hook_names, render_hooks
from edgeopt.types import TargetInfo, TensorSpec

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parents[1]

FAULTY = '''
import shutil
from pathlib import Path

import numpy as np
import onnxruntime as ort
from edgeopt import hookimpl
from edgeopt.errors import InputSpecError
from edgeopt.types import Compiled, Plan

EDGEOPT_HOOK_API = 1
FAULT = "{fault}"


@hookimpl
def edgeopt_register_targets(register):
    if FAULT == "unavailable":
        register.add_target("faulty", description="d", precisions=("fp32",), available=False,
                            reason="the faulty board is not attached")
    else:
        register.add_target("faulty", description="ORT with one fault", precisions=("fp32",))


@hookimpl
def edgeopt_plan(graph, target, device, precision):
    if precision not in ("auto", "fp32"):
        return [Plan("faulty", precision)] if FAULT == "offers_anything" else []
    return [Plan("faulty", "fp32", label="fp32")]


@hookimpl
def edgeopt_compile(graph, plan, target, device, calibration, workdir):
    shutil.copyfile(graph.path, Path(workdir) / "model.onnx")
    if FAULT == "writes_cwd":
        Path("scratch.bin").write_bytes(b"x")
    files = ("model.onnx", "missing.bin") if FAULT == "missing_file" else ("model.onnx",)
    return Compiled(Path(workdir), "model.onnx", files, plan, runtime="onnxruntime")


class FaultyRunner:
    def __init__(self, path):
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.inputs = {{i.name: tuple(i.shape[1:]) for i in self.session.get_inputs()}}

    def run(self, feeds):
        fits = set(feeds) == set(self.inputs) and all(
            np.shape(feeds[k])[1:] == shape for k, shape in self.inputs.items()
        )
        if not fits:
            raise ValueError("bad feeds") if FAULT == "wrong_error" else InputSpecError("bad feeds")
        batch = len(next(iter(feeds.values())))
        runs = [self.session.run(None, {{k: v[i : i + 1] for k, v in feeds.items()}}) for i in range(batch)]
        outputs = [np.concatenate([r[j] for r in runs]) for j in range(len(runs[0]))]
        if FAULT == "drifts":
            outputs = [o * 1.01 for o in outputs]
        if FAULT == "swaps":
            outputs = outputs[::-1]
        return outputs

    def close(self):
        self.session = None


@hookimpl
def edgeopt_runner(compiled, target, device, settings):
    return FaultyRunner(compiled.model_path)
'''

SUITE = '''
import faulty_{fault}
from edgeopt.plugin.manager import get_plugin_manager
from edgeopt.testing import ConformanceSuite


class TestFaulty(ConformanceSuite):
    target = "{target}"

    @classmethod
    def make_plugin_manager(cls):
        pm = get_plugin_manager(entry_points=False)
        pm.register(faulty_{fault}, "faulty", version="9.9")
        return pm
'''


def run_suite(pytester: pytest.Pytester, fault: str, *args: str, target: str = "faulty") -> pytest.RunResult:
    pytester.makepyfile(**{f"faulty_{fault}": FAULTY.format(fault=fault)})
    pytester.makepyfile(**{f"test_{fault}": SUITE.format(fault=fault, target=target)})
    return pytester.runpytest_inprocess(f"test_{fault}.py", "-p", "no:cacheprovider", *args)


def test_a_correct_plugin_passes_every_check(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "healthy")
    result.assert_outcomes(passed=8 + len(GOLDEN_MODELS))  # 8 tests, one of them per golden model


def test_an_unavailable_target_is_skipped_with_its_reason(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "unavailable", "-rs")
    result.assert_outcomes(passed=1, skipped=7 + len(GOLDEN_MODELS))
    result.stdout.fnmatch_lines(["*target 'faulty' is unavailable here: the faulty board is not attached*"])


def test_an_unknown_target_fails_naming_the_known_ones(pytester: pytest.Pytester) -> None:
    result = run_suite(pytester, "healthy", "-k", "registered", target="nope")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*no plugin registers target 'nope' (known targets: faulty)*"])


@pytest.mark.parametrize(
    ("fault", "selected", "message"),
    [
        ("writes_cwd", "compile", "*edgeopt_compile wrote outside its workdir*scratch.bin (in the working directory)*"),
        ("missing_file", "compile", "*declared file 'missing.bin' does not exist*"),
        ("drifts", "reference and mlp", "*output 'y' differs from the reference by 0.01 (tolerance 0.0001)*"),
        ("swaps", "reference and two_io", "*output 'score' has shape [[]1, 64[]], the reference [[]1, 4[]]*"),
        ("wrong_error", "wrong_inputs", "*runner raised ValueError: bad feeds; it must raise InputSpecError*"),
        ("offers_anything", "undeclared", "*offered 1 plan(s) for undeclared precision 'int3-undeclared'*"),
    ],
)
def test_each_broken_contract_fails_the_suite(
    pytester: pytest.Pytester, fault: str, selected: str, message: str
) -> None:
    result = run_suite(pytester, fault, "-k", selected)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines([message])


def test_the_edgeopt_target_option_adds_the_suite(pytester: pytest.Pytester) -> None:
    assert list(md.entry_points(group="pytest11", name="edgeopt")), (
        "the edgeopt pytest plugin is not installed: reinstall edgeopt (pip install -e .) to register its entry point"
    )
    result = pytester.runpytest_inprocess("--edgeopt-target", "cpu", "-k", "registered or auto", "-v")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*TestEdgeoptConformance::test_target_is_registered*PASSED*"])
    missing = pytester.runpytest_inprocess("--edgeopt-target", "nope", "-k", "registered", "-p", "no:cacheprovider")
    missing.assert_outcomes(errors=1)


def test_golden_models_are_valid_and_cover_what_they_claim(tmp_path: Path) -> None:
    models = {name: onnx.load(str(write_golden(name, tmp_path))) for name in GOLDEN_MODELS}
    for model in models.values():
        onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in models["two_io"].graph.input] == ["a", "b"]
    assert [o.name for o in models["two_io"].graph.output] == ["score", "embed"]
    assert models["dynamic_batch"].graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    assert {n.op_type for n in models["conv"].graph.node} >= {"Conv", "MaxPool", "Gemm"}
    assert {n.op_type for n in models["mlp"].graph.node} >= {"MatMul", "Add", "Relu"}
    feeds = golden_feeds((TensorSpec("x", "float32", ("N", 1, 8, 8)),), batch=3, seed=1)
    assert feeds["x"].shape == (3, 1, 8, 8) and feeds["x"].dtype == np.float32
    static = golden_feeds((TensorSpec("x", "float32", (1, 1, 8, 8)),), batch=3, seed=1)
    np.testing.assert_array_equal(feeds["x"], static["x"])


def test_tolerances_declared_default_and_missing() -> None:
    info = TargetInfo("t", "p", "d", ("fp32", "fp16-acc32", "int8", "weird"), tolerances={"int8": 0.05})
    assert tolerance_for(info, "int8") == 0.05
    assert tolerance_for(info, "fp32") == DEFAULT_TOLERANCES["fp32"]
    assert tolerance_for(info, "fp16-acc32") == DEFAULT_TOLERANCES["fp16"]
    with pytest.raises(LookupError, match="tolerances=\\{'weird'"):
        tolerance_for(info, "weird")


def test_relative_error_and_run_comparison() -> None:
    ref = np.array([[1.0, -4.0, 2.0]], np.float32)
    assert relative_error(ref, ref) == 0.0
    assert relative_error(ref, ref + np.array([[0.0, 0.4, 0.0]], np.float32)) == pytest.approx(0.1)
    assert relative_error(ref, np.full_like(ref, np.nan)) == float("inf")
    assert compare_runs([[ref]], [[ref * 1.00001]], names=["y"], tolerance=1e-4) == []
    assert "differs" in compare_runs([[ref]], [[ref * 1.5]], names=["y"], tolerance=1e-4)[0]
    assert "returned 2 outputs" in compare_runs([[ref]], [[ref, ref]], names=["y"], tolerance=1e-4)[0]
    assert "shape [3]" in compare_runs([[ref]], [[ref[0]]], names=["y"], tolerance=1e-4)[0]


def test_confined_reports_writes_outside_the_workdir(tmp_path: Path) -> None:
    work, watched = tmp_path / "work", tmp_path / "graph"
    work.mkdir()
    watched.mkdir()
    (watched / "model.onnx").write_bytes(b"m")
    with confined(work, watch=[watched]) as clean:
        (work / "ok.bin").write_bytes(b"fine")
    assert clean.leaks == []
    import tempfile

    with confined(work, watch=[watched]) as dirty:
        Path("in-cwd.txt").write_text("x")
        Path(tempfile.gettempdir(), "left.tmp").write_text("x")
        (watched / "model.onnx").write_bytes(b"changed")
        (watched / "extra.bin").write_bytes(b"x")
    leaks = " | ".join(dirty.leaks)
    assert "in-cwd.txt (in the working directory)" in leaks and "left.tmp (in the temp directory)" in leaks
    assert "model.onnx (modified)" in leaks and "extra.bin (created)" in leaks
    assert Path.cwd() != work and not list(tmp_path.glob(".confine-*"))


def test_every_hook_is_documented_from_its_spec() -> None:
    doc = (REPO / "docs" / "writing-a-plugin.md").read_text()
    section = doc[doc.index(START) : doc.index(END) + len(END)] + "\n"
    assert section == render_hooks(), "run: python -m edgeopt.testing.gen_docs docs/writing-a-plugin.md"
    for name in hook_names():
        assert f"### `{name}`" in section
    assert len(hook_names()) >= 7
    assert textwrap.dedent(render_hooks()).count("```python") == len(hook_names())
