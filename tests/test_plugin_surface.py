"""The plugin surface: hook kinds declared in the specs, dispatch one plugin at a time (wrappers refused), the
``edgeopt.plugin`` facade, and lazy SDK imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types

import pytest

import edgeopt.plugin as facade
from edgeopt.plugin import hookspecs
from edgeopt.plugin.hookspecs import EACH, FIRST, OWNER, hook_kind, hook_names
from edgeopt.plugin.manager import TARGET_HOOKS, TIMED_HOOKS, PluginManager


def test_every_hook_declares_its_kind_in_the_spec() -> None:
    names = hook_names()
    assert set(names) == {n for n in vars(hookspecs) if n.startswith("edgeopt_")}
    kinds = {n: hook_kind(n) for n in names}
    assert {n for n, k in kinds.items() if k.kind == OWNER} == {"edgeopt_plan", "edgeopt_compile", "edgeopt_runner"}
    assert {n for n, k in kinds.items() if k.kind == FIRST} == {"edgeopt_import"}
    assert kinds["edgeopt_register_targets"].kind == EACH and kinds["edgeopt_register_targets"].timed
    assert set(TARGET_HOOKS) == {"edgeopt_plan", "edgeopt_compile", "edgeopt_runner"}
    assert set(TIMED_HOOKS) == {"edgeopt_register_targets", "edgeopt_plan", "edgeopt_metrics"}
    with pytest.raises(KeyError, match="not an edgeopt hook"):
        hook_kind("edgeopt_no_such_hook")


def _plugin(**hooks: object) -> types.ModuleType:
    module = types.ModuleType("fake_plugin")
    module.EDGEOPT_HOOK_API = 1
    for name, fn in hooks.items():
        setattr(module, name, fn)
    return module


def test_a_wrapper_implementation_is_refused_and_the_others_still_work() -> None:
    @facade.hookimpl(wrapper=True)
    def edgeopt_energy_meters(device):  # noqa: ANN001, ANN202
        return (yield)

    @facade.hookimpl
    def edgeopt_register_targets(register):  # noqa: ANN001, ANN202
        register.add_target("plain", description="d", precisions=("fp32",))

    pm = PluginManager()
    pm.register(_plugin(edgeopt_energy_meters=edgeopt_energy_meters), "wrapping")
    pm.register(_plugin(edgeopt_register_targets=edgeopt_register_targets), "plain")
    status = {s.name: s for s in pm.plugins()}
    assert status["wrapping"].status == "broken"
    assert "implements edgeopt_energy_meters as a wrapper" in status["wrapping"].error
    assert status["plain"].status == "ok" and [t.name for t in pm.targets()] == ["plain"]


def test_each_plugin_is_called_alone_and_a_failing_one_is_quarantined() -> None:
    @facade.hookimpl
    def edgeopt_register_targets(register):  # noqa: ANN001, ANN202
        raise RuntimeError("boom")

    @facade.hookimpl
    def good_targets(register):  # noqa: ANN001, ANN202
        register.add_target("good", description="d", precisions=("fp32",))

    pm = PluginManager()
    pm.register(_plugin(edgeopt_register_targets=edgeopt_register_targets), "bad")
    good = _plugin()
    good.edgeopt_register_targets = facade.hookimpl(specname="edgeopt_register_targets")(good_targets)
    pm.register(good, "good")
    assert [t.plugin for t in pm.targets()] == ["good"]
    assert {s.name: s.status for s in pm.plugins()} == {"bad": "broken", "good": "ok"}


def test_the_facade_exports_resolve_and_nothing_else() -> None:
    for name in facade.__all__:
        assert getattr(facade, name) is not None, name
    with pytest.raises(AttributeError):
        facade.PluginManager  # noqa: B018 - the manager is not part of a plugin's surface


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_importing_edgeopt_and_the_facade_loads_no_sdk_and_no_runtime() -> None:
    loaded = _fresh("""
        import sys
        import edgeopt, edgeopt.plugin, edgeopt.testing
        print(sorted(m for m in ("edgeopt.api", "edgeopt.pipeline.deploy", "onnx", "onnxruntime", "numpy")
                     if m in sys.modules))
    """)
    assert loaded == "[]"


def test_sdk_names_win_over_subpackages_imported_first() -> None:
    out = _fresh("""
        import edgeopt.compression.spec, edgeopt
        print(callable(edgeopt.compress), edgeopt.compress.__module__)
    """)
    assert out == "True edgeopt.compression.sdk"
