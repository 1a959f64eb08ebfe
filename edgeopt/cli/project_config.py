"""Project defaults for the CLI: an ``edgeopt.toml``, or a ``[tool.edgeopt]`` section of ``pyproject.toml``, in
the current directory or the nearest parent that has one, turned into Click's ``default_map``.

```toml
[tool.edgeopt]              # keys apply to every command that has the option
target = "openvino"
max-drop = 0.5
calib = "data/calib.npz"    # paths are relative to the file they are written in
eval = "data/eval.npz"

[tool.edgeopt.compare]      # a command's own table wins over the keys above
targets = "cpu,openvino"
```

In ``edgeopt.toml`` the same keys sit at the top level (and ``[compare]`` for one command). Keys are option
names without the dashes (``max-drop`` or ``max_drop``). Top-level keys apply to the commands that build
(``deploy`` and ``compare``); any other command takes keys only from a table of its own
(``[tool.edgeopt.profile]``). Precedence: the command line, then an option's
``EDGEOPT_*`` variable, then this file, then the built-in default (Click's own order). A key no command of the
file's scope knows, or a value of the wrong type, is a ``CommandLineError`` naming the file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from edgeopt.errors import CommandLineError

CONFIG_FILE = "edgeopt.toml"
SHARED_COMMANDS = ("deploy", "compare")
"""The commands top-level keys apply to."""


def find_config(start: Path) -> tuple[Path, dict[str, Any]] | None:
    """The nearest ``edgeopt.toml`` or ``pyproject.toml`` with ``[tool.edgeopt]`` at ``start`` or above, and its
    table; None when there is none (a ``pyproject.toml`` without the section is passed over)."""
    for folder in (start, *start.parents):
        own = folder / CONFIG_FILE
        if own.is_file():
            return own, _read(own)
        project = folder / "pyproject.toml"
        if project.is_file():
            section = _read(project).get("tool", {}).get("edgeopt")
            if section is not None:
                if not isinstance(section, dict):
                    raise CommandLineError(f"{project}: [tool.edgeopt] must be a table",
                                           hint="write `[tool.edgeopt]` and `key = value` lines under it")
                return project, section
    return None


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CommandLineError(f"cannot read project defaults from {path}: {exc}",
                               hint="fix the TOML syntax, or rename the file to ignore it") from None


def _options(command: Any) -> dict[str, Any]:  # noqa: ANN401 - Typer's vendored Click command
    """A command's options by every name a config key may use: ``max-drop``, ``max_drop``, ``eval``."""
    names: dict[str, Any] = {}
    for param in command.params:
        if param.param_type_name != "option" or getattr(param, "hidden", False) or param.is_eager:
            continue
        for opt in param.opts:
            if opt.startswith("--"):
                names[opt[2:]] = names[opt[2:].replace("-", "_")] = param
    return names


def _value(param: Any, value: Any, *, base: Path, where: str) -> Any:  # noqa: ANN401 - TOML values
    """The value as the option takes it: relative paths against the config's folder. Click converts and checks
    ``default_map`` values (types, callbacks such as ``--max-drop`` >= 0) when it parses the command line, so a
    bad value is a usage error there, naming the option."""
    if param.multiple != isinstance(value, list):
        kind = "a list" if param.multiple else "one value"
        raise CommandLineError(f"{where} must be {kind}", hint="see `edgeopt COMMAND --help` for the option")
    descriptor = getattr(param, "type_descriptor", None)
    if getattr(descriptor, "is_path", False):
        values = [str(base / Path(v).expanduser()) if isinstance(v, str) else v
                  for v in (value if param.multiple else [value])]
        return values if param.multiple else values[0]
    return value


def default_map(group: Any, start: Path | None = None) -> tuple[Path | None, dict[str, Any]]:
    """Click's ``default_map`` for ``group`` from the project file nearest to ``start`` (the current folder):
    ``{command: {param_name: value}}``, sub-groups nested the same way. ``(None, {})`` without a file."""
    found = find_config(Path.cwd() if start is None else start)
    if found is None:
        return None, {}
    path, table = found
    return path, _group_map(group, table, path=path, scope="")


def _group_map(group: Any, table: dict[str, Any], *, path: Path, scope: str) -> dict[str, Any]:
    commands = group.commands
    shared = {k: v for k, v in table.items() if not (k in commands and isinstance(v, dict))}
    used: set[str] = set()
    result: dict[str, Any] = {}
    for name, command in commands.items():
        own = table.get(name) if isinstance(table.get(name), dict) else {}
        if hasattr(command, "commands"):  # a sub-group: only its own table applies
            sub = _group_map(command, own, path=path, scope=f"{scope}{name}.") if own else {}
            if sub:
                result[name] = sub
            continue
        options = _options(command)
        defaults: dict[str, Any] = {}
        for key, value in {**(shared if name in SHARED_COMMANDS else {}), **own}.items():
            param = options.get(key)
            if param is None:
                if key in own:
                    raise CommandLineError(f"{path}: `edgeopt {scope}{name}` has no option --{key.replace('_', '-')}",
                                           hint=f"run `edgeopt {scope}{name} --help` for its options")
                continue
            used.add(key)
            defaults[param.name] = _value(param, value, base=path.parent, where=f"{path}: {key}")
        if defaults:
            result[name] = defaults
    unknown = sorted(set(shared) - used)
    if unknown:
        where = f"`edgeopt {scope.rstrip('.')}` has no command" if scope else "neither deploy nor compare has an option"
        raise CommandLineError(f"{path}: {where} --{unknown[0].replace('_', '-')}" if not scope
                               else f"{path}: {where} {unknown[0]!r}",
                               hint="top-level keys are deploy/compare options such as target, max-drop, calib, "
                                    "eval; other commands take a table of their own, e.g. [tool.edgeopt.profile]")
    return result
