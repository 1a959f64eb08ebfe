"""kill -9 during artifact writes: a child rewrites one artifact in a loop, this process SIGKILLs it at random.

    python -m tests.security.crash_harness --kills 200 --out-dir DIR [--seed N]

Run it in a fresh, single-threaded process (it forks). Each child writes versions base, base+1, ...
of the same artifact, alternating between a large and a small variant, and announces each version on
a pipe before starting it. After every kill this process checks that ``verify_artifact`` passes, that
the artifact holds the version being written or the one before it (never a mix, never older, never
gone once one was complete), and how many temp dirs were left behind. Prints one JSON report.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import struct
import time
from pathlib import Path

from edgeopt.artifact.write import verify_artifact, write_artifact
from edgeopt.errors import ArtifactError

SIZES = (384 * 1024, 40 * 1024)
"""Bytes of model.onnx in even and odd versions."""


def variant(version: int) -> bytes:
    return bytes([65 + version % 2]) * SIZES[version % 2]


def make_sources(root: Path) -> dict[int, dict[str, Path]]:
    sources = {}
    for parity in (0, 1):
        folder = root / f"src{parity}"
        (folder / "weights").mkdir(parents=True, exist_ok=True)
        (folder / "model.onnx").write_bytes(variant(parity))
        (folder / "weights" / "part0.bin").write_bytes(bytes(range(256)) * (4 + 60 * (1 - parity)))
        sources[parity] = {"model.onnx": folder / "model.onnx", "weights/part0.bin": folder / "weights" / "part0.bin"}
    return sources


def write_version(out: Path, version: int, sources: dict[int, dict[str, Path]]) -> None:
    write_artifact(
        out,
        files=sources[version % 2],
        manifest={"version": version, "target": {"name": "crash-test"}},
        report_md=f"# version {version}\n" + "text\n" * (500 if version % 2 == 0 else 20),
        extra_text={"version.txt": str(version)},
    )


def writer(out: Path, base: int, sources: dict[int, dict[str, Path]], announce: int) -> None:
    """Child body: announce then write versions base, base+1, ... until killed."""
    version = base
    while True:
        os.write(announce, struct.pack(">Q", version))
        write_version(out, version, sources)
        version += 1


def leftovers(out: Path) -> list[str]:
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.tmp-"))


def check(out: Path, previous: int, current: int) -> tuple[int | None, str | None]:
    """The artifact's version (None when absent) and what is wrong with it, if anything.

    ``previous`` is the last version known complete, ``current`` the one being written when killed.
    """
    if not out.exists():
        return None, None
    try:
        manifest = verify_artifact(out)
    except ArtifactError as exc:
        return None, f"verify failed: {exc.message}"
    version = int(manifest["version"])
    if (out / "version.txt").read_text() != str(version) or (out / "model.onnx").read_bytes() != variant(version):
        return version, "torn: files of different versions"
    if version not in (previous, current):
        return version, f"holds version {version}; expected {previous} (complete) or {current} (being written)"
    return version, None


def run(kills: int, out_dir: Path, seed: int) -> dict:
    rng = random.Random(seed)
    out = out_dir / "art.edgeopt"
    sources = make_sources(out_dir / "sources")
    start = time.perf_counter()
    for v in range(4):  # calibrate: how long one write takes here
        write_version(out, v, sources)
    write_s = (time.perf_counter() - start) / 4
    base, seen, problems = 4, 3, []
    interrupted, max_left, advanced = 0, 0, 0
    for _ in range(kills):
        read_fd, write_fd = os.pipe()
        pid = os.fork()
        if pid == 0:  # child
            try:
                os.close(read_fd)
                writer(out, base, sources, write_fd)
            finally:
                os._exit(0)
        os.close(write_fd)
        time.sleep(rng.uniform(0.0, 3.0 * write_s))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        announced = b""
        while chunk := os.read(read_fd, 65536):
            announced += chunk
        os.close(read_fd)
        started = [struct.unpack_from(">Q", announced, i)[0] for i in range(0, len(announced) - 7, 8)]
        last = started[-1] if started else base - 1
        previous = started[-2] if len(started) > 1 else seen  # the child completed every version but its last
        left = leftovers(out)
        interrupted += bool(left)
        max_left = max(max_left, len(left))
        version, problem = check(out, previous, last if started else previous)
        if version is None and problem is None:
            problem = "the artifact disappeared"
        if problem:
            problems.append(problem)
        if version is not None:
            advanced += version > seen
            seen = version
        base = last + 1
    write_version(out, base, sources)  # the next write cleans what the killed writers left
    verify_artifact(out)
    return {
        "kills": kills,
        "write_ms": round(write_s * 1000, 2),
        "problems": problems,
        "torn": sum("torn" in p for p in problems),
        "verify_failures": sum("verify failed" in p for p in problems),
        "kills_mid_write": interrupted,
        "kills_after_progress": advanced,
        "max_leftover_temp_dirs": max_left,
        "leftover_temp_dirs_after_next_write": len(leftovers(out)),
        "versions_written": base - 4,
        "seconds": round(time.perf_counter() - start, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=200)
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(run(args.kills, args.out_dir, args.seed), sort_keys=True))


if __name__ == "__main__":
    main()
