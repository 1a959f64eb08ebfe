"""edgeopt: trained model → normalized ONNX → target plugin → verified, profiled artifact.

SDK: ``edgeopt.deploy``, ``edgeopt.compare``, ``edgeopt.compress``, ``edgeopt.load``, ``edgeopt.profile``,
``edgeopt.inspect``, ``edgeopt.targets``, ``edgeopt.devices``, ``edgeopt.monitor``, ``edgeopt.redeploy``,
``edgeopt.open_registry``. Plugins import ``edgeopt.plugin``.

The SDK loads on first use (module ``__getattr__``): ``import edgeopt`` alone, the CLI's start-up, the pytest
plugin and a plugin's import of ``edgeopt.plugin`` pay for nothing they do not call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from edgeopt.lazy import lazy_names
from edgeopt.version import __version__

if TYPE_CHECKING:
    from edgeopt.api import compare, compress, deploy, devices, inspect, load, profile, targets
    from edgeopt.monitoring.monitor import monitor
    from edgeopt.pipeline.comparison import Comparison
    from edgeopt.pipeline.request import Deployment
    from edgeopt.plugin.hookspecs import hookimpl
    from edgeopt.predictor import Predictor
    from edgeopt.registry.lifecycle import redeploy
    from edgeopt.registry.store import open_registry

_WHERE = {
    "Predictor": "edgeopt.predictor",
    "compare": "edgeopt.api",
    "compress": "edgeopt.api",
    "deploy": "edgeopt.api",
    "devices": "edgeopt.api",
    "inspect": "edgeopt.api",
    "load": "edgeopt.api",
    "profile": "edgeopt.api",
    "targets": "edgeopt.api",
    "Comparison": "edgeopt.pipeline.comparison",
    "Deployment": "edgeopt.pipeline.request",
    "monitor": "edgeopt.monitoring.monitor",
    "hookimpl": "edgeopt.plugin.hookspecs",
    "redeploy": "edgeopt.registry.lifecycle",
    "open_registry": "edgeopt.registry.store",
}

__all__ = [
    "Comparison",
    "Deployment",
    "Predictor",
    "__version__",
    "compare",
    "compress",
    "deploy",
    "devices",
    "hookimpl",
    "inspect",
    "load",
    "monitor",
    "open_registry",
    "profile",
    "redeploy",
    "targets",
]

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
