"""edgeopt.process.isolation: native crashes, hangs and errors in the worker process never reach the caller's
process."""

from __future__ import annotations

import os
import signal
import time

import onnx
import pytest

from edgeopt.errors import ModelError, UnsafeModelError
from edgeopt.graph.normalize import normalize
from edgeopt.process.isolation import IsolatedWorker, run_isolated
from edgeopt.types import ImportOptions
from tests.security.helpers import matmul_model
from tests.security.isolation_targets import CRASH_MARKER

T = "tests.security.isolation_targets:"


def test_returns_results_from_another_process():
    assert run_isolated(T + "pid") != os.getpid()
    assert run_isolated("math:hypot", 3.0, 4.0) == 5.0
    assert run_isolated("math.hypot", 6.0, 8.0) == 10.0  # dotted form works too
    blob = os.urandom(32 * 1024**2)
    assert run_isolated(T + "echo", blob) == blob  # larger than any pipe buffer, both ways


@pytest.mark.parametrize(("target", "sig"), [("segfault", signal.SIGSEGV), ("abort", signal.SIGABRT)])
def test_native_crash_becomes_a_model_error(target, sig):
    expected = rf"the model crashed the ONNX checker/runtime \(signal {int(sig)}: {sig.name}"
    with pytest.raises(ModelError, match=expected):
        run_isolated(T + target)


def test_exit_without_a_reply_is_reported_with_its_status():
    with pytest.raises(ModelError, match="exit status 3"):
        run_isolated(T + "exit_hard", 3)


def test_worker_is_restarted_after_a_crash_and_counts_it():
    with IsolatedWorker() as worker:
        first = worker.call(T + "pid")
        with pytest.raises(ModelError, match="crashed"):
            worker.call(T + "segfault")
        second = worker.call(T + "pid")
        assert second != first
        assert (worker.starts, worker.crashes, worker.timeouts) == (2, 1, 0)


def test_a_hang_is_stopped_at_the_timeout():
    with IsolatedWorker() as worker:
        start = time.monotonic()
        with pytest.raises(ModelError, match="did not finish within 0.5 s") as info:
            worker.call(T + "sleep", 60, timeout_s=0.5, what="the ONNX checker")
        assert time.monotonic() - start < 5
        assert "EDGEOPT_ISOLATION_TIMEOUT_S" in info.value.hint
        assert worker.timeouts == 1
        assert worker.call(T + "sleep", 0, timeout_s=30) == "woke"


def test_errors_keep_their_class_message_and_hint():
    with pytest.raises(UnsafeModelError) as info:
        run_isolated(T + "refuse", "no pickles", "use --trust-pickle")
    assert (info.value.message, info.value.hint, info.value.code) == ("no pickles", "use --trust-pickle", "E110")
    assert any("isolated worker" in note for note in info.value.__notes__)
    with pytest.raises(KeyError, match="plain"):
        run_isolated(T + "fail_plainly", "plain")


def test_output_printed_by_native_code_does_not_corrupt_replies():
    assert run_isolated(T + "noisy") == 42


def test_isolation_can_be_turned_off_for_debuggers(monkeypatch):
    monkeypatch.setenv("EDGEOPT_ISOLATION", "0")
    with IsolatedWorker() as worker:
        assert worker.call(T + "pid") == os.getpid()
        assert worker.starts == 0


def test_normalize_survives_a_checker_that_crashes(tmp_path):
    """The checker crashing natively on a model costs the worker, not this process; the next import works."""
    model = matmul_model()
    model.doc_string = CRASH_MARKER.decode()
    options = ImportOptions()
    with IsolatedWorker() as worker:
        worker.call(T + "install_crashing_checker")
        with pytest.raises(ModelError, match=r"the model crashed the ONNX checker \(signal 11: SIGSEGV\)"):
            normalize(
                model,
                source_fingerprint="x",
                source_format="onnx",
                options=options,
                workdir=tmp_path / "a",
                worker=worker,
            )
        assert worker.crashes == 1
        graph = normalize(
            model, source_fingerprint="x", source_format="onnx", options=options, workdir=tmp_path / "b", worker=worker
        )  # the fresh worker has the real checker
        assert worker.starts == 2
    assert onnx.load(str(graph.path)).graph.node[0].op_type == "MatMul"


def test_normalize_runs_the_checker_and_a_session_in_one_worker(tmp_path):
    with IsolatedWorker() as worker:
        normalize(
            matmul_model(),
            source_fingerprint="x",
            source_format="onnx",
            options=ImportOptions(),
            workdir=tmp_path,
            worker=worker,
        )
        assert (worker.starts, worker.crashes) == (1, 0)


def test_modules_planted_in_the_current_directory_are_not_imported(tmp_path, monkeypatch):
    for name in ("onnx", "onnxruntime", "edgeopt"):
        (tmp_path / f"{name}.py").write_text(f"open({str(tmp_path / 'planted-ran')!r}, 'w').write({name!r})\n")
    monkeypatch.chdir(tmp_path)
    with IsolatedWorker(preload=("onnx", "onnxruntime")) as worker:
        worker.call("edgeopt.graph.safety:checker_probe", matmul_model().SerializeToString(), "the model")
        assert worker.call("edgeopt.graph.safety:session_probe", matmul_model().SerializeToString()) is None
    assert not (tmp_path / "planted-ran").exists()


def test_a_worker_knows_it_is_one() -> None:
    """Plugins skip a worker of their own where the core's already isolates them (edgeopt_openvino's builds)."""
    from edgeopt.process.worker_main import in_isolated_worker

    assert in_isolated_worker() is False
    assert run_isolated("edgeopt.process.worker_main:in_isolated_worker") is True


def test_arrays_cross_out_of_band_without_copies_in_the_caller():
    """Contiguous arrays travel beside the pickle (protocol 5): the caller never holds a pickled copy of a large
    argument (a build's calibration data), results arrive in buffers the arrays use (writable, one copy)."""
    import tracemalloc

    import numpy as np

    big = np.random.default_rng(0).random((8, 1024, 1024)).astype(np.float32)  # 32 MiB
    odd = {"f": np.asfortranarray(np.arange(12.0).reshape(3, 4)), "strided": np.arange(20)[::3],
           "empty": np.zeros((0, 5), np.int64), "scalar": np.float16(1.5), "text": np.array(["a", "bc"])}
    with IsolatedWorker() as worker:
        worker.call("builtins.len", [1])  # started, its imports done
        tracemalloc.start()
        try:
            assert worker.call("builtins.len", big) == 8
            sent_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            back = worker.call("copy.copy", big)
            got_peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        same = worker.call("copy.deepcopy", odd)
    assert sent_peak < big.nbytes // 8, sent_peak
    assert got_peak < 1.25 * big.nbytes, got_peak
    assert np.array_equal(back, big) and back.dtype == big.dtype and back.flags.writeable
    for key, value in odd.items():
        assert np.array_equal(same[key], value) and same[key].dtype == value.dtype, key
    assert same["f"].flags.f_contiguous
