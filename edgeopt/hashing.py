"""sha256 digests of files and bytes: the content keys of artifacts, caches and graph fingerprints."""

from __future__ import annotations

import hashlib
import os

_CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], *more: str | os.PathLike[str]) -> str:
    """Hex sha256 of the file's bytes (followed by those of ``more`` files, when given), read in 1 MiB chunks."""
    digest = hashlib.sha256()
    for item in (path, *more):
        with open(item, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()
