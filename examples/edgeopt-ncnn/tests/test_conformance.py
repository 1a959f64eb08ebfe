"""The ``ncnn`` target against edgeopt's conformance suite (skipped, with the reason, without ncnn/pnnx)."""

from __future__ import annotations

from edgeopt.testing import ConformanceSuite, PluginManager
from ncnn_manager import ncnn_plugin_manager


class TestNcnnConformance(ConformanceSuite):
    target = "ncnn"

    @classmethod
    def make_plugin_manager(cls) -> PluginManager:
        return ncnn_plugin_manager()
