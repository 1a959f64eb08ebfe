"""Names a package loads on first use: the module ``__getattr__``/``__dir__`` pair its ``__init__`` installs.

``edgeopt``, ``edgeopt.plugin``, ``edgeopt.testing`` and ``edgeopt.compression`` list each public name with the
module that defines it; importing the package then costs nothing until a name is used. A name, once looked up,
is bound in the package, so it wins over a submodule of the same name imported later.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_names(package: str, where: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose names ``where`` maps to their defining modules."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__
