"""A content-addressed cache of compiled and evaluated candidates, so a re-run or a resumed search skips them.

Key: sha256 of the normalized graph's fingerprint, the plan (target, precision, passes, threads and the
generic ``keep_fp32``/``calibration``/``granularity`` fields; not its label or notes), fingerprints of the
calibration and evaluation data (arrays, dtypes, shapes, labels), the target, its plugin's version and code
fingerprint (its package's source and the versions of what it requires: ``edgeopt.search.code_fingerprint``), the
device profile, and edgeopt's version and code fingerprint. Never the working directory or any path.

Stored per key: the compiled files, the candidate's outputs on the evaluation data (``outputs.npz``, so
any metric and ``--max-drop`` is judged afresh on reuse), and ``record.json`` (sha256 of every file, the
Compiled fields). A hit is used only after every stored file's sha256 is re-checked; a mismatch drops the
entry. Timings are never cached: reused candidates are timed again with the fresh ones (timing is cheap
and depends on the machine's current state). Location: the ``search`` folder of edgeopt's cache folder
(``edgeopt.settings.cache_dir``: ``$EDGEOPT_CACHE_DIR``, else the platform's user cache folder).

Size: at most ``$EDGEOPT_CACHE_MAX_MB`` (default 2048) MiB; ``evict`` removes the least recently used
entries (a hit refreshes an entry's time) until the cache fits, once per search.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeopt import settings
from edgeopt.errors import EdgeoptError
from edgeopt.hashing import sha256_file
from edgeopt.settings import cache_dir
from edgeopt.types import Compiled, Dataset, PassSpec, Plan

MAX_MB_ENV = "EDGEOPT_CACHE_MAX_MB"
DEFAULT_MAX_MB = 2048
FORMAT = 1
"""Bumped when the stored layout changes; part of every key."""


def cache_root() -> Path:
    """Where the search cache lives: ``cache_dir("search")`` (see the module docstring); not created here."""
    return cache_dir("search")


def cache_limit_bytes() -> int:
    """The cache's size limit from ``$EDGEOPT_CACHE_MAX_MB`` (default 2048 MiB; unreadable values: the default,
    and ``edgeopt plugins doctor`` reports them)."""
    try:
        mb = settings.mebibytes(MAX_MB_ENV)
    except EdgeoptError:
        mb = None
    return int((DEFAULT_MAX_MB if mb is None else mb) * 2**20)


def _tree_bytes(path: Path) -> int:
    total = 0
    for f in path.rglob("*"):
        try:
            if f.is_file():
                total += f.stat().st_size
        except OSError:
            pass
    return total


def evict(root: Path, max_bytes: int) -> int:
    """Remove the least recently used entries under ``root`` until the rest fits in ``max_bytes``; returns the
    number removed. Half-written entries (``.tmp-*``) are left to their writers."""
    entries = []
    for entry in Path(root).glob("??/*"):
        if entry.name.startswith(".tmp-") or not entry.is_dir():
            continue
        try:
            entries.append((entry.stat().st_mtime, _tree_bytes(entry), entry))
        except OSError:
            continue
    total = sum(size for _, size, _ in entries)
    removed = 0
    for _, size, entry in sorted(entries, key=lambda e: e[0]):
        if total <= max_bytes:
            break
        shutil.rmtree(entry, ignore_errors=True)
        total -= size
        removed += 1
    return removed


def data_fingerprint(dataset: Dataset | None) -> str:
    """sha256 over a dataset's array names, dtypes, shapes and bytes, and its labels ("" for None)."""
    if dataset is None:
        return ""
    h = hashlib.sha256()
    items = sorted(dataset.arrays.items())
    if dataset.labels is not None:
        items.append(("\0labels", np.asarray(dataset.labels)))
    if dataset.fed_whole or dataset.state:  # a stream is judged differently from the same arrays fed per sample
        pairs = [(p.output, p.input) for p in dataset.state]
        h.update(f"fed_whole={sorted(dataset.fed_whole)}|state={pairs}|".encode())
    for name, array in items:
        a = np.ascontiguousarray(array)
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.data if a.dtype.kind != "O" else repr(a.tolist()).encode())  # the array's own bytes, no copy
    return h.hexdigest()


def plan_identity(plan: Plan) -> dict[str, Any]:
    """The parts of a plan that change what a target builds (not its label or notes)."""
    return {
        "target": plan.target,
        "precision": plan.precision,
        "passes": [{"name": p.name, "params": _plain(dict(p.params))} for p in plan.passes],
        "threads": plan.threads,
        "keep_fp32": sorted(plan.keep_fp32),
        "calibration": plan.calibration,
        "granularity": plan.granularity,
    }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass(frozen=True)
class CacheHit:
    """A reused candidate: its files copied into the workdir (hashes checked) and its evaluation outputs."""

    compiled: Compiled
    outputs: list[np.ndarray]


