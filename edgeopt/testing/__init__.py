"""Testing tools for edgeopt plugins: the conformance suite, golden models and tolerances.

``ConformanceSuite`` checks every hook contract of one target; subclass it in a plugin's tests, or
run ``pytest --edgeopt-target NAME`` (the ``edgeopt`` pytest plugin ships with the core). Names are
imported on first use, so loading the pytest plugin costs nothing in projects that never use them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeopt.testing.checks import check_compiled
    from edgeopt.testing.conformance import ConformanceSuite
    from edgeopt.testing.golden import GoldenGraph
    from edgeopt.testing.models import GOLDEN_MODELS, golden_feeds, write_golden
    from edgeopt.testing.tolerances import DEFAULT_TOLERANCES, compare_runs, relative_error, tolerance_for
    from edgeopt.testing.watch import Confinement, confined

_WHERE = {
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
    "check_compiled",
    "compare_runs",
    "confined",
    "golden_feeds",
    "relative_error",
    "tolerance_for",
    "write_golden",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"edgeopt.testing.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'edgeopt.testing' has no attribute {name!r}")
