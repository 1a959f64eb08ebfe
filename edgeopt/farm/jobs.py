"""Farm jobs as plain data: frozen dataclasses that travel as JSON, files addressed by sha256.

A worker accepts exactly two job kinds, through fixed entry points (``edgeopt.farm.worker``): ``build`` (run
the target's search for one device profile and write an artifact) and ``measure`` (profile a built artifact on
one device). Nothing in a job is code: models are ONNX files (data, loaded under the same rules as a local
deploy) and calibration/evaluation data are ``.npz`` files, each named by its sha256 and checked by the worker
before use. ``job_from_json`` refuses anything else: unknown kinds, unknown or missing fields, wrong types,
file names with a path in them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeopt.errors import InputSpecError

JOB_VERSION = 1
MODEL_SUFFIXES = (".onnx",)
DATA_SUFFIXES = (".npz",)
_FILE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SHA_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Blob:
    """A file a job needs, by content: the worker receives its bytes from Ray's object store and checks them."""

    name: str
    """Plain file name (no directories); the suffix tells the loader what it is."""
    sha256: str
    size: int

    def __post_init__(self) -> None:
        if not _FILE_RE.fullmatch(self.name) or not _SHA_RE.fullmatch(self.sha256) or self.size < 0:
            raise InputSpecError(f"invalid file reference {self.name!r} in a farm job")


@dataclass(frozen=True)
class DeployOptions:
    """The deploy options a farm build passes to ``edgeopt.deploy`` (the same names and meanings)."""

    precision: str = "auto"
    max_drop: float = 1.0
    metric: str | None = None
    timing_s: float = 2.0
    runs: int | None = None
    budget_s: float | None = None
    objective: str = "latency"
    cache: bool = True
    max_memory: str | None = None
    input_shapes: dict[str, list[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildJob:
    """Compile ``model`` for ``target`` and one device profile; runs on any node with the toolchain (and, for a
    node's own CPU as the device, a CPU with the same signature)."""

    model: Blob
    target: str
    profile_key: str
    """``host-<sig>`` (build for the builder's own CPU) or a device profile name (``--device`` of the deploy)."""
    name: str
    """Deployment name the result is registered under."""
    options: DeployOptions = field(default_factory=DeployOptions)
    calib: Blob | None = None
    eval: Blob | None = None

    @property
    def key(self) -> str:
        """Content key: equal jobs are built once and measured on every device that shares the profile."""
        return hashlib.sha256(job_to_json(self).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class MeasureJob:
    """Profile the artifact of ``build`` on ``device`` (its node only: ``edgeopt:<target>@<device>``)."""

    build: str
    """``BuildJob.key`` of the artifact measured."""
    target: str
    device: str
    timing_s: float = 2.0
    runs: int | None = None


KINDS: dict[str, type] = {"build": BuildJob, "measure": MeasureJob}


def job_to_json(job: BuildJob | MeasureJob) -> str:
    kind = next(k for k, cls in KINDS.items() if isinstance(job, cls))
    return json.dumps({"kind": kind, "version": JOB_VERSION, "job": asdict(job)}, sort_keys=True)


def job_from_json(text: str) -> BuildJob | MeasureJob:
    """Parse and validate a job; ``InputSpecError`` for anything that is not exactly a known job."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise InputSpecError(f"a farm job is not JSON: {exc}") from exc
    if not isinstance(data, dict) or set(data) != {"kind", "version", "job"} or data["version"] != JOB_VERSION:
        raise InputSpecError("not an edgeopt farm job (kind, version, job)")
    cls = KINDS.get(data["kind"])
    if cls is None:
        raise InputSpecError(f"unknown farm job kind {data['kind']!r}")
    return _build(cls, data["job"])


_NESTED: dict[str, type] = {"model": Blob, "calib": Blob, "eval": Blob, "options": DeployOptions}
_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "float": (int, float), "int": (int,), "bool": (bool,), "str | None": (str, type(None)),
    "int | None": (int, type(None)), "float | None": (int, float, type(None)), "dict[str, list[int]]": (dict,),
}


def _build(cls: type, value: Any) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if not isinstance(value, dict):
        raise InputSpecError(f"{cls.__name__}: expected an object, got {type(value).__name__}")
    if not set(value) <= set(fields):
        raise InputSpecError(f"{cls.__name__}: unexpected fields {sorted(set(value) - set(fields))}")
    args: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in value:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise InputSpecError(f"{cls.__name__}: missing field {name!r}")
            continue
        item = value[name]
        if name in _NESTED:
            args[name] = None if item is None and "None" in str(f.type) else _build(_NESTED[name], item)
            continue
        allowed = _TYPES[str(f.type)]
        if not isinstance(item, allowed) or (isinstance(item, bool) and bool not in allowed):
            raise InputSpecError(f"{cls.__name__}.{name}: {type(item).__name__} is not {f.type}")
        if isinstance(item, dict) and not all(isinstance(k, str) and isinstance(v, list) and all(
                isinstance(d, int) and not isinstance(d, bool) for d in v) for k, v in item.items()):
            raise InputSpecError(f"{cls.__name__}.{name}: expected names mapped to lists of integers")
        args[name] = item
    return cls(**args)


def blob_for(path: Path, *, kind: str) -> Blob:
    """A ``Blob`` for a local file; ``kind`` ``model`` (ONNX) or ``data`` (.npz). Other formats are refused:
    the farm moves data, never files that run code when loaded."""
    suffixes = MODEL_SUFFIXES if kind == "model" else DATA_SUFFIXES
    if path.suffix.lower() not in suffixes:
        raise InputSpecError(f"{path}: the farm takes {' or '.join(suffixes)} {kind} files",
                             hint="export the model to ONNX first (`edgeopt deploy` imports it locally)")
    if not path.is_file():
        raise InputSpecError(f"{path}: no such file")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", path.name).lstrip("._-") or f"file{path.suffix}"
    return Blob(name[-128:], h.hexdigest(), path.stat().st_size)
