"""The conformance suite as a test module for ``pytest --edgeopt-target NAME``.

The ``edgeopt`` pytest plugin adds this file to the run when ``--edgeopt-target`` is given; run on
its own (``pytest --pyargs edgeopt.testing.suite --edgeopt-target NAME``) it does the same.
"""

from __future__ import annotations

from edgeopt.testing.conformance import ConformanceSuite


class TestEdgeoptConformance(ConformanceSuite):
    """The target named by ``--edgeopt-target`` (skipped without it)."""
