"""Atomic artifact writing and verification (edgeopt.artifact.write)."""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from edgeopt.artifact import atomic_dir
from edgeopt.artifact import write as artifact
from edgeopt.artifact.write import MANIFEST_SCHEMA_VERSION, verify_artifact, write_artifact
from edgeopt.errors import ArtifactError, EdgeoptError, OutputPathError
from edgeopt.hashing import sha256_file


def _manifest(version: str = "v1") -> dict:
    return {"edgeopt_version": "0.1.0", "plan": {"precision": "int8", "label": version}, "warnings": []}


@pytest.fixture()
def sources(tmp_path: Path) -> dict[str, Path]:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.onnx").write_bytes(bytes(range(256)) * 3)
    (src / "weights.bin").write_bytes(b"\x00\x01weights\xff")
    return {"model.onnx": src / "model.onnx", "data/weights.bin": src / "weights.bin"}


def _write(out: Path, sources: dict[str, Path], version: str = "v1", **kw) -> Path:
    return write_artifact(out, files=sources, manifest=_manifest(version), report_md=f"# report {version}\n", **kw)


def _temp_dirs(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if ".tmp-" in p.name]


def test_roundtrip_lists_every_file_with_hash_and_size(tmp_path: Path, sources: dict[str, Path]) -> None:
    given = _manifest()
    out = _write(tmp_path / "art", sources, extra_text={"notes/readme.txt": "héllo\n"})
    assert given == _manifest(), "the caller's manifest must not be mutated"
    manifest = verify_artifact(out)
    assert manifest["schema_version"] == MANIFEST_SCHEMA_VERSION
    assert set(manifest["files"]) == {"model.onnx", "data/weights.bin", "report.md", "notes/readme.txt"}
    for name, entry in manifest["files"].items():
        data = (out / name).read_bytes()
        assert entry == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        assert sha256_file(out / name) == entry["sha256"]
    assert (out / "model.onnx").read_bytes() == sources["model.onnx"].read_bytes()
    assert (out / "report.md").read_text() == "# report v1\n"
    assert (out / "notes/readme.txt").read_text(encoding="utf-8") == "héllo\n"
    raw = (out / "manifest.json").read_text(encoding="utf-8")
    assert raw == json.dumps(json.loads(raw), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert _temp_dirs(tmp_path) == []


def test_manifest_values_are_made_plain_json(tmp_path: Path, sources: dict[str, Path]) -> None:
    manifest = {
        "a": np.float32(1.5), "b": float("inf"), "c": (1, 2), "d": tmp_path, "e": np.arange(3), "f": float("nan")
    }
    out = write_artifact(tmp_path / "art", files=sources, manifest=manifest, report_md="r")
    got = verify_artifact(out)
    assert got["a"] == 1.5 and got["b"] is None and got["c"] == [1, 2] and got["f"] is None
    assert got["d"] == str(tmp_path) and got["e"] == [0, 1, 2]


def test_sha256_file_matches_hashlib_across_chunks(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "big").write_bytes(data)
    assert sha256_file(tmp_path / "big") == hashlib.sha256(data).hexdigest()


def test_flipping_any_byte_of_any_file_is_detected(tmp_path: Path, sources: dict[str, Path]) -> None:
    out = _write(tmp_path / "art", sources)
    names = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert "manifest.json" in names and len(names) == 4
    for name in names:
        path = out / name
        original = path.read_bytes()
        for i in range(len(original)):
            flipped = bytearray(original)
            flipped[i] ^= 0xFF if i % 2 else 0x01
            path.write_bytes(bytes(flipped))
            with pytest.raises(ArtifactError) as info:
                verify_artifact(out)
            if name != "manifest.json":
                assert str(info.value).startswith(f"{name}: sha256 mismatch — the artifact was modified or is corrupt")
        path.write_bytes(original)
        verify_artifact(out)


def test_truncated_or_missing_files_are_named(tmp_path: Path, sources: dict[str, Path]) -> None:
    out = _write(tmp_path / "art", sources)
    (out / "data/weights.bin").write_bytes(b"short")
    with pytest.raises(ArtifactError, match=r"^data/weights.bin: size mismatch"):
        verify_artifact(out)
    (out / "data/weights.bin").unlink()
    with pytest.raises(ArtifactError, match=r"^data/weights.bin: missing"):
        verify_artifact(out)


@pytest.mark.parametrize("extra", ["stray.txt", "data/stray.bin", ".hidden"])
def test_unlisted_file_is_detected(tmp_path: Path, sources: dict[str, Path], extra: str) -> None:
    out = _write(tmp_path / "art", sources)
    (out / extra).write_bytes(b"x")
    with pytest.raises(ArtifactError, match=rf"^{extra}: not listed in the manifest"):
        verify_artifact(out)


def test_symlink_replacing_a_listed_file_is_refused(tmp_path: Path, sources: dict[str, Path]) -> None:
    out = _write(tmp_path / "art", sources)
    (out / "model.onnx").unlink()
    (out / "model.onnx").symlink_to(sources["model.onnx"])
    with pytest.raises(ArtifactError, match="model.onnx: is a symbolic link"):
        verify_artifact(out)


def test_verify_refuses_missing_dir_manifest_and_bad_json(tmp_path: Path, sources: dict[str, Path]) -> None:
    with pytest.raises(ArtifactError, match="nope does not exist"):
        verify_artifact(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(ArtifactError, match="manifest.json is missing"):
        verify_artifact(tmp_path / "plain")
    out = _write(tmp_path / "art", sources)
    (out / "manifest.json").write_text("{not json")
    with pytest.raises(ArtifactError, match="not valid JSON"):
        verify_artifact(out)
    (out / "manifest.json").write_text(json.dumps({"files": {}}))
    with pytest.raises(ArtifactError, match="schema_version"):
        verify_artifact(out)
    (out / "manifest.json").write_text(json.dumps({"schema_version": MANIFEST_SCHEMA_VERSION + 1, "files": {}}))
    with pytest.raises(ArtifactError, match="newer") as info:
        verify_artifact(out)
    assert "upgrade" in info.value.hint


def test_edited_but_consistent_manifest_is_detected(tmp_path: Path, sources: dict[str, Path]) -> None:
    out = _write(tmp_path / "art", sources)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["plan"]["precision"] = "fp32"
    (out / "manifest.json").write_text(json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n")
    with pytest.raises(ArtifactError, match="manifest.json: sha256 mismatch"):
        verify_artifact(out)


def test_manifest_listing_a_path_outside_is_refused(tmp_path: Path, sources: dict[str, Path]) -> None:
    out = _write(tmp_path / "art", sources)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["../src/model.onnx"] = manifest["files"]["model.onnx"]
    manifest.pop(artifact.SEAL_KEY)
    manifest[artifact.SEAL_KEY] = artifact._seal(manifest)
    (out / "manifest.json").write_bytes(artifact._canonical(manifest))
    with pytest.raises(ArtifactError, match=r"^\.\./src/model.onnx: listed with a path outside"):
        verify_artifact(out)


@pytest.mark.parametrize("rel", ["../evil.onnx", "a/../../evil", "/abs/model.onnx", "", ".", "a\\b", "manifest.json"])
def test_bad_relative_names_are_refused(tmp_path: Path, sources: dict[str, Path], rel: str) -> None:
    with pytest.raises(OutputPathError):
        write_artifact(tmp_path / "art", files={rel: sources["model.onnx"]}, manifest={}, report_md="r")
    assert not (tmp_path / "art").exists() and not (tmp_path / "evil.onnx").exists()
    assert _temp_dirs(tmp_path) == []


def test_duplicate_names_after_normalization_are_refused(tmp_path: Path, sources: dict[str, Path]) -> None:
    with pytest.raises(OutputPathError, match="used twice"):
        write_artifact(
            tmp_path / "art", files={"a/b": sources["model.onnx"]}, manifest={}, report_md="r",
            extra_text={"a/./b": "x"},
        )


def test_refuses_to_clobber_user_files(tmp_path: Path, sources: dict[str, Path]) -> None:
    user = tmp_path / "photos"
    user.mkdir()
    (user / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(OutputPathError, match="not an edgeopt artifact") as info:
        _write(user, sources)
    assert info.value.hint
    assert sorted(p.name for p in user.iterdir()) == ["cat.jpg"] and (user / "cat.jpg").read_bytes() == b"meow"
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    with pytest.raises(OutputPathError, match="is a file"):
        _write(afile, sources)
    assert afile.read_text() == "keep me"
    assert _temp_dirs(tmp_path) == []


def test_empty_directory_is_used(tmp_path: Path, sources: dict[str, Path]) -> None:
    (tmp_path / "art").mkdir()
    verify_artifact(_write(tmp_path / "art", sources))


def test_replace_is_complete_at_every_instant(
    tmp_path: Path, sources: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _write(tmp_path / "art", sources, "v1")
    seen: list[str] = []
    real_fsync_dir = atomic_dir.fsync_dir

    def observing_fsync_dir(path: Path) -> None:
        seen.append(verify_artifact(out)["plan"]["label"])  # raises if `out` is ever incomplete
        real_fsync_dir(path)

    monkeypatch.setattr(atomic_dir, "fsync_dir", observing_fsync_dir)
    _write(out, sources, "v2")
    assert seen[0] == "v1" and seen[-1] == "v2" and set(seen) == {"v1", "v2"}
    assert verify_artifact(out)["plan"]["label"] == "v2"
    assert (out / "report.md").read_text() == "# report v2\n"
    assert _temp_dirs(tmp_path) == []


def test_replace_without_renameat2_falls_back(
    tmp_path: Path, sources: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _write(tmp_path / "art", sources, "v1")
    monkeypatch.setattr(atomic_dir, "_renameat2", lambda a, b, flags: False)
    _write(out, sources, "v2")
    assert verify_artifact(out)["plan"]["label"] == "v2"
    assert _temp_dirs(tmp_path) == []


@pytest.mark.parametrize("bad", ["missing", "directory"])
def test_unreadable_source_keeps_old_artifact(tmp_path: Path, sources: dict[str, Path], bad: str) -> None:
    out = _write(tmp_path / "art", sources, "v1")
    broken = dict(sources)
    broken["zzz_last.bin"] = tmp_path / "gone.bin" if bad == "missing" else tmp_path / "src"
    with pytest.raises(ArtifactError, match="cannot read"):
        _write(out, broken, "v2")
    assert verify_artifact(out)["plan"]["label"] == "v1"
    assert _temp_dirs(tmp_path) == []


@pytest.mark.parametrize(
    ("code", "hint"), [(errno.ENOSPC, "disk is full"), (errno.EROFS, "read-only"), (errno.EACCES, "permission")]
)
def test_write_errors_become_output_errors_and_keep_old(
    tmp_path: Path, sources: dict[str, Path], monkeypatch: pytest.MonkeyPatch, code: int, hint: str
) -> None:
    out = _write(tmp_path / "art", sources, "v1")
    calls = {"n": 0}
    real_fsync = os.fsync

    def failing_fsync(fd: int) -> None:
        calls["n"] += 1
        if calls["n"] == 2:  # second file: the artifact is half written
            raise OSError(code, os.strerror(code))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OutputPathError) as info:
        _write(out, sources, "v2")
    assert hint in info.value.hint
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert verify_artifact(out)["plan"]["label"] == "v1"
    assert _temp_dirs(tmp_path) == []


def test_failed_swap_keeps_old_artifact(
    tmp_path: Path, sources: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = _write(tmp_path / "art", sources, "v1")

    def failing_exchange(a: Path, b: Path) -> bool:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(atomic_dir, "_exchange", failing_exchange)
    with pytest.raises(EdgeoptError):
        _write(out, sources, "v2")
    assert verify_artifact(out)["plan"]["label"] == "v1"
    assert _temp_dirs(tmp_path) == []


def test_unwritable_parent_is_an_output_error(tmp_path: Path, sources: dict[str, Path]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError):
        _write(blocker / "sub" / "art", sources)


def test_leftover_temp_dirs_are_cleaned_but_live_ones_kept(tmp_path: Path, sources: dict[str, Path]) -> None:
    stale = tmp_path / ".art.tmp-crashed"
    (stale / "sub").mkdir(parents=True)
    (stale / "sub" / "model.onnx").write_bytes(b"half")
    live = tmp_path / ".art.tmp-live"
    live.mkdir()
    other = tmp_path / ".other.tmp-x"
    other.mkdir()
    fd = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _write(tmp_path / "art", sources)
    finally:
        os.close(fd)
    assert not stale.exists()
    assert live.exists() and other.exists()


def test_relative_out_and_permissions_follow_umask(
    tmp_path: Path, sources: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    old = os.umask(0o022)
    try:
        out = _write(Path("rel-art"), sources)
    finally:
        os.umask(old)
    assert out == Path("rel-art") and verify_artifact(tmp_path / "rel-art")
    assert (tmp_path / "rel-art").stat().st_mode & 0o777 == 0o755
    with pytest.raises(OutputPathError, match="not an edgeopt artifact"):
        _write(Path("."), sources)  # the current directory holds user files
