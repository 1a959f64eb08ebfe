"""``edgeopt plugins new NAME``: write a new target plugin distribution that works out of the box.

The generated distribution has a pyproject with the ``edgeopt`` entry point, hook implementations
that delegate to ONNX Runtime's CPU provider (so it deploys and passes the conformance suite before
anyone edits it), tests wired to ``edgeopt.testing.ConformanceSuite`` and a README. The templates
live in ``edgeopt/plugin/scaffold_templates``.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from edgeopt.errors import OutputPathError, PluginError

TEMPLATES = Path(__file__).with_name("scaffold_templates")
FILES = {
    "pyproject.toml": "pyproject.toml.tmpl",
    "README.md": "README.md.tmpl",
    "{module}/__init__.py": "module_init.py.tmpl",
    "{module}/compile.py": "module_compile.py.tmpl",
    "{module}/runtime.py": "module_runtime.py.tmpl",
    "tests/test_conformance.py": "test_conformance.py.tmpl",
}
"""Generated file (relative to the distribution folder) → its template."""

_NAME = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
_RESERVED = {"auto", "edgeopt", "test", "tests"}


@dataclass(frozen=True)
class PluginNames:
    """The names one plugin goes by."""

    target: str
    """What users pass to ``--target`` (and the entry point's name)."""
    distribution: str
    """The PyPI name, ``edgeopt-<target>``."""
    module: str
    """The import name, ``edgeopt_<target>`` with dashes as underscores."""
    class_stem: str
    """CamelCase stem for generated classes."""

    @property
    def runner_class(self) -> str:
        return f"{self.class_stem}Runner"


def plugin_names(name: str) -> PluginNames:
    """The names for plugin ``name`` (``edgeopt-`` prefix optional); ``PluginError`` when unusable."""
    target = name.strip().lower()
    target = target.removeprefix("edgeopt-").removeprefix("edgeopt_")
    if not _NAME.fullmatch(target) or target in _RESERVED:
        raise PluginError(
            f"{name!r} cannot name a plugin",
            hint="use lowercase letters, digits and single dashes, starting with a letter (e.g. acme-npu)",
        )
    stem = "".join(part.capitalize() for part in re.split(r"[-_]", target))
    return PluginNames(target, f"edgeopt-{target}", f"edgeopt_{target.replace('-', '_')}", stem)


def render(names: PluginNames) -> dict[str, str]:
    """Every generated file's relative path and text."""
    values = {
        "target": names.target,
        "distribution": names.distribution,
        "module": names.module,
        "class_stem": names.class_stem,
        "runner_class": names.runner_class,
    }
    return {
        rel.format(module=names.module): Template((TEMPLATES / template).read_text()).substitute(values)
        for rel, template in FILES.items()
    }


def scaffold_plugin(name: str, parent: Path) -> Path:
    """Write distribution ``edgeopt-<name>`` into ``parent`` and return its folder.

    Refuses (``OutputPathError``) a destination that exists and is not empty. The files are written
    to a temp folder beside it and renamed into place, so a failure leaves nothing behind.
    """
    names = plugin_names(name)
    root = Path(parent) / names.distribution
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise OutputPathError(
            f"{root} already exists and is not empty", hint="choose another --dir, or remove that folder first"
        )
    files = render(names)
    staging: Path | None = None
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{names.distribution}-", dir=root.parent))
        for rel, text in files.items():
            path = staging / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        if root.exists():
            root.rmdir()
        staging.rename(root)
    except OSError as exc:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise OutputPathError(f"cannot write the plugin into {root}: {exc.strerror or exc}") from exc
    return root
