"""The README's command lines run as written.

The shell block after ``<!-- readme-test: run -->`` in README.md is executed line by line (continuations
joined, trailing comments dropped) from a scratch folder that links ``examples/`` from the repository, so
relative paths resolve as they do from a clone. The fast tests check every line's command and options
against the CLI, every repository path it names, and run the commands that need no deploy; the slow test
runs the whole block in order."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import edgeopt.cli as cli

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- readme-test: run -->"
QUICK = {"targets", "devices", "plugins", "inspect"}


def readme_commands(text: str | None = None) -> list[list[str]]:
    """The marked block's commands, each split like the shell splits it."""
    text = (ROOT / "README.md").read_text() if text is None else text
    assert text.count(MARK) == 1, f"README.md needs exactly one {MARK} block"
    block = re.search(r"```bash\n(.*?)```", text[text.index(MARK):], re.S)
    assert block, f"no ```bash block after {MARK}"
    joined = re.sub(r"\\\n\s*", " ", block.group(1))
    return [shlex.split(line, comments=True) for line in joined.splitlines() if shlex.split(line, comments=True)]


def test_the_block_is_found_and_keeps_its_commands() -> None:
    commands = readme_commands()
    assert all(c[0] in ("edgeopt", "python") for c in commands), commands
    verbs = [c[1] for c in commands if c[0] == "edgeopt"]
    for verb in ("deploy", "verify", "profile", "inspect", "targets", "devices", "plugins", "compare", "models",
                 "show", "diff", "promote"):
        assert verb in verbs, f"the README no longer shows `edgeopt {verb}`"
    assert not any("|" in c for c in commands), "a pseudo-pipe (`a | b`) runs as a shell pipe"
    assert "bash scripts/demo.sh" in (ROOT / "README.md").read_text()
    assert "bash scripts/test.sh" in (ROOT / "README.md").read_text()


def test_each_line_parses_and_names_files_that_exist(capsys, monkeypatch) -> None:
    group = cli.command()
    for command in readme_commands():
        for arg in command:
            if arg.startswith("examples/"):
                assert (ROOT / arg).exists(), f"{arg} (in {' '.join(command)}) is not in the repository"
        if command[0] == "python":
            assert command[1] == "-m" and (ROOT / (command[2].replace(".", "/") + ".py")).is_file(), command
            continue
        # Click parses every option before --help acts, so a renamed or mistyped option fails here
        monkeypatch.setattr(sys, "argv", ["edgeopt", *command[1:], "--help"])
        try:
            group.main(args=[*command[1:], "--help"], prog_name="edgeopt", standalone_mode=False)
        except SystemExit as exc:  # pragma: no cover - Click only exits like this on errors here
            pytest.fail(f"{' '.join(command)}: exit {exc.code}")
        assert "Usage: edgeopt" in capsys.readouterr().out, command


def _env(tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "EDGEOPT_REGISTRY": str(tmp_path / "registry.db"), "COLUMNS": "80",
           "EDGEOPT_CACHE_DIR": str(tmp_path / "cache"), "PYTHONPATH": str(tmp_path)}
    env.pop("EDGEOPT_DEBUG", None)
    return env


def _run(command: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "edgeopt", *command[1:]] if command[0] == "edgeopt" else [sys.executable,
                                                                                            *command[1:]]
    return subprocess.run(argv, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=900)


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
    return tmp_path


def test_the_commands_that_need_no_deploy_run_as_written(scratch) -> None:
    quick = [c for c in readme_commands() if c[0] == "edgeopt" and c[1] in QUICK]
    assert {c[1] for c in quick} == QUICK
    for command in quick:
        done = _run(command, scratch)
        assert done.returncode == 0 and done.stdout.strip(), (command, done.stderr)


@pytest.mark.slow
def test_every_command_runs_as_written(scratch) -> None:
    for command in readme_commands():
        done = _run(command, scratch)
        assert done.returncode == 0, f"{' '.join(command)}: exit {done.returncode}\n{done.stderr[-3000:]}"