class SearchCache:
    """Candidates of one search context (graph, data, target, device), stored under ``root``."""

    def __init__(self, root: Path, *, context: Mapping[str, Any]) -> None:
        self.root = Path(root)
        self._context = {"format": FORMAT, **_plain(dict(context))}
        self.hits = 0
        self.stores = 0

    def key(self, plan: Plan, kind: str = "candidate") -> str:
        return _digest({"context": self._context, "plan": plan_identity(plan), "kind": kind})

    def _entry(self, key: str) -> Path:
        return self.root / key[:2] / key

    # ---------------------------------------------------------------------------------------- candidates

    def load(self, plan: Plan, workdir: Path) -> CacheHit | None:
        """The stored candidate for ``plan`` copied into ``workdir``, or None (miss, or files that fail their
        sha256 check: that entry is removed)."""
        entry = self._entry(self.key(plan))
        try:
            record = json.loads((entry / "record.json").read_text(encoding="utf-8"))
            stored = {name: entry / "files" / name for name in record["files"]}
            if any(sha256_file(p) != record["files"][n] for n, p in stored.items()):
                raise ValueError("sha256 mismatch")
            if sha256_file(entry / "outputs.npz") != record["outputs_sha256"]:
                raise ValueError("sha256 mismatch")
            with np.load(entry / "outputs.npz", allow_pickle=False) as npz:
                outputs = [npz[f"output_{i}"] for i in range(record["outputs"])]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
            shutil.rmtree(entry, ignore_errors=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(entry)  # most recently used: evicted last
        workdir.mkdir(parents=True, exist_ok=True)
        for name, src in stored.items():
            (workdir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, workdir / name)
        c = record["compiled"]
        compiled = Compiled(
            directory=workdir,
            model_file=c["model_file"],
            files=tuple(c["files"]),
            plan=plan,
            runtime=c["runtime"],
            passes=tuple(PassSpec(p["name"], p["params"]) for p in c["passes"]),
            notes=tuple(c["notes"]),
        )
        self.hits += 1
        return CacheHit(compiled, outputs)

    def store(self, plan: Plan, compiled: Compiled, outputs: Sequence[np.ndarray]) -> None:
        """Store a compiled, evaluated candidate (atomically: a half-written entry is never visible).
        String outputs (scikit-learn labels) cannot be stored without pickle; such candidates are not cached."""
        if any(np.asarray(o).dtype.kind == "O" for o in outputs):
            return
        key = self.key(plan)

        def fill(tmp: Path) -> None:
            files = {}
            for name in compiled.files:
                dst = tmp / "files" / name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(compiled.directory / name, dst)
                files[name] = sha256_file(dst)
            np.savez(tmp / "outputs.npz", **{f"output_{i}": np.asarray(o) for i, o in enumerate(outputs)})
            record = {
                "key": key,
                "plan": plan_identity(plan),
                "files": files,
                "outputs": len(outputs),
                "outputs_sha256": sha256_file(tmp / "outputs.npz"),
                "compiled": {
                    "model_file": compiled.model_file,
                    "files": list(compiled.files),
                    "runtime": compiled.runtime,
                    "passes": [{"name": p.name, "params": _plain(dict(p.params))} for p in compiled.passes],
                    "notes": list(compiled.notes),
                },
            }
            (tmp / "record.json").write_text(json.dumps(record, indent=1), encoding="utf-8")

        if self._publish(key, fill):
            self.stores += 1

    # ------------------------------------------------------------------------------------- side results

    def load_json(self, plan: Plan, kind: str) -> dict | None:
        """A JSON result stored for ``plan`` under ``kind`` (e.g. ``sensitivity``), or None."""
        try:
            return json.loads((self._entry(self.key(plan, kind)) / "data.json").read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def store_json(self, plan: Plan, kind: str, data: Mapping[str, Any]) -> None:
        key = self.key(plan, kind)
        self._publish(key, lambda tmp: (tmp / "data.json").write_text(json.dumps(_plain(dict(data))), "utf-8"))

    def _publish(self, key: str, fill: Any) -> bool:
        """Write an entry in a temp dir beside its place and rename it in; False if it exists or cannot be written."""
        entry = self._entry(key)
        if entry.exists():
            return False
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=entry.parent))
        except OSError:
            return False  # a read-only or full cache never fails a deploy
        try:
            fill(tmp)
            os.rename(tmp, entry)
            return True
        except OSError:
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def search_context(**facts: Any) -> dict[str, Any]:
    """Normalize the key facts (dataclasses become dicts, paths are dropped)."""
    out: dict[str, Any] = {}
    for name, value in facts.items():
        if hasattr(value, "__dataclass_fields__"):
            value = {k: v for k, v in asdict(value).items() if k not in ("path", "sources")}
        out[name] = value
    return out
