"""Catch a hook writing outside its work directory.

``confined(workdir, watch=[...])`` runs a block with the working directory and the temp directory
(``tempfile.tempdir`` and ``TMPDIR``/``TMP``/``TEMP`` for subprocesses) moved to fresh empty
folders, and snapshots every watched folder (such as the graph's). Afterwards ``Confinement.leaks``
lists each file left behind in any of them, and each watched file created, changed or removed. Files
a hook cleans up before returning are not leaks.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

_TMP_VARS = ("TMPDIR", "TMP", "TEMP")


@dataclass
class Confinement:
    """What a confined block left where it should not have written."""

    leaks: list[str] = field(default_factory=list)


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() or path.is_symlink():
            stat = path.lstat()
            found[str(path.relative_to(root))] = (stat.st_size, stat.st_mtime_ns)
    return found


def _left_in(root: Path) -> list[str]:
    return [str(p) for p in sorted(root.rglob("*")) if not p.is_dir()]


@contextlib.contextmanager
def confined(workdir: Path, *, watch: Sequence[Path] = ()) -> Iterator[Confinement]:
    """Run the block with a scratch cwd and temp dir beside ``workdir``; report writes outside ``workdir``.

    ``workdir`` must not be inside a watched folder. The scratch folders are removed afterwards.
    """
    workdir = Path(workdir).resolve()
    scratch = Path(tempfile.mkdtemp(prefix=".confine-", dir=workdir.parent))
    cwd_dir, tmp_dir = scratch / "cwd", scratch / "tmp"
    cwd_dir.mkdir()
    tmp_dir.mkdir()
    before = {Path(w): _snapshot(Path(w)) for w in watch}
    old_cwd, old_tempdir = os.getcwd(), tempfile.tempdir
    old_env = {k: os.environ.get(k) for k in _TMP_VARS}
    result = Confinement()
    try:
        os.chdir(cwd_dir)
        tempfile.tempdir = str(tmp_dir)
        os.environ.update(dict.fromkeys(_TMP_VARS, str(tmp_dir)))
        yield result
    finally:
        os.chdir(old_cwd)
        tempfile.tempdir = old_tempdir
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        result.leaks.extend(f"{p} (in the working directory)" for p in _left_in(cwd_dir))
        result.leaks.extend(f"{p} (in the temp directory)" for p in _left_in(tmp_dir))
        for root, old in before.items():
            new = _snapshot(root)
            for name in sorted(set(old) | set(new)):
                if old.get(name) != new.get(name):
                    what = "created" if name not in old else "removed" if name not in new else "modified"
                    result.leaks.append(f"{root / name} ({what})")
        shutil.rmtree(scratch, ignore_errors=True)
