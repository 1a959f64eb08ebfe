"""Artifact directories: written atomically, described by a manifest with a sha256 per file, verified on load.

An artifact is a directory holding the deployable files, ``report.md`` and ``manifest.json``. It is built
in a temp dir next to its destination (same filesystem), fsynced, then renamed into place, so a reader
sees either the previous complete artifact or the new complete one, never a mix and never a partial one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from edgeopt.artifact import atomic_dir
from edgeopt.errors import ArtifactError, OutputPathError
from edgeopt.hashing import sha256_file

MANIFEST_SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
REPORT_NAME = "report.md"
SEAL_KEY = "manifest_sha256"
"""Manifest key holding the sha256 of the canonical manifest without this key, so edits to it are caught."""

_CHUNK = 1024 * 1024



# ---------------------------------------------------------------------------------------------- writing


def write_artifact(
    out: Path,
    *,
    files: Mapping[str, Path],
    manifest: dict,
    report_md: str,
    extra_text: Mapping[str, str] | None = None,
) -> Path:
    """Write an artifact directory at ``out`` atomically and return ``out``.

    ``files`` maps a relative name inside the artifact to the source file copied there; ``extra_text`` maps
    relative names to text written as UTF-8. ``report_md`` becomes ``report.md``. The manifest written is a
    copy of ``manifest`` with ``schema_version`` defaulted and ``files`` set to the sha256 and size of every
    file except ``manifest.json`` itself; non-finite floats are written as ``null``.

    An existing ``out`` is replaced only when it is an edgeopt artifact (it has ``manifest.json``) or an
    empty directory; anything else raises ``OutputPathError``. On failure nothing is left behind and the old
    artifact, if any, is untouched. Raises ``OutputPathError`` for unwritable destinations and bad relative
    names, ``ArtifactError`` when a source file cannot be read.
    """
    given = out
    out = Path(os.path.abspath(out))
    entries = _plan_entries(files, dict(extra_text or {}))
    replace = check_destination(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_dir.clean_stale(out)
        tmp = atomic_dir.make_temp_dir(out)
    except OSError as exc:
        raise _output_error(exc, out.parent) from exc
    try:
        with atomic_dir.dir_lock(tmp):
            listing = _fill(tmp, entries=entries, report_md=report_md)
            body = dict(manifest)
            body.setdefault("schema_version", MANIFEST_SCHEMA_VERSION)
            body["files"] = listing
            _write_bytes(tmp / MANIFEST_NAME, _sealed_manifest_bytes(body))
            atomic_dir.fsync_tree(tmp)
            atomic_dir.install(tmp, out, replace=replace)
    except BaseException as exc:
        atomic_dir.remove_tree(tmp)
        if isinstance(exc, OSError):
            raise _output_error(exc, out) from exc
        raise
    return Path(given)


def _plan_entries(files: Mapping[str, Path], extra_text: Mapping[str, str]) -> dict[str, Path | bytes]:
    """Validate every relative name; return normalized name -> source path or bytes to write."""
    entries: dict[str, Path | bytes] = {}
    items: list[tuple[str, Path | bytes]] = [(k, Path(v)) for k, v in files.items()]
    items += [(k, v.encode("utf-8")) for k, v in extra_text.items()]
    for rel, content in items:
        name = _check_relname(rel)
        if name in (MANIFEST_NAME, REPORT_NAME) or name in entries:
            raise OutputPathError(
                f"artifact file name {rel!r} is used twice (or clashes with {MANIFEST_NAME}/{REPORT_NAME})",
                hint="give every artifact file a distinct relative name",
            )
        entries[name] = content
    return entries


def _check_relname(rel: str) -> str:
    """Return ``rel`` normalized (posix, no ``.`` parts); refuse names that could leave the artifact."""
    bad = OutputPathError(
        f"artifact file name {rel!r} is not a plain relative path inside the artifact",
        hint="use relative names such as 'model.onnx' or 'weights/part0.bin' (no '..', no absolute paths)",
    )
    if not isinstance(rel, str) or not rel or "\x00" in rel or "\\" in rel:
        raise bad
    p = PurePosixPath(rel)
    if p.is_absolute() or ".." in p.parts or Path(rel).is_absolute():
        raise bad
    parts = [x for x in p.parts if x not in ("", ".")]
    if not parts:
        raise bad
    return "/".join(parts)


def check_destination(out: Path) -> bool:
    """Return True when ``out`` holds something we may replace; raise when it holds user files."""
    if out.is_symlink():
        raise OutputPathError(
            f"{out} is a symbolic link; refusing to write an artifact through it",
            hint="choose a --out path that is a new or existing artifact directory",
        )
    if not out.exists():
        return False
    if not out.is_dir():
        raise OutputPathError(
            f"{out} exists and is a file, not an artifact directory; refusing to overwrite it",
            hint="choose another --out path, or remove the file yourself",
        )
    if (out / MANIFEST_NAME).is_file():
        return True
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        raise _output_error(exc, out) from exc
    if empty:
        return True
    raise OutputPathError(
        f"{out} is a non-empty directory that is not an edgeopt artifact (no {MANIFEST_NAME}); "
        "refusing to overwrite it",
        hint="choose a new --out path; edgeopt only replaces directories it wrote itself",
    )


def _fill(tmp: Path, *, entries: Mapping[str, Path | bytes], report_md: str) -> dict[str, dict[str, Any]]:
    """Write every entry and report.md into ``tmp``; return the manifest's ``files`` listing."""
    root = tmp.resolve()
    listing: dict[str, dict[str, Any]] = {}
    for name, content in {**entries, REPORT_NAME: report_md.encode("utf-8")}.items():
        dst = tmp / name
        if not dst.resolve().is_relative_to(root):
            raise OutputPathError(f"artifact file name {name!r} resolves outside the artifact")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            digest, size = _write_bytes(dst, content)
        else:
            digest, size = _copy(content, dst, name=name)
        listing[name] = {"sha256": digest, "bytes": size}
    return listing


