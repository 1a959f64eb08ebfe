"""edgeopt: trained model → normalized ONNX → target plugin → verified, profiled artifact.

SDK: ``edgeopt.deploy``, ``edgeopt.compare``, ``edgeopt.load``, ``edgeopt.profile``, ``edgeopt.inspect``,
``edgeopt.targets``, ``edgeopt.devices``. Plugins need only ``edgeopt.hookimpl``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgeopt")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

# Bound last, on purpose: importing the SDK imports the submodule ``edgeopt.deploy``, which Python
# sets as this package's attribute ``deploy``; these names must be the SDK functions.
from edgeopt.api import Predictor, compare, compress, deploy, devices, inspect, load, profile, targets  # noqa: E402
from edgeopt.monitoring.monitor import monitor  # noqa: E402
from edgeopt.pipeline.compare import Comparison  # noqa: E402
from edgeopt.pipeline.deploy import Deployment  # noqa: E402
from edgeopt.plugin.manager import hookimpl  # noqa: E402
from edgeopt.registry.lifecycle import redeploy  # noqa: E402
from edgeopt.registry.store import open_registry  # noqa: E402

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
