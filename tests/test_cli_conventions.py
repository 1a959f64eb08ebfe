"""The CLI behaves as Typer/Click users expect (issue 19): ``--version``, ``-h`` everywhere, shell completion,
help on every option and no ``<bool>`` on flags, ``EDGEOPT_*`` variables shown in the help of the option they
back, tables that fit 80 columns without cutting a name, an exit status per error family, Ctrl-C, ``-v`` and
``--log-level``, project defaults from ``[tool.edgeopt]``/``edgeopt.toml``, and the newcomer's fixes.

Most tests run ``edgeopt.cli.main()`` in this process (plugins load once); Ctrl-C, completion and the real
console script run as subprocesses."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import edgeopt
import edgeopt.api
import edgeopt.cli as cli
from edgeopt import errors
from edgeopt.cli import project_config
from edgeopt.cli.render import candidates_table, print_profile_extras, print_table

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"


def _main(argv: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
          columns: int = 80) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["edgeopt", *argv])
    monkeypatch.setenv("COLUMNS", str(columns))
    try:
        cli.main()
        status = 0
    except SystemExit as exc:
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def _run(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full = {**os.environ, "EDGEOPT_REGISTRY": "off", "COLUMNS": "80", **(env or {})}
    full.pop("EDGEOPT_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "edgeopt", *args], cwd=cwd, env=full, capture_output=True,
                          text=True, timeout=timeout)


def _commands(group, path=()):  # noqa: ANN001, ANN202 - Typer's vendored Click objects
    yield path, group
    for name, sub in getattr(group, "commands", {}).items():
        yield from _commands(sub, (*path, name))


class _Stop(errors.AccuracyBudgetExceeded):
    """Raised by a fake SDK call to end a command after recording what it was given."""


def _capture(monkeypatch: pytest.MonkeyPatch, name: str = "deploy") -> dict:
    seen: dict = {}

    def fake(model, **kwargs):  # noqa: ANN001, ANN202
        seen.update(kwargs, model=model)
        raise _Stop("stopped by the test")

    monkeypatch.setattr(edgeopt.api, name, fake)
    return seen


# --- --version, -h, completion, help -------------------------------------------------------------------


def test_version(capsys, monkeypatch) -> None:
    status, out, _ = _main(["--version"], capsys, monkeypatch)
    assert status == 0 and out.strip() == f"edgeopt {edgeopt.__version__}"


def test_dash_h_is_help_for_every_command(capsys, monkeypatch) -> None:
    paths = [p for p, _ in _commands(cli.command())]
    assert ("deploy",) in paths and ("plugins", "doctor") in paths
    for path in paths:
        status, out, err = _main([*path, "-h"], capsys, monkeypatch)
        assert status == 0 and "Usage: edgeopt" in out, (path, err)


def test_every_option_has_help_and_flags_show_no_placeholder() -> None:
    missing, placeholders = [], []
    for path, command in _commands(cli.command()):
        for param in command.params:
            if param.param_type_name != "option" or getattr(param, "hidden", False):
                continue
            if not (param.help or "").strip():
                missing.append(f"{' '.join(path)} {param.opts[0]}")
            if (param.is_flag or param.count) and param.metavar != "":
                placeholders.append(f"{' '.join(path)} {param.opts[0]}")
    assert missing == [] and placeholders == []


def test_deploy_help_is_grouped_and_fits_80_columns(capsys, monkeypatch) -> None:
    status, out, _ = _main(["deploy", "-h"], capsys, monkeypatch)
    assert status == 0 and "<bool>" not in out
    for panel in ("Target", "Accuracy and data", "Model input", "Timing", "Search", "Output", "Compression"):
        assert f"─ {panel}" in out, panel
    assert max(len(line) for line in out.splitlines()) <= 80
    assert len(out.splitlines()) < 110, "deploy --help grew long again"


def test_environment_variables_are_shown_with_their_options(capsys, monkeypatch) -> None:
    from edgeopt.settings import SETTINGS

    known = {s.name for s in SETTINGS}
    backed = {}
    for path, command in _commands(cli.command()):
        for param in command.params:
            for var in [param.envvar] if isinstance(param.envvar, str) else (param.envvar or []):
                backed[var] = path
    assert {"EDGEOPT_LOG_LEVEL", "EDGEOPT_DEBUG"} <= set(backed) <= known
    for var, path in backed.items():
        _, out, _ = _main([*path, "-h"], capsys, monkeypatch, columns=200)
        assert f"env var: {var}" in out, var


def test_shell_completion_script_and_completions(tmp_path) -> None:
    script = _run("--show-completion", "bash", cwd=tmp_path)
    assert script.returncode == 0 and "_edgeopt_completion" in script.stdout and "complete " in script.stdout
    env = {"_EDGEOPT_COMPLETE": "complete_bash", "COMP_WORDS": "edgeopt dep", "COMP_CWORD": "1"}
    done = _run(cwd=tmp_path, env=env)
    assert done.returncode == 0 and done.stdout.split() == ["deploy"], done.stderr


# --- exit statuses ---------------------------------------------------------------------------------------


def test_docs_table_matches_the_classes() -> None:
    doc = (ROOT / "docs" / "errors.md").read_text()
    table = doc[doc.index("## Exit status"):doc.index("## E000")]
    rows = {int(m.group(1)): m.group(2) for m in re.finditer(r"^\| (\d+) \| (.*)$", table, re.M)}
    assert {0, 2, 70, 130} <= set(rows)
    for cls in errors.error_classes():
        assert cls.code in rows.get(cls.exit_status, ""), (cls.__name__, cls.exit_status)
    assert errors.exit_status_for_code("E310") == 7 and errors.exit_status_for_code("E999") == 1


@pytest.mark.parametrize(
    ("error", "status"),
    [(errors.UnsupportedModelError("m"), 4), (errors.TargetUnavailable("t"), 7),
     (errors.AccuracyBudgetExceeded("a"), 10), (errors.ConversionError("c"), 9), (KeyError("bug"), 70)],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
)
def test_each_error_family_exits_with_its_status(error, status, capsys, monkeypatch) -> None:
    def fake(*_args, **_kwargs):  # noqa: ANN202
        raise error

    monkeypatch.setattr(edgeopt.api, "deploy", fake)
    code, out, err = _main(["deploy", "m.onnx"], capsys, monkeypatch)
    assert code == status and out == ""
    if status == 70:
        assert "Traceback" in err and "KeyError: 'bug'" in err
    else:
        assert err.splitlines()[-2].startswith(f"error[{error.code}]") and "Traceback" not in err


def test_usage_and_model_errors_through_the_console_script(tmp_path) -> None:
    usage = _run("deploy", "m.onnx", "--bogus", cwd=tmp_path)
    assert usage.returncode == 2 and "No such option" in usage.stderr
    missing = _run("deploy", "nope.onnx", cwd=tmp_path)
    assert missing.returncode == 4 and "error[E100]" in missing.stderr


def test_ctrl_c_during_a_deploy_prints_one_line_and_leaves_nothing(tmp_path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    env = {**os.environ, "EDGEOPT_REGISTRY": str(tmp_path / "registry.db"), "TMPDIR": str(tmp),
           "EDGEOPT_CACHE_DIR": str(tmp_path / "cache"), "COLUMNS": "80"}
    env.pop("EDGEOPT_DEBUG", None)
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edgeopt", "deploy", str(DIGITS / "digits_cnn.onnx"), "--precision", "int8",
             "--calib", str(DIGITS / "calib.npz"), "--eval", str(DIGITS / "eval.npz"), "--timing-s", "30",
             "--no-cache"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        deadline = time.monotonic() + 120
        while "• compiling candidate" not in stderr.read_text() and proc.poll() is None:
            assert time.monotonic() < deadline, stderr.read_text()
            time.sleep(0.1)
        time.sleep(0.5)  # inside the candidate search
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    text = stderr.read_text()
    assert proc.returncode == errors.INTERRUPTED_EXIT_STATUS, text
    assert text.rstrip().splitlines()[-1] == "interrupted; nothing was written", text
    assert "Traceback" not in text and out == ""
    assert not list(tmp_path.glob("*.edgeopt")) and not list(tmp_path.glob(".*tmp*")), list(tmp_path.iterdir())
    # (other libraries may leave their own files there, e.g. a '.ses' session id)
    assert [p for p in tmp.iterdir() if "edgeopt" in p.name] == [], "an interrupted deploy left temp files behind"
    assert not (tmp_path / "registry.db").exists() or "digits_cnn" not in _run(
        "models", "--json", cwd=tmp_path, env={"EDGEOPT_REGISTRY": str(tmp_path / "registry.db")}).stdout


# --- logging and warnings --------------------------------------------------------------------------------


def test_verbose_and_log_level_set_the_edgeopt_logger(capsys, monkeypatch) -> None:
    logger = logging.getLogger("edgeopt")
    monkeypatch.setattr(logger, "level", logger.level)
    _main(["-vv", "devices", "--json"], capsys, monkeypatch)
    assert logger.level == logging.DEBUG
    _main(["--log-level", "error", "devices", "--json"], capsys, monkeypatch)
    assert logger.level == logging.ERROR
    monkeypatch.setenv("EDGEOPT_LOG_LEVEL", "info")
    _main(["devices", "--json"], capsys, monkeypatch)
    assert logger.level == logging.INFO
    status, _, err = _main(["--log-level", "loud", "devices"], capsys, monkeypatch)
    assert status == 2 and "--log-level" in err


def test_sdk_warnings_are_edgeopt_warnings() -> None:
    from edgeopt.pipeline.request import LogEvents

    assert issubclass(errors.EdgeoptWarning, UserWarning)
    with pytest.warns(errors.EdgeoptWarning, match="synthetic"):
        LogEvents().warn("calibrated on synthetic data")


# --- project defaults ------------------------------------------------------------------------------------


def test_project_defaults_from_pyproject_and_flags_win(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.edgeopt]\ntarget = "openvino"\nmax-drop = 0.5\ncalib = "data/c.npz"\n'
        '\n[tool.edgeopt.profile]\nbatch = "1,8"\n')
    inner = tmp_path / "src" / "deep"
    inner.mkdir(parents=True)
    monkeypatch.chdir(inner)
    path, defaults = project_config.default_map(cli.command(), inner)
    assert path == tmp_path / "pyproject.toml"
    assert defaults["profile"] == {"batch": "1,8"} and "target" not in defaults.get("models", {})
    seen = _capture(monkeypatch)
    status, _, _ = _main(["deploy", "m.onnx"], capsys, monkeypatch)
    assert status == 10 and seen["target"] == "openvino" and seen["max_drop"] == 0.5
    assert Path(seen["calib"]) == tmp_path / "data" / "c.npz"
    seen.clear()
    _main(["deploy", "m.onnx", "--target", "cpu", "--max-drop", "2"], capsys, monkeypatch)
    assert seen["target"] == "cpu" and seen["max_drop"] == 2.0


def test_edgeopt_toml_wins_over_pyproject_and_bad_keys_are_usage_errors(tmp_path, capsys, monkeypatch) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.edgeopt]\ntarget = "openvino"\n')
    (tmp_path / "edgeopt.toml").write_text('target = "cpu"\n[compare]\ntargets = "cpu,openvino"\n')
    monkeypatch.chdir(tmp_path)
    seen = _capture(monkeypatch, "compare")
    _main(["compare", "m.onnx"], capsys, monkeypatch)
    assert seen["targets"] == ["cpu", "openvino"]
    (tmp_path / "edgeopt.toml").write_text("max-drpo = 1\n")
    status, _, err = _main(["deploy", "m.onnx"], capsys, monkeypatch)
    assert status == 2 and "error[E010]" in err and "edgeopt.toml" in err and "--max-drpo" in err
    (tmp_path / "edgeopt.toml").write_text("max-drop = -1\n")
    status, _, err = _main(["deploy", "m.onnx"], capsys, monkeypatch)
    assert status == 2 and "must be 0 or more" in err


# --- the newcomer's pass ---------------------------------------------------------------------------------


def test_out_of_range_values_are_refused_before_any_work(tmp_path) -> None:
    began = time.monotonic()
    result = _run("deploy", str(DIGITS / "digits_cnn.onnx"), "--max-drop", "-1", cwd=tmp_path)
    assert result.returncode == 2 and "--max-drop" in result.stderr and "0 or more" in result.stderr
    assert "•" not in result.stderr and time.monotonic() - began < 30 and not list(tmp_path.iterdir())
    assert _run("deploy", "m.onnx", "--timing-s", "0", cwd=tmp_path).returncode == 2


def test_precision_is_case_insensitive(capsys, monkeypatch) -> None:
    seen = _capture(monkeypatch)
    _main(["deploy", "m.onnx", "--precision", "INT8"], capsys, monkeypatch)
    assert seen["precision"] == "int8"


def test_unavailable_target_hint_does_not_repeat_the_message() -> None:
    from edgeopt.plugin.manager import get_plugin_manager

    pm = get_plugin_manager()
    missing = [t for t in pm.targets() if not t.available]
    if not missing:
        pytest.skip("every installed target is available here")
    with pytest.raises(errors.TargetUnavailable) as info:
        pm.target(missing[0].name)
    assert missing[0].reason in info.value.message and missing[0].reason not in info.value.hint
    assert "edgeopt targets" in info.value.hint


def test_verify_of_a_mistyped_path_and_inspect_of_a_data_file(tmp_path) -> None:
    verify = _run("verify", "digits-cpu.edgopt", cwd=tmp_path)
    assert verify.returncode == 11 and "does not exist" in verify.stderr and "never edit" not in verify.stderr
    inspect = _run("inspect", str(DIGITS / "calib.npz"), cwd=tmp_path)
    assert inspect.returncode == 4 and "is a data file, not a model" in inspect.stderr
    assert "--calib" in inspect.stderr and "edgeopt inspect MODEL" not in inspect.stderr


def test_deploy_docstring_says_what_model_is_and_what_it_raises() -> None:
    doc = edgeopt.deploy.__doc__
    assert "``model`` is" in doc and ".onnx" in doc and "factory" in doc
    for name in ("ModelError", "TargetUnavailable", "AccuracyBudgetExceeded", "EdgeoptError"):
        assert name in doc, name


@pytest.fixture(scope="module")
def digits_artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("art") / "digits.edgeopt"
    os.environ.setdefault("EDGEOPT_REGISTRY", "off")
    edgeopt.deploy(str(DIGITS / "digits_cnn.onnx"), precision="fp32", eval=str(DIGITS / "eval.npz"), out=out,
                   timing_s=0.2, cache=False, name=None)
    return out


def test_predict_takes_a_bare_array_for_a_single_input_model(digits_artifact) -> None:
    x = np.load(DIGITS / "eval.npz")["input"][:1]
    with edgeopt.load(digits_artifact) as predict:
        bare, named = predict(x), predict({"input": x})
    assert list(bare) == list(named) and np.array_equal(bare["logits"], named["logits"])


def test_deploy_and_profile_report_one_size(digits_artifact) -> None:
    manifest = edgeopt.artifact.write.verify_artifact(digits_artifact)
    assert edgeopt.profile(digits_artifact, timing_s=0.1)["size_bytes"] == manifest["profile"]["size_bytes"]


def test_host_is_listed_and_the_energy_line_names_its_profile(capsys, monkeypatch) -> None:
    status, out, _ = _main(["devices"], capsys, monkeypatch)
    assert status == 0 and re.search(r"^host\s", out, re.M)
    monkeypatch.setenv("COLUMNS", "200")
    from rich.console import Console

    print_profile_extras(Console(), {"energy": {"joules_per_inference": 1e-3, "method": "estimated:device-profile"}},
                         device={"name": "host", "description": "this machine, figures from x86-avx2-2core"})
    assert "device profile 'host': this machine, figures from x86-avx2-2core" in capsys.readouterr().out


# --- tables at 80 columns --------------------------------------------------------------------------------

LONG = "a-very-long-target-name"


def _check(out: str, names: list[str]) -> None:
    assert max(len(line) for line in out.splitlines()) <= 80, out
    assert "…" not in out, out
    for name in names:
        assert name in out, f"{name!r} cut or missing:\n{out}"


@pytest.mark.parametrize("command", ["targets", "devices", "plugins"])
def test_listing_commands_fit_80_columns(command, capsys, monkeypatch) -> None:
    _, listed, _ = _main([command, "--json"], capsys, monkeypatch)
    names = [item["name"] for item in __import__("json").loads(listed)]
    if command == "targets":
        names += [p for item in __import__("json").loads(listed) for p in item["precisions"]]
    status, out, _ = _main([command], capsys, monkeypatch)
    assert status == 0
    _check(out, names)
    _, wide, _ = _main([command, "--wide"], capsys, monkeypatch)
    assert "…" not in wide and all(n in wide for n in names)


def test_the_deploy_candidate_table_marks_the_shipped_row(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    labels = ["fp32 (ORT extended)", "int8 static per-channel percentile (VNNI)", "int8-dynamic per-channel (VNNI)"]
    rows = [{"label": label, "status": "accepted", "latency_p50_s": 1e-5, "latency_p90_s": 2e-5,
             "metric": "accuracy", "candidate": 98.0, "drop": 0.0} for label in labels]
    rows[2]["status"], rows[2]["reason"] = "refused", "slower than fp32 " * 6
    print_table(candidates_table(rows, shipped="fp32 (ORT extended)"))
    out = capsys.readouterr().out
    _check(out, ["fp32 (ORT extended)", "per-channel", "percentile", "int8-dynamic"])
    assert "▶ fp32 (ORT extended)" in out and "shipped" in out


def test_models_monitor_and_compare_tables_fit_80_columns(capsys, monkeypatch) -> None:
    from edgeopt.cli import compare_command, monitor_command
    from edgeopt.registry import store

    ref = "ch_ppocr_mobile_v2.0_cls_infer:12"
    record = SimpleNamespace(ref=ref, stages=["production"], target="openvino-gpu", device="raspberry-pi-5",
                             precision="int8-dynamic", metrics={"metric": "fidelity:top1_agreement", "candidate": 99.5},
                             profile={"latency": {"1": {"p50": 1e-3, "p90": 2e-3}}, "size_bytes": 123456},
                             created="2026-01-01T00:00:00.000")
    registry = SimpleNamespace(path=Path("/somewhere/registry.db"), list=lambda name=None: [record, record])
    monkeypatch.setattr(store, "require_registry", lambda: registry)
    status, out, _ = _main(["models"], capsys, monkeypatch)
    assert status == 0
    _check(out, [ref, "openvino-gpu", "int8-dynamic"])

    monkeypatch.setenv("COLUMNS", "80")
    feature = SimpleNamespace(feature="input[channel 17].mean", psi=0.1, psi_noise=0.01, ks=0.2, p_value=0.001,
                              field_mean=1.0, reference_mean=0.5, drifted=True)
    report = SimpleNamespace(deployment=ref, samples=100, calls=10, features=[feature], latency=[], notes=[],
                             advice=["retrain"], drifted=True)
    monitor_command._print(report)
    _check(capsys.readouterr().out, ["input[channel 17].mean"])

    result = {"target": LONG, "label": "int8 static per-channel minmax (VNNI)", "precision": "int8",
              "latency": {"p50": 1e-3, "stdev": 1e-5, "p90": 2e-3, "throughput": 1000.0},
              "setting": {"threads": 2, "batch": 1}, "size_bytes": 12345, "metric": "accuracy", "candidate": 98.0,
              "drop": 0.0, "energy_j": 1e-3, "energy_method": "estimated", "status": "winner"}
    comparison = {"device": "host", "device_isa": ["avx2"], "objective": "latency", "max_drop": 1.0,
                  "results": [result, {"target": "openvino-npu", "status": "unavailable", "reason": "no NPU"}],
                  "why": "fastest", "timing": {"method": "measured:wallclock"}}
    print_table(compare_command._table(comparison))
    _check(capsys.readouterr().out, [LONG, "openvino-npu", "per-channel", "minmax"])
