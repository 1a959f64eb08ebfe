"""Moving files through Ray's object store as bytes: job inputs checked by sha256, artifacts as flat tar archives.

An artifact travels as an uncompressed tar of its regular files (sorted, fixed metadata). Unpacking takes
only regular files with plain relative names and refuses links, devices, absolute paths, ``..`` and archives
past ``MAX_ARTIFACT_BYTES``; the caller then checks every file against the manifest (``verify_artifact``).
"""

from __future__ import annotations

import io
import tarfile
from pathlib import Path, PurePosixPath

from edgeopt.errors import ArtifactError, InputSpecError
from edgeopt.farm.jobs import Blob
from edgeopt.hashing import sha256_bytes

MAX_ARTIFACT_BYTES = 8 << 30


def checked_blob(blob: Blob, data: bytes, directory: Path) -> Path:
    """Write ``data`` as ``directory/blob.name`` after checking its size and sha256 against ``blob``."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InputSpecError(f"{blob.name}: the farm passed {type(data).__name__}, not file bytes")
    data = bytes(data)
    if len(data) != blob.size or sha256_bytes(data) != blob.sha256:
        raise InputSpecError(f"{blob.name}: the bytes received do not match sha256 {blob.sha256[:12]}…",
                             hint="the object store returned other content; run the job again")
    path = directory / blob.name
    path.write_bytes(data)
    return path


def pack_dir(root: Path) -> bytes:
    """A deterministic tar of every regular file under ``root`` (names relative, sorted)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
            rel = path.relative_to(root).as_posix()
            info = tarfile.TarInfo(rel)
            info.size = path.stat().st_size
            info.mode = 0o644
            with open(path, "rb") as f:
                tar.addfile(info, f)
    return buf.getvalue()


def unpack_into(data: bytes, dest: Path) -> None:
    """Extract an artifact archive into the empty directory ``dest``; ``ArtifactError`` on anything unsafe."""
    if len(data) > MAX_ARTIFACT_BYTES:
        raise ArtifactError(f"the artifact received is {len(data)} bytes, over the {MAX_ARTIFACT_BYTES} limit")
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            members = tar.getmembers()
            for m in members:
                parts = PurePosixPath(m.name).parts
                if not m.isfile() or m.name.startswith("/") or ".." in parts or not parts:
                    raise ArtifactError(f"the artifact received holds {m.name!r}, which is not a plain file")
            tar.extractall(dest, members=members, filter="data")
    except tarfile.TarError as exc:
        raise ArtifactError(f"the artifact received is not a readable archive: {exc}") from exc
