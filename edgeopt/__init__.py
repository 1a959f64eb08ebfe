"""edgeopt: trained model → normalized ONNX → target plugin → verified, profiled artifact."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edgeopt")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0"

from edgeopt.plugins import hookimpl  # noqa: E402

__all__ = ["__version__", "hookimpl"]
