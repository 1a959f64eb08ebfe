"""Testing tools for edgeopt plugins: the conformance suite, golden models and tolerances.

``ConformanceSuite`` checks every hook contract of one target; subclass it in a plugin's tests, or
run ``pytest --edgeopt-target NAME`` (the ``edgeopt`` pytest plugin ships with the core). Names are
imported on first use, so loading the pytest plugin costs nothing in projects that never use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeopt.lazy import lazy_names

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
    "he_weights": "edgeopt.testing.models",
    "save_graph": "edgeopt.testing.models",
    "ConformanceSuite": "edgeopt.testing.conformance",
    "GoldenGraph": "edgeopt.testing.golden",
    "check_compiled": "edgeopt.testing.checks",
    "GOLDEN_MODELS": "edgeopt.testing.models",
    "golden_feeds": "edgeopt.testing.models",
    "write_golden": "edgeopt.testing.models",
    "DEFAULT_TOLERANCES": "edgeopt.testing.tolerances",
    "compare_runs": "edgeopt.testing.tolerances",
    "relative_error": "edgeopt.testing.tolerances",
    "tolerance_for": "edgeopt.testing.tolerances",
    "Confinement": "edgeopt.testing.watch",
    "confined": "edgeopt.testing.watch",
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

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
