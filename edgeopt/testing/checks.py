"""Contract checks on what a plugin's hooks return, usable outside the suite too."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from edgeopt.types import Compiled, PassSpec, Plan


def check_compiled(compiled: object, plan: Plan, workdir: Path) -> list[str]:
    """Problems with what ``edgeopt_compile`` returned for ``plan`` in ``workdir``; empty when it keeps the contract."""
    if not isinstance(compiled, Compiled):
        return [f"returned {type(compiled).__name__}, not edgeopt.types.Compiled"]
    problems = []
    directory = Path(compiled.directory).resolve()
    if not directory.is_relative_to(workdir.resolve()):
        problems.append(f"Compiled.directory {directory} is outside the workdir {workdir}")
    if compiled.plan != plan:
        problems.append("Compiled.plan is not the plan it was given")
    if compiled.model_file not in compiled.files:
        problems.append(f"Compiled.model_file {compiled.model_file!r} is not listed in Compiled.files")
    if len(set(compiled.files)) != len(compiled.files):
        problems.append(f"Compiled.files lists a file twice: {list(compiled.files)}")
    for name in compiled.files:
        rel = PurePosixPath(name)
        if rel.is_absolute() or ".." in rel.parts:
            problems.append(f"Compiled.files entry {name!r} is not a plain relative path")
        elif not (directory / name).is_file():
            problems.append(f"declared file {name!r} does not exist under {directory}")
    if not isinstance(compiled.runtime, str) or not compiled.runtime.strip():
        problems.append("Compiled.runtime is empty; name the runtime and its version")
    if not all(isinstance(p, PassSpec) for p in compiled.passes):
        problems.append("Compiled.passes holds something other than PassSpec")
    return problems
