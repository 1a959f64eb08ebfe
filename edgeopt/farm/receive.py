"""A farm result brought home: checked by hash, unpacked next to its destination, verified file by file, renamed
into place atomically, then registered with the node and device that measured it.

Nothing partial is ever visible: the archive's sha256 is checked first, the files land in a locked temp dir
beside ``out`` (``edgeopt.artifact.atomic_dir``), ``verify_artifact`` checks every file and the sealed manifest, and
only then is the directory renamed into place. Any failure removes the temp dir and leaves ``out`` as it was.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from edgeopt.artifact import atomic_dir
from edgeopt.artifact.write import check_destination, verify_artifact
from edgeopt.errors import ArtifactError
from edgeopt.farm.transfer import sha256_bytes, unpack_into


def install_result(result: Mapping[str, Any], out: Path, *, device: str, target: str) -> tuple[Path, dict]:
    """Install a ``measure`` result's artifact at ``out``; return ``(out, manifest)``. ``ArtifactError`` when the
    archive's hash, a file's hash, the manifest's seal or its ``measured_on`` does not match the job."""
    data = result.get("artifact")
    if not isinstance(data, bytes) or sha256_bytes(data) != result.get("sha256"):
        raise ArtifactError(f"the artifact of {target}@{device} does not match the sha256 its worker reported",
                            hint="nothing was written; run the comparison again")
    out = Path(os.path.abspath(out))
    replace = check_destination(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_dir.clean_stale(out)
    tmp = atomic_dir.make_temp_dir(out)
    try:
        with atomic_dir.dir_lock(tmp):
            unpack_into(data, tmp)
            manifest = verify_artifact(tmp)
            where = manifest.get("measured_on") or {}
            if where.get("device") != device or (manifest.get("target") or {}).get("name") != target:
                raise ArtifactError(f"the artifact received for {target}@{device} says it is "
                                    f"{(manifest.get('target') or {}).get('name')}@{where.get('device')}")
            for path in tmp.rglob("*"):
                if path.is_file():
                    fd = os.open(path, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            atomic_dir.fsync_tree(tmp)
            atomic_dir.install(tmp, out, replace=replace)
    except BaseException:
        atomic_dir.remove_tree(tmp)
        raise
    return out, verify_artifact(out)


def register_result(path: Path, manifest: dict, *, name: str, request: Mapping[str, Any], calib: Path | None,
                    warn: Callable[[str], None]) -> Any:
    """Register an installed farm artifact as the next version of ``name`` (its ``measured_on`` comes from the
    sealed manifest); None when the registry is off or registration failed (then ``warn`` was told why)."""
    from edgeopt import Deployment
    from edgeopt.registry.recording import register_deployment

    return register_deployment(Deployment(path=path, manifest=manifest), name=name, request=dict(request),
                               calib=calib, pm=None, warn=warn)
