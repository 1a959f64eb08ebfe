"""The ``openvino`` target against edgeopt's conformance suite, loaded through its installed entry point."""

from __future__ import annotations

from edgeopt.testing import ConformanceSuite


class TestOpenVinoConformance(ConformanceSuite):
    target = "openvino"
