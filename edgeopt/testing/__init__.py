"""Testing tools for edgeopt plugins: the conformance suite, golden models and tolerances.

``ConformanceSuite`` checks every hook contract of one target; subclass it in a plugin's tests, or
run ``pytest --edgeopt-target NAME`` (the ``edgeopt`` pytest plugin ships with the core). Names are
imported on first use, so loading the pytest plugin costs nothing in projects that never use them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeopt.artifact.write import verify_artifact
    from edgeopt.plugin.manager import PluginManager, get_plugin_manager
    from edgeopt.testing.checks import check_compiled
    from edgeopt.testing.conformance import ConformanceSuite
    from edgeopt.testing.golden import GoldenGraph
    from edgeopt.testing.models import GOLDEN_MODELS, golden_feeds, he_weights, save_graph, write_golden
    from edgeopt.testing.tolerances import DEFAULT_TOLERANCES, compare_runs, relative_error, tolerance_for
    from edgeopt.testing.watch import Confinement, confined

_WHERE = {
    "PluginManager": "edgeopt.plugin.manager",
    "get_plugin_manager": "edgeopt.plugin.manager",
    "verify_artifact": "edgeopt.artifact.write",
    "he_weights": "models",
    "save_graph": "models",
    "ConformanceSuite": "conformance",
    "GoldenGraph": "golden",
    "check_compiled": "checks",
    "GOLDEN_MODELS": "models",
    "golden_feeds": "models",
    "write_golden": "models",
    "DEFAULT_TOLERANCES": "tolerances",
    "compare_runs": "tolerances",
    "relative_error": "tolerances",
    "tolerance_for": "tolerances",
    "Confinement": "watch",
    "confined": "watch",
}

__all__ = [
    "DEFAULT_TOLERANCES",
    "GOLDEN_MODELS",
    "Confinement",
    "ConformanceSuite",
    "GoldenGraph",
    "PluginManager",
    "check_compiled",
    "compare_runs",
    "confined",
    "get_plugin_manager",
    "golden_feeds",
    "he_weights",
    "relative_error",
    "save_graph",
    "tolerance_for",
    "verify_artifact",
    "write_golden",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        where = _WHERE[name]
        return getattr(importlib.import_module(where if "." in where else f"edgeopt.testing.{where}"), name)
    raise AttributeError(f"module 'edgeopt.testing' has no attribute {name!r}")
