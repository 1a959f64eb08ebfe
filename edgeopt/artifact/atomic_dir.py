"""Installing a directory atomically next to its destination: build it in a temp dir on the same filesystem,
fsync it, then rename it into place (``renameat2`` exchange or no-replace where Linux offers them), so a reader
sees the old complete directory or the new complete one. Temp dirs are ``flock``-ed while alive, so a later
writer can remove those a crashed writer left behind."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from edgeopt.errors import OutputPathError

_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
_STALE_FALLBACK_S = 3600.0
"""Where directory locks are unavailable, a temp dir counts as abandoned after this many seconds."""


def _temp_name(out: Path, tag: str = "") -> Path:
    return out.parent / f".{out.name}.tmp-{tag}{secrets.token_hex(6)}"


def make_temp_dir(out: Path) -> Path:
    """A new empty directory next to ``out`` (mode from the umask, unlike ``mkdtemp``'s 0700)."""
    while True:
        tmp = _temp_name(out)
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:
            continue


def fsync_tree(root: Path) -> None:
    """fsync every directory under ``root`` (files were fsynced when written), deepest first."""
    dirs = [Path(d) for d, _, _ in os.walk(root)]
    for d in reversed(dirs):
        fsync_dir(d)


def fsync_dir(path: Path) -> None:
    """fsync one directory, so the entries renamed into it survive a crash (a no-op on Windows)."""
    if sys.platform == "win32":  # directories cannot be opened for fsync there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install(tmp: Path, out: Path, *, replace: bool) -> None:
    """Move the finished ``tmp`` to ``out``; an existing ``out`` is swapped out, never left half-replaced."""
    if not replace:
        try:
            _rename_noreplace(tmp, out)
        except FileExistsError as exc:
            raise OutputPathError(
                f"{out} appeared while the artifact was being written; refusing to overwrite it",
                hint="another process is writing there; choose another --out path",
            ) from exc
        fsync_dir(out.parent)
        return
    if _exchange(tmp, out):
        fsync_dir(out.parent)
        remove_tree(tmp)  # tmp now holds the old artifact
        return
    aside = _temp_name(out, "old-")
    os.rename(out, aside)
    try:
        os.rename(tmp, out)
    except OSError:
        os.rename(aside, out)
        raise
    fsync_dir(out.parent)
    remove_tree(aside)


def _rename_noreplace(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; raise FileExistsError rather than replace anything that appeared there."""
    if _renameat2(src, dst, _RENAME_NOREPLACE):
        return
    try:
        os.rename(src, dst)  # a directory can only replace an empty directory
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR, errno.EISDIR):
            raise FileExistsError(errno.EEXIST, "exists", os.fspath(dst)) from exc
        raise


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with ``renameat2(RENAME_EXCHANGE)``; False where that is unsupported."""
    return _renameat2(a, b, _RENAME_EXCHANGE)


def _renameat2(a: Path, b: Path, flags: int) -> bool:
    """Call Linux ``renameat2``; False when the platform, libc or filesystem lacks it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    fn.restype = ctypes.c_int
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    if err == errno.EEXIST:
        raise FileExistsError(err, os.strerror(err), os.fspath(b))
    raise OSError(err, os.strerror(err), os.fspath(b))


@contextlib.contextmanager
def dir_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` so a concurrent cleaner knows the temp dir is alive."""
    try:
        import fcntl
    except ImportError:  # not POSIX: age decides staleness instead
        yield
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _is_abandoned(path: Path) -> bool:
    try:
        import fcntl
    except ImportError:
        try:
            return time.time() - path.stat().st_mtime > _STALE_FALLBACK_S
        except OSError:
            return False
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False  # a live writer holds it
    finally:
        os.close(fd)
    return True


def clean_stale(out: Path) -> None:
    """Remove ``.{name}.tmp-*`` dirs next to ``out`` left by a writer that crashed."""
    prefix = f".{out.name}.tmp-"
    try:
        candidates = [p for p in out.parent.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return
    for p in candidates:
        if p.is_dir() and not p.is_symlink() and _is_abandoned(p):
            remove_tree(p)


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything below it; errors are ignored (it is cleanup after success or failure)."""
    shutil.rmtree(path, ignore_errors=True)
