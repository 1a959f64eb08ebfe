"""A plugin manager holding the ``ncnn`` target, whether or not the distribution is installed."""

from __future__ import annotations

from edgeopt.testing import PluginManager, get_plugin_manager


def ncnn_plugin_manager() -> PluginManager:
    pm = get_plugin_manager()
    if not any(t.name == "ncnn" for t in pm.targets()):
        import edgeopt_ncnn

        pm.register(edgeopt_ncnn, "ncnn", version=edgeopt_ncnn.__version__)
    return pm
