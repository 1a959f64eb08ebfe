"""edgeopt: trained model → normalized ONNX → target plugin → verified, profiled artifact.

The SDK functions are imported on first use, so ``import edgeopt`` stays light for plugins.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("edgeopt")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

from edgeopt.plugins import hookimpl  # noqa: E402

if TYPE_CHECKING:
    from edgeopt.api import Predictor, deploy, devices, inspect, load, plugins, profile, targets
    from edgeopt.deploy import Deployment

_SDK = {"deploy", "load", "profile", "inspect", "targets", "devices", "plugins", "Predictor"}

__all__ = [
    "Deployment",
    "Predictor",
    "__version__",
    "deploy",
    "devices",
    "hookimpl",
    "inspect",
    "load",
    "plugins",
    "profile",
    "targets",
]


def __getattr__(name: str) -> Any:
    if name in _SDK:
        from edgeopt import api

        return getattr(api, name)
    if name == "Deployment":
        from edgeopt.deploy import Deployment

        return Deployment
    raise AttributeError(f"module 'edgeopt' has no attribute {name!r}")
