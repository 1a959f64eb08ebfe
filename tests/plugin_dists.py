"""Build tiny plugin distributions on disk (dist-info + module) so tests load real entry points."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path


def make_plugin_dist(root: Path, name: str, source: str, *, version: str = "0.1") -> Path:
    """Write distribution ``name`` with module ``<name>_plugin`` and an ``edgeopt`` entry point under ``root``."""
    module = f"{name.replace('-', '_')}_plugin"
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{module}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[edgeopt]\n{name} = {module}\n")
    return root


def activate(root: Path, monkeypatch) -> None:  # noqa: ANN001 - pytest's MonkeyPatch
    monkeypatch.syspath_prepend(str(root))
    for mod in [m for m in sys.modules if m.endswith("_plugin")]:
        monkeypatch.delitem(sys.modules, mod)
