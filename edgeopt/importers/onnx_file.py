"""Built-in importer: a path to an ``.onnx`` file -> Graph."""

from __future__ import annotations

import os
from pathlib import Path

from edgeopt.graph.model_io import load_onnx
from edgeopt.graph.normalize import normalize
from edgeopt.graph.safety import ARCHIVE_SUFFIXES
from edgeopt.hashing import sha256_file
from edgeopt.plugin import hookimpl
from edgeopt.types import Graph, ImportOptions

EDGEOPT_HOOK_API = 1


def is_onnx_path(source: object) -> bool:
    """True for a str or path-like whose name ends in ``.onnx``, or in an archive suffix, which
    ``load_onnx`` then refuses with its own clear message (case-insensitive)."""
    if not isinstance(source, str | os.PathLike):
        return False
    name = os.fspath(source).lower()
    return name.endswith(".onnx") or name.endswith(ARCHIVE_SUFFIXES)


@hookimpl
def edgeopt_import(source: object, options: ImportOptions, workdir: Path) -> Graph | None:
    """Load ``source`` as untrusted ONNX (see ``edgeopt.graph.model_io.load_onnx``) and normalize it.

    Returns None for anything that is not an ``.onnx`` path. A missing file is a ModelError.
    """
    if not is_onnx_path(source):
        return None
    path = Path(os.fspath(source))  # type: ignore[call-overload]
    model = load_onnx(path, options=options)
    return normalize(
        model,
        source_fingerprint=sha256_file(path),
        source_format="onnx",
        options=options,
        workdir=Path(workdir),
        base_dir=path.parent,
    )
