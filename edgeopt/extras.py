"""Optional extras: which feature needs which optional package, checked before any work starts.

The core installs without torch, Keras, scikit-learn, torch-pruning or matplotlib; each comes with an extra
(``pip install 'edgeopt[torch]'``, see ``pyproject.toml``). Every place that imports one of them because the
user asked for a feature goes through ``require`` or ``import_optional``, so a missing package is one
``MissingExtraError`` line naming the extra to install, never a ``ModuleNotFoundError`` traceback.
``check_request`` runs first in every deploy and compare: it refuses a request whose features are not
installed before the model is imported, the data loaded or any candidate built. The HTML reports do not
refuse: without matplotlib they keep their tables and say how to get the plots (``plots_note``).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from edgeopt.errors import MissingExtraError

_FACTORY = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
"""A torch source given as ``"package.module:factory"`` (a function that returns the model)."""

EXTRAS: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "sklearn": ("sklearn", "skl2onnx"),
    "keras": ("keras", "torch"),
    "compress": ("torch", "torch_pruning"),
    "report": ("matplotlib",),
    "farm": ("ray",),
}
"""Extra name (``pyproject.toml``'s ``[project.optional-dependencies]``) -> the modules its features import."""
DISTRIBUTIONS = {"torch_pruning": "torch-pruning", "sklearn": "scikit-learn"}
"""Module name -> distribution name, where they differ (for messages)."""
_TORCH_SUFFIXES = (".pt", ".pth")
_PICKLE_SUFFIXES = (".joblib", ".pkl", ".pickle")


def install_hint(extra: str) -> str:
    """``pip install 'edgeopt[EXTRA]'``."""
    return f"pip install 'edgeopt[{extra}]'"


def available(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a module set to None in ``sys.modules``, as
    tests do to hide one, counts as missing)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent that fails to import; a module whose __spec__ is unset
        return False


def missing(modules: Sequence[str]) -> list[str]:
    """The ``modules`` that cannot be imported here."""
    return [m for m in modules if not available(m)]


def require(extra: str, *, feature: str, modules: Sequence[str] | None = None) -> None:
    """Raise ``MissingExtraError`` naming ``extra`` when any of ``modules`` (default: all of the extra's) is
    not installed; ``feature`` says what needs them (``"--prune structured:0.5"``)."""
    gone = missing(EXTRAS[extra] if modules is None else modules)
    if gone:
        names = ", ".join(DISTRIBUTIONS.get(m, m) for m in gone)
        verb = "is" if len(gone) == 1 else "are"
        raise MissingExtraError(f"{feature} needs {names}, which {verb} not installed", hint=install_hint(extra))


def import_optional(module: str, *, extra: str, feature: str) -> ModuleType:
    """``importlib.import_module(module)``, a missing or broken install raised as ``MissingExtraError``."""
    require(extra, feature=feature, modules=(module.split(".", 1)[0],))
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{feature} needs {module}, which is installed but cannot be imported: {exc}",
            hint=f"reinstall it: {install_hint(extra)}",
        ) from exc


def plots_note() -> str | None:
    """None when matplotlib is there; otherwise the sentence a report shows where its plots would be."""
    if available("matplotlib"):
        return None
    return f"Plots not drawn: matplotlib is not installed (plots need edgeopt[report]: {install_hint('report')})."


def source_extra(source: object, *, weights: object = None) -> tuple[str, str, tuple[str, ...]] | None:
    """``(extra, feature, modules)`` the built-in importers need for ``source`` (and ``weights``), or None for
    an ONNX file and sources that bring their own library (an in-memory torch module means torch is there)."""
    if isinstance(source, str | os.PathLike):
        text = os.fspath(source)
        name = Path(text).name.lower()
        if name.endswith(".keras"):
            return "keras", f"importing the Keras model {text}", EXTRAS["keras"]
        if name.endswith(_PICKLE_SUFFIXES):
            return "sklearn", f"importing the scikit-learn model {text}", EXTRAS["sklearn"]
        if name.endswith(".skops"):
            return "sklearn", f"importing the skops file {text}", (*EXTRAS["sklearn"], "skops")
        if name.endswith(_TORCH_SUFFIXES) or is_factory_spec(text):
            extra_modules = ("safetensors",) if str(weights or "").lower().endswith(".safetensors") else ()
            return "torch", f"importing the torch model {text}", ("torch", *extra_modules)
        return None
    module = type(source).__module__ or ""
    if module == "sklearn" or module.startswith("sklearn."):
        return "sklearn", f"converting the scikit-learn {type(source).__name__}", EXTRAS["sklearn"]
    return None


def check_request(source: object, *, weights: object = None, compression: object = None) -> None:
    """Refuse (``MissingExtraError``) before any work a deploy or compare whose source or compression options
    need an extra that is not installed. ``compression`` is an ``edgeopt.compression.spec.CompressionSpec``."""
    needed = source_extra(source, weights=weights)
    if needed is not None:
        extra, feature, modules = needed
        require(extra, feature=feature, modules=modules)
    if compression is None or not getattr(compression, "active", False):
        return
    prune = getattr(compression, "prune", None)
    if prune is not None:
        modules = EXTRAS["compress"] if prune.kind == "structured" else ("torch",)
        require("compress", feature=f"--prune {prune.label}", modules=modules)
    flags = [flag for flag, on in (("--distill", compression.distill), ("--cluster", compression.cluster),
                                   ("--binarize", compression.binarize), ("--qat", compression.qat)) if on]
    if flags:
        require("compress", feature=" ".join(flags), modules=("torch",))


def is_factory_spec(source: object) -> bool:
    """True for a ``"package.module:factory"`` string."""
    return isinstance(source, str) and bool(_FACTORY.match(source))
