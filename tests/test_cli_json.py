"""Under ``--json`` a failure prints exactly one ``{"error": {"code", "message", "hint"}}`` object on stdout (and
keeps its one ``error[CODE]`` line on stderr), exit status not 0 — for every command that has ``--json``.

The CLI's ``main()`` runs in this process (plugins load once); one test runs the real console script."""

from __future__ import annotations

import json
import sys

import pytest
import typer

import edgeopt.cli as cli
from edgeopt.cli.failures import wants_json
from edgeopt.errors import INTERNAL_EXIT_STATUS, ModelError, exit_status_for_code
from tests.security.helpers import ROOT, run_cli

KNOWN_JSON_COMMANDS = {
    "deploy", "compare", "profile", "inspect", "targets", "devices", "monitor", "plugins", "plugins doctor",
    "models", "show", "diff", "redeploy",
}  # fmt: skip


def _main(argv: list[str], capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["edgeopt", *argv])
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as info:
        cli.main()
    out, err = capsys.readouterr()
    return int(info.value.code or 0), out, err


def _one_error_object(out: str, err: str, code: str) -> dict:
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out
    body = json.loads(lines[0])
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "hint"}, body
    assert body["error"]["code"] == code and body["error"]["message"] and body["error"]["hint"], body
    errors = [line for line in err.splitlines() if line.startswith("error[")]
    assert errors == [f"error[{code}]: {body['error']['message']}"], err
    assert "Traceback" not in err
    return body["error"]


def _json_commands() -> dict[str, list[str]]:
    """Every command of the app (plugin commands included) with a ``--json`` option: its name path."""
    cli._add_plugin_commands()
    found: dict[str, list[str]] = {}

    def walk(command, path: list[str]) -> None:
        if any("--json" in getattr(p, "opts", ()) for p in command.params):
            found[" ".join(path)] = path
        for name, sub in (getattr(command, "commands", None) or {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(cli.app), [])
    return found


def test_every_json_command_reports_a_command_line_error_as_one_json_object(capsys, monkeypatch) -> None:
    commands = _json_commands()
    assert set(commands) >= KNOWN_JSON_COMMANDS, sorted(commands)
    for name, path in commands.items():
        status, out, err = _main([*path, "--json", "--no-such-option"], capsys, monkeypatch)
        assert status == 2, (name, status, err)
        error = _one_error_object(out, err, "E010")
        assert "--no-such-option" in error["message"] and f"edgeopt {name} --help" in error["hint"], (name, error)


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["deploy", "{tmp}/missing.onnx"], "E100"),
        (["compare", "{tmp}/missing.onnx", "--targets", "cpu"], "E100"),
        (["inspect", "{tmp}/missing.onnx"], "E100"),
        (["profile", "{tmp}/missing.edgeopt"], "E700"),
        (["deploy", "{digits}", "--batch", "0"], "E200"),
        (["show", "nosuch"], "E800"),
        (["diff", "nosuch:1", "nosuch:2"], "E800"),
        (["redeploy", "nosuch"], "E800"),
        (["monitor", "nosuch", "{tmp}/field.jsonl"], "E800"),
        (["devices"], "E320"),
        (["edgetpu", "check", "{tmp}/missing.onnx"], "E200"),
    ],
    ids=lambda v: " ".join(v[:2]) if isinstance(v, list) else v,
)
def test_a_failure_under_json_is_one_error_object(argv, code, tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("EDGEOPT_REGISTRY", str(tmp_path / "registry.sqlite3"))
    if argv == ["devices"]:
        (tmp_path / "profiles").mkdir()
        (tmp_path / "profiles" / "broken.yaml").write_text("name: [\n")
        monkeypatch.setenv("EDGEOPT_DEVICE_PROFILES", str(tmp_path / "profiles"))
    if argv[0] == "edgetpu" and "edgetpu check" not in _json_commands():
        pytest.skip("the edgeopt-edgetpu plugin is not installed")
    args = [a.format(tmp=tmp_path, digits=ROOT / "examples" / "digits" / "digits_cnn.onnx") for a in argv]
    status, out, err = _main([*args, "--json"], capsys, monkeypatch)
    assert status == exit_status_for_code(code) and status not in (0, 1, 2), err
    _one_error_object(out, err, code)
    assert not list(tmp_path.glob("*.edgeopt")) and not list(tmp_path.glob("*.html"))


def test_without_json_stdout_stays_empty_and_stderr_has_the_line(tmp_path, capsys, monkeypatch) -> None:
    status, out, err = _main(["inspect", str(tmp_path / "missing.onnx")], capsys, monkeypatch)
    assert status == ModelError.exit_status and out == ""
    assert err.startswith("error[E100]: model file ") and "\n  hint: " in err


def test_a_bug_under_json_is_still_one_object_then_its_traceback(capsys, monkeypatch) -> None:
    import edgeopt.api

    def broken(**_kwargs):
        raise KeyError("oops")

    monkeypatch.setattr(edgeopt.api, "devices", broken)
    monkeypatch.setattr(sys, "argv", ["edgeopt", "devices", "--json"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == INTERNAL_EXIT_STATUS
    out, err = capsys.readouterr()
    assert "Traceback" in err and "KeyError: 'oops'" in err
    error = json.loads(out)["error"]
    assert error["code"] == "E000" and error["message"] == "internal error: KeyError: 'oops'"


def test_json_is_only_what_comes_before_a_double_dash() -> None:
    assert wants_json(["deploy", "m.onnx", "--json"]) and not wants_json(["deploy", "--", "--json"])
    assert not wants_json(["deploy", "--jsonx"])


def test_the_console_script_prints_the_json_error_and_nothing_else(tmp_path) -> None:
    result = run_cli("deploy", str(tmp_path / "missing.onnx"), "--json", cwd=tmp_path, env={"EDGEOPT_REGISTRY": "off"})
    assert result.returncode == ModelError.exit_status
    assert json.loads(result.stdout) == {"error": {
        "code": "E100", "message": f"model file {tmp_path / 'missing.onnx'} not found",
        "hint": "check the path (and the current directory)"}}
    assert result.error_lines == [f"error[E100]: model file {tmp_path / 'missing.onnx'} not found"]
