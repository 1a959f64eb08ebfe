"""The package drawing of docs/architecture.md, enforced: no import cycle, each layer imports only downward,
and plugins reach the core only through ``edgeopt.plugin``.

Every import counts, wherever it is written: module level, inside a function, under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = ROOT / "edgeopt"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "types", "settings", "extras", "version", "hashing", "lazy"),
    ("process",),
    ("measure",),
    ("graph",),
    ("data",),
    ("passes",),
    ("evaluate",),
    ("plugin",),
    ("importers", "builtin", "compression"),
    ("search",),
    ("artifact",),
    ("pipeline",),
    ("registry", "monitoring"),
    ("api", "predictor"),
    ("cli", "farm", "testing", "__init__", "__main__"),
)
"""docs/architecture.md's drawing, bottom first: a unit (top-level module or subpackage of ``edgeopt``) may import
units of its own layer or of layers below it."""

PLUGIN_FACADE = "edgeopt.plugin"
TEST_HELPERS = "edgeopt.testing"


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_names(path: Path, module: str) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Every import of ``path`` as ``(absolute module, names imported from it)``; ``import a.b`` is ``("a.b", ())``."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            yield prefix, tuple(alias.name for alias in node.names)


def core_graph() -> dict[str, set[str]]:
    """Module → the ``edgeopt`` modules it imports. ``from pkg import sub`` counts as importing the submodule
    ``pkg.sub`` when there is one (else ``pkg`` itself); a name is resolved to the module or package defining it."""
    modules = {_module_name(p, CORE): p for p in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for prefix, names in imported_names(path, name):
            if prefix.split(".")[0] != "edgeopt":
                continue
            submodules = [f"{prefix}.{n}" for n in names if f"{prefix}.{n}" in modules]
            targets = submodules if submodules and len(submodules) == len(names) else [prefix, *submodules]
            for target in targets:
                while target not in modules and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != name:
                    deps.add(target)
        graph[name] = deps
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def unit(module: str) -> str:
    """The top-level module or subpackage of ``edgeopt`` that ``module`` belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(module: str) -> int:
    name = unit(module)
    for i, names in enumerate(LAYERS):
        if name in names:
            return i
    raise AssertionError(f"{module}: unit {name!r} is in no layer of LAYERS; add it to the drawing")


def test_no_import_cycle() -> None:
    found = cycles(core_graph())
    assert not found, "import cycles in edgeopt:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_each_layer_imports_only_downward() -> None:
    wrong = sorted(
        f"{src} (layer {layer(src)}) imports {dst} (layer {layer(dst)})"
        for src, deps in core_graph().items()
        for dst in deps
        if layer(dst) > layer(src)
    )
    assert not wrong, "imports against docs/architecture.md's drawing:\n" + "\n".join(wrong)


def _plugin_sources() -> Iterator[tuple[Path, bool]]:
    """Every first-party plugin's Python file and whether it is a test (tests may also use ``edgeopt.testing``)."""
    for base in [*sorted((ROOT / "plugins").iterdir()), ROOT / "examples" / "edgeopt-ncnn"]:
        for path in sorted(base.rglob("*.py")):
            relative = path.relative_to(base).parts
            yield path, "tests" in relative or path.name.startswith("test_") or path.name == "conftest.py"


def _allowed_for_plugins(name: str, *, in_test: bool) -> bool:
    """The facade, and the public SDK (``import edgeopt``: an integration such as MLflow's loader calls
    ``edgeopt.load``); in tests also ``edgeopt.testing``. Never a core module."""
    if name in (PLUGIN_FACADE, "edgeopt"):
        return True
    return in_test and (name == TEST_HELPERS or name.startswith(TEST_HELPERS + "."))


@pytest.mark.parametrize("path,in_test", list(_plugin_sources()), ids=lambda v: str(v)[-60:] if isinstance(v, Path)
                         else str(v))
def test_plugins_import_only_the_facade(path: Path, in_test: bool) -> None:
    modules = {prefix for prefix, _ in imported_names(path, path.stem) if prefix.split(".")[0] == "edgeopt"}
    wrong = sorted(n for n in modules if not _allowed_for_plugins(n, in_test=in_test))
    assert not wrong, f"{path.relative_to(ROOT)} imports {wrong}; plugins import only {PLUGIN_FACADE}"


def test_scaffolded_plugin_imports_only_the_facade() -> None:
    templates = CORE / "plugin" / "scaffold_templates"
    imports = set()
    for template in templates.rglob("*.tmpl"):
        imports |= set(re.findall(r"^\s*(?:from|import) (edgeopt[\w.]*)", template.read_text(), re.M))
    assert imports, "the scaffold templates import nothing from edgeopt"
    assert imports <= {PLUGIN_FACADE, TEST_HELPERS}, imports


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