def _copy(src: Path, dst: Path, *, name: str) -> tuple[str, int]:
    """Copy ``src`` to ``dst`` hashing on the way, fsync ``dst``; return (sha256, size)."""
    try:
        fin = open(src, "rb")  # noqa: SIM115 - closed below; read errors must be told apart from write errors
    except OSError as exc:
        raise ArtifactError(
            f"cannot read {src} (the source of artifact file {name!r}): {exc.strerror or exc}",
            hint="the compiled model files disappeared or are unreadable; re-run the deploy",
        ) from exc
    h = hashlib.sha256()
    size = 0
    with fin, open(dst, "wb") as fout:
        while True:
            try:
                chunk = fin.read(_CHUNK)
            except OSError as exc:
                raise ArtifactError(f"cannot read {src} (the source of artifact file {name!r}): {exc}") from exc
            if not chunk:
                break
            h.update(chunk)
            size += len(chunk)
            fout.write(chunk)
        fout.flush()
        os.fsync(fout.fileno())
    return h.hexdigest(), size


def _write_bytes(dst: Path, data: bytes) -> tuple[str, int]:
    with open(dst, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return hashlib.sha256(data).hexdigest(), len(data)


def _canonical(manifest: Mapping[str, Any]) -> bytes:
    """The one byte form a manifest is written in: sorted keys, indent 2, UTF-8, trailing newline."""
    text = json.dumps(manifest, sort_keys=True, indent=2, allow_nan=False, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def _seal(manifest: Mapping[str, Any]) -> str:
    """sha256 of the canonical manifest without its own seal."""
    return hashlib.sha256(_canonical({k: v for k, v in manifest.items() if k != SEAL_KEY})).hexdigest()


def _sealed_manifest_bytes(manifest: Mapping[str, Any]) -> bytes:
    body = _jsonable({k: v for k, v in manifest.items() if k != SEAL_KEY})
    body[SEAL_KEY] = _seal(body)
    return _canonical(body)


def _jsonable(value: Any) -> Any:
    """Plain JSON data: paths and numpy values converted, tuples as lists, non-finite floats as None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        seq = sorted(value, key=str) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v) for v in seq]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy scalars and arrays
        return _jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _output_error(exc: OSError, where: Path) -> OutputPathError:
    hints = {
        errno.ENOSPC: "the disk is full: free some space or choose --out on another disk",
        errno.EDQUOT: "the disk quota is exceeded: free some space or choose --out on another disk",
        errno.EROFS: "the filesystem is read-only: choose a writable --out directory",
        errno.EACCES: "permission denied: choose a --out directory you can write to",
        errno.EPERM: "permission denied: choose a --out directory you can write to",
    }
    why = exc.strerror or str(exc)
    return OutputPathError(
        f"cannot write the artifact at {where}: {why}",
        hint=hints.get(exc.errno or 0, "choose a writable --out directory with free space"),
    )


# --------------------------------------------------------------------------------------------- reading


def verify_artifact(path: Path) -> dict:
    """Check an artifact against its manifest and return the manifest.

    Every listed file must exist as a regular file with the recorded size and sha256, and no file other
    than ``manifest.json`` may be unlisted. Raises ``ArtifactError`` naming the first bad file.
    """
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path} does not exist",
                            hint="check the path; `edgeopt models` lists registered deployments and their artifacts")
    if not path.is_dir():
        raise ArtifactError(f"{path} is a file, not an artifact folder",
                            hint="give the folder `edgeopt deploy` wrote (it holds manifest.json)")
    manifest = _read_manifest(path)
    listed = manifest["files"]
    for name in sorted(listed):
        _verify_entry(path, name, listed[name])
    for extra in _walk_files(path):
        if extra != MANIFEST_NAME and extra not in listed:
            raise ArtifactError(f"{extra}: not listed in the manifest — the artifact was modified")
    return manifest


def _read_manifest(path: Path) -> dict:
    mpath = path / MANIFEST_NAME
    if mpath.is_symlink() or not mpath.is_file():
        raise ArtifactError(f"{path}: not an edgeopt artifact ({MANIFEST_NAME} is missing)")
    try:
        raw = mpath.read_bytes()
        manifest = json.loads(raw.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{MANIFEST_NAME}: unreadable or not valid JSON ({exc})") from exc
    if not isinstance(manifest, dict) or not isinstance(manifest.get("schema_version"), int):
        raise ArtifactError(f"{MANIFEST_NAME}: no schema_version — not an edgeopt manifest")
    if manifest["schema_version"] > MANIFEST_SCHEMA_VERSION:
        raise ArtifactError(
            f"{MANIFEST_NAME}: schema_version {manifest['schema_version']} is newer than this edgeopt "
            f"understands ({MANIFEST_SCHEMA_VERSION})",
            hint="upgrade edgeopt to read this artifact",
        )
    try:
        canonical = _canonical(manifest)
    except ValueError:  # NaN/Infinity literals: never written by edgeopt
        canonical = b""
    if raw != canonical or manifest.get(SEAL_KEY) != _seal(manifest):
        raise ArtifactError(f"{MANIFEST_NAME}: sha256 mismatch — the artifact was modified or is corrupt")
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ArtifactError(f"{MANIFEST_NAME}: no 'files' listing")
    return manifest


def _verify_entry(root: Path, name: str, entry: Any) -> None:
    try:
        safe = _check_relname(name) == name
    except OutputPathError:
        safe = False
    if not safe:
        raise ArtifactError(f"{name}: listed with a path outside the artifact — the manifest was tampered with")
    if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and isinstance(entry.get("bytes"), int)):
        raise ArtifactError(f"{name}: manifest entry lacks sha256/bytes")
    p = root / name
    if p.is_symlink():
        raise ArtifactError(f"{name}: is a symbolic link — the artifact was modified")
    if not p.is_file():
        raise ArtifactError(f"{name}: missing — the artifact is incomplete")
    size = p.stat().st_size
    if size != entry["bytes"]:
        raise ArtifactError(
            f"{name}: size mismatch (manifest {entry['bytes']} bytes, found {size}) — "
            "the artifact was modified or is corrupt"
        )
    if sha256_file(p) != entry["sha256"]:
        raise ArtifactError(f"{name}: sha256 mismatch — the artifact was modified or is corrupt")


def _walk_files(root: Path) -> list[str]:
    """Every non-directory entry under ``root`` as a posix relative name (symlinks included, not followed)."""
    found = []
    for d, dirnames, filenames in os.walk(root):
        rel = Path(d).relative_to(root)
        for n in filenames + [x for x in dirnames if (Path(d) / x).is_symlink()]:
            found.append((rel / n).as_posix())
    return sorted(found)
