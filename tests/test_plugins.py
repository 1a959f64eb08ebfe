"""Plugin loading through real entry points: allowlist, quarantine, API version, misspelled hooks."""

from __future__ import annotations

import pytest

from edgeopt.plugin.manager import get_plugin_manager
from tests.plugin_dists import activate, make_plugin_dist

GOOD = """
from edgeopt import hookimpl
EDGEOPT_HOOK_API = 1

@hookimpl
def edgeopt_register_targets(register):
    register.add_target("toy", description="a toy target", precisions=("fp32",))
"""

RAISING_HOOK = """
from edgeopt import hookimpl
EDGEOPT_HOOK_API = 1

@hookimpl
def edgeopt_register_targets(register):
    raise RuntimeError("vendor SDK exploded")
"""

IMPORT_ERROR = """
import vendor_sdk_that_does_not_exist
EDGEOPT_HOOK_API = 1
"""

WRONG_API = """
EDGEOPT_HOOK_API = 99
"""

MISSPELLED = """
from edgeopt import hookimpl
EDGEOPT_HOOK_API = 1

@hookimpl
def edgeopt_regster_targets(register):
    pass
"""

UNAVAILABLE = """
from edgeopt import hookimpl
EDGEOPT_HOOK_API = 1

@hookimpl
def edgeopt_register_targets(register):
    register.add_target("npu9", description="an NPU", precisions=("int8",), available=False,
                        reason="no NPU driver found: install vendor-npu-driver")
"""


@pytest.fixture
def dists(tmp_path, monkeypatch):
    for name, source in [
        ("good", GOOD),
        ("raising", RAISING_HOOK),
        ("importerr", IMPORT_ERROR),
        ("wrongapi", WRONG_API),
        ("misspelled", MISSPELLED),
        ("unavail", UNAVAILABLE),
    ]:
        make_plugin_dist(tmp_path, name, source)
    activate(tmp_path, monkeypatch)
    monkeypatch.delenv("EDGEOPT_PLUGINS", raising=False)
    monkeypatch.delenv("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    return tmp_path


def statuses(pm):
    return {p.name: p for p in pm.plugins()}


def test_broken_plugins_are_quarantined_and_the_rest_work(dists):
    pm = get_plugin_manager()
    names = {t.name for t in pm.targets()}
    assert "toy" in names and "npu9" in names
    s = statuses(pm)
    assert s["good"].status == "ok" and "edgeopt_register_targets" in s["good"].hooks
    assert s["importerr"].status == "broken" and "vendor_sdk_that_does_not_exist" in s["importerr"].error
    assert s["wrongapi"].status == "broken" and "EDGEOPT_HOOK_API=99" in s["wrongapi"].error
    assert s["misspelled"].status == "broken" and "edgeopt_regster_targets" in s["misspelled"].error
    assert s["raising"].status == "broken" and "vendor SDK exploded" in s["raising"].error


def test_unavailable_target_carries_its_reason(dists):
    from edgeopt.errors import TargetUnavailable

    pm = get_plugin_manager()
    with pytest.raises(TargetUnavailable, match="install vendor-npu-driver"):
        pm.target("npu9")


def test_allowlist_limits_loading(dists, monkeypatch):
    monkeypatch.setenv("EDGEOPT_PLUGINS", "good")
    s = statuses(get_plugin_manager())
    assert "good" in s and "raising" not in s and "importerr" not in s


def test_autoload_can_be_disabled(dists, monkeypatch):
    monkeypatch.setenv("EDGEOPT_DISABLE_PLUGIN_AUTOLOAD", "1")
    s = statuses(get_plugin_manager())
    assert all(p.builtin for p in s.values())
    assert "good" not in s


def test_blocklist(dists, monkeypatch):
    monkeypatch.setenv("EDGEOPT_BLOCKED_PLUGINS", "good,raising")
    s = statuses(get_plugin_manager())
    assert "good" not in s and "raising" not in s and "unavail" in s


def test_unknown_target_lists_known_ones(dists):
    from edgeopt.errors import TargetError

    with pytest.raises(TargetError, match="unknown target 'nope'.*toy"):
        get_plugin_manager().target("nope")
