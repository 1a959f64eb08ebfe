"""The deployment registry: an SQLite file (WAL mode) every deploy appends to.

Where: ``EDGEOPT_REGISTRY`` names the database file (or a directory to hold ``registry.db``);
``EDGEOPT_REGISTRY=off`` turns the registry off; unset, it is ``registry.db`` in edgeopt's data folder
(``edgeopt.settings.data_dir``: ``$EDGEOPT_DATA_DIR``, else the platform's user data folder).
Every write is one ``BEGIN IMMEDIATE`` transaction, so concurrent deploys
from many processes each get their own version number and none is lost; readers never block writers.
The database must be on a local filesystem (SQLite's WAL needs shared memory).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import sqlite3
import time
from collections.abc import Iterator, Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from edgeopt import settings
from edgeopt.registry.records import DeploymentRecord
from edgeopt.registry.refs import RegistryError, check_name, check_stage, parse_ref
from edgeopt.settings import data_dir

SCHEMA_VERSION = 2
"""2 added ``measured_on`` (where a farm measured the deployment); a version-1 database gains the column on open."""
OFF_VALUES = ("off", "0", "false", "no", "none")
_JSON_FIELDS = ("plan", "metrics", "profile", "request", "calibration", "environment", "links", "measured_on")
_BUSY_S = 60.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    created TEXT NOT NULL,
    source_path TEXT NOT NULL,
    source_format TEXT NOT NULL,
    source_fingerprint TEXT NOT NULL,
    graph_fingerprint TEXT NOT NULL,
    target TEXT NOT NULL,
    device TEXT NOT NULL,
    precision TEXT NOT NULL,
    plan TEXT NOT NULL,
    metrics TEXT NOT NULL,
    profile TEXT NOT NULL,
    artifact_path TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    request TEXT NOT NULL,
    calibration TEXT NOT NULL,
    environment TEXT NOT NULL,
    edgeopt_version TEXT NOT NULL,
    links TEXT NOT NULL DEFAULT '{}',
    measured_on TEXT NOT NULL DEFAULT '{}',
    UNIQUE (name, version)
);
CREATE TABLE IF NOT EXISTS stage_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    stage TEXT NOT NULL,
    version INTEGER NOT NULL,
    action TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS stages (
    name TEXT NOT NULL,
    stage TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated TEXT NOT NULL,
    PRIMARY KEY (name, stage)
);
CREATE INDEX IF NOT EXISTS deployments_artifact ON deployments (artifact_path);
"""


def default_registry_dir() -> Path:
    """The folder of the default registry: edgeopt's data folder (``edgeopt.settings.data_dir``)."""
    return data_dir()


def registry_path() -> Path | None:
    """The database file the environment selects, or None when ``EDGEOPT_REGISTRY=off``."""
    raw = settings.text("EDGEOPT_REGISTRY") or ""
    if raw.lower() in OFF_VALUES:
        return None
    if not raw:
        return default_registry_dir() / "registry.db"
    path = Path(raw).expanduser()
    return path / "registry.db" if path.is_dir() or raw.endswith(("/", os.sep)) else path


def open_registry(path: str | Path | None = None) -> Registry | None:
    """The registry at ``path`` (default: ``registry_path()``); None when the registry is off."""
    chosen = Path(path) if path is not None else registry_path()
    return Registry(chosen) if chosen is not None else None


def require_registry(path: str | Path | None = None) -> Registry:
    """Like ``open_registry`` but raise ``RegistryError`` when the registry is off."""
    reg = open_registry(path)
    if reg is None:
        raise RegistryError(
            "the deployment registry is off (EDGEOPT_REGISTRY=off)",
            hint="unset EDGEOPT_REGISTRY, or set it to a database path",
        )
    return reg


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="microseconds")


class Registry:
    """Deployments by name and version, with stages. Each method is one short transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(
                f"cannot create the registry directory {self.path.parent}: {exc.strerror or exc}",
                hint="set EDGEOPT_REGISTRY to a writable path, or EDGEOPT_REGISTRY=off",
            ) from exc
        with self._read() as db:
            (current,) = db.execute("PRAGMA user_version").fetchone()
        if current != SCHEMA_VERSION:
            with self._tx() as db:
                _ensure_schema(db)

    # -- connection ----------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            db = sqlite3.connect(self.path, timeout=_BUSY_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise RegistryError(
                f"cannot open the registry {self.path}: {exc}",
                hint="set EDGEOPT_REGISTRY to a writable path, or EDGEOPT_REGISTRY=off",
            ) from exc
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout = {int(_BUSY_S * 1000)}")
        _retry(lambda: db.execute("PRAGMA journal_mode = WAL"))
        db.execute("PRAGMA synchronous = FULL")
        return db

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken up front (``BEGIN IMMEDIATE``) so it cannot deadlock on upgrade."""
        db = self._connect()
        try:
            _retry(lambda: db.execute("BEGIN IMMEDIATE"))
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise RegistryError(
                f"registry {self.path}: {exc}", hint="the database may be corrupt or on a network filesystem"
            ) from exc
        finally:
            db.close()

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        db = self._connect()
        try:
            yield db
        except sqlite3.DatabaseError as exc:
            raise RegistryError(f"registry {self.path}: {exc}") from exc
        finally:
            db.close()

    # -- writing -------------------------------------------------------------------------------------

    def add(self, record: DeploymentRecord) -> DeploymentRecord:
        """Register ``record`` under the next version of its name; return it with version and time set."""
        check_name(record.name)
        with self._tx() as db:
            (latest,) = db.execute("SELECT COALESCE(MAX(version), 0) FROM deployments WHERE name = ?",
                                   (record.name,)).fetchone()
            stored = replace(record, version=int(latest) + 1, created=_now(), stages=())
            row = _to_row(stored)
            db.execute(
                f"INSERT INTO deployments ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values())
            )
        return stored

    def set_links(self, name: str, version: int, links: Mapping[str, str]) -> None:
        """Merge ``links`` into a version's recorded links."""
        with self._tx() as db:
            row = db.execute("SELECT links FROM deployments WHERE name = ? AND version = ?", (name, version)).fetchone()
            if row is None:
                raise RegistryError(f"{name}:{version} is not registered")
            merged = {**json.loads(row["links"]), **{str(k): str(v) for k, v in links.items()}}
            db.execute("UPDATE deployments SET links = ? WHERE name = ? AND version = ?",
                       (json.dumps(merged, sort_keys=True), name, version))

    def promote(self, name: str, version: int, stage: str = "production") -> int | None:
        """Point ``stage`` of ``name`` at ``version``; return the version it pointed at before (or None)."""
        check_stage(stage)
        with self._tx() as db:
            self._require(db, name, version)
            before = _stage_version(db, name, stage)
            _set_stage(db, name, stage, version, "promote")
            return before

    def rollback(self, name: str, stage: str = "production") -> tuple[int, int]:
        """Undo the last promotion of ``stage``: return (version it pointed at, version it points at now)."""
        check_stage(stage)
        with self._tx() as db:
            stack: list[int] = []
            for ev in db.execute("SELECT version, action FROM stage_events WHERE name = ? AND stage = ? ORDER BY id",
                                 (name, stage)):
                if ev["action"] == "promote":
                    stack.append(ev["version"])
                elif stack:
                    stack.pop()
            if len(stack) < 2:
                current = f"at {name}:{stack[-1]}" if stack else "not set"
                raise RegistryError(
                    f"nothing to roll back to: {stage} of {name!r} is {current} with no earlier promotion",
                    hint=f"promote a version instead: edgeopt promote {name}:VERSION --stage {stage}",
                )
            _set_stage(db, name, stage, stack[-2], "rollback")
            return stack[-1], stack[-2]

    # -- reading -------------------------------------------------------------------------------------

    def names(self) -> list[str]:
        with self._read() as db:
            return [r[0] for r in db.execute("SELECT DISTINCT name FROM deployments ORDER BY name")]

    def list(self, name: str | None = None) -> list[DeploymentRecord]:
        """Every record (of ``name``), oldest first within a name."""
        query, args = "SELECT * FROM deployments", ()
        if name is not None:
            query, args = query + " WHERE name = ?", (name,)
        with self._read() as db:
            stages = _all_stages(db)
            return [_from_row(r, stages) for r in db.execute(query + " ORDER BY name, version", args)]

    def get(self, name: str, version: int | None = None) -> DeploymentRecord:
        """One version of ``name`` (the latest when ``version`` is None)."""
        with self._read() as db:
            if version is None:
                row = db.execute("SELECT * FROM deployments WHERE name = ? ORDER BY version DESC LIMIT 1",
                                 (name,)).fetchone()
            else:
                row = db.execute("SELECT * FROM deployments WHERE name = ? AND version = ?", (name, version)).fetchone()
            if row is None:
                raise _not_found(db, name, version)
            return _from_row(row, _all_stages(db))

    def latest(self, name: str) -> DeploymentRecord | None:
        try:
            return self.get(name)
        except RegistryError:
            return None

    def stages(self, name: str) -> dict[str, int]:
        with self._read() as db:
            return {s: v for (n, s), v in _all_stages(db).items() if n == name}

    def resolve(self, ref: str) -> DeploymentRecord:
        """``NAME`` (latest), ``NAME:VERSION``, ``NAME:latest`` or ``NAME@STAGE``."""
        name, version, stage = parse_ref(ref)
        if stage is not None:
            at = self.stages(name).get(stage)
            if at is None:
                raise RegistryError(
                    f"{name!r} has no {stage} version",
                    hint=f"promote one: edgeopt promote {name}:VERSION --stage {stage}",
                )
            version = at
        return self.get(name, version)

    def find_by_artifact(self, artifact: str | Path) -> DeploymentRecord | None:
        """The latest record whose artifact is at ``artifact``, if any."""
        path = str(Path(artifact).resolve())
        with self._read() as db:
            row = db.execute("SELECT * FROM deployments WHERE artifact_path = ? ORDER BY id DESC LIMIT 1",
                             (path,)).fetchone()
            return _from_row(row, _all_stages(db)) if row is not None else None

    def _require(self, db: sqlite3.Connection, name: str, version: int) -> None:
        if db.execute("SELECT 1 FROM deployments WHERE name = ? AND version = ?", (name, version)).fetchone() is None:
            raise _not_found(db, name, version)


# ------------------------------------------------------------------------------------------- helpers


def _retry(call: Any) -> Any:
    """Retry a statement SQLite refuses with "locked"/"busy" before its busy handler applies."""
    deadline = time.monotonic() + _BUSY_S
    delay = 0.005
    while True:
        try:
            return call()
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


def _ensure_schema(db: sqlite3.Connection) -> None:
    """Create the tables on first use (inside the caller's transaction; ``executescript`` would commit it)."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise RegistryError(f"registry schema {version} is newer than this edgeopt understands ({SCHEMA_VERSION})",
                            hint="upgrade edgeopt, or point EDGEOPT_REGISTRY at another database")
    if version < SCHEMA_VERSION:
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        columns = {row[1] for row in db.execute("PRAGMA table_info(deployments)")}
        if "measured_on" not in columns:  # a version-1 database: its table predates the column
            db.execute("ALTER TABLE deployments ADD COLUMN measured_on TEXT NOT NULL DEFAULT '{}'")
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _to_row(record: DeploymentRecord) -> dict[str, Any]:
    row = {f.name: getattr(record, f.name) for f in fields(record) if f.name != "stages"}
    for key in _JSON_FIELDS:
        row[key] = json.dumps(row[key], sort_keys=True, allow_nan=False, default=str)
    return row


def _from_row(row: sqlite3.Row, stages: Mapping[tuple[str, str], int]) -> DeploymentRecord:
    data = {k: row[k] for k in row.keys() if k != "id"}  # noqa: SIM118 - sqlite3.Row
    for key in _JSON_FIELDS:
        data[key] = json.loads(data[key])
    data["stages"] = tuple(s for (n, s), v in sorted(stages.items()) if n == data["name"] and v == data["version"])
    return DeploymentRecord(**data)


def _all_stages(db: sqlite3.Connection) -> dict[tuple[str, str], int]:
    return {(r["name"], r["stage"]): r["version"] for r in db.execute("SELECT name, stage, version FROM stages")}


def _stage_version(db: sqlite3.Connection, name: str, stage: str) -> int | None:
    row = db.execute("SELECT version FROM stages WHERE name = ? AND stage = ?", (name, stage)).fetchone()
    return row["version"] if row else None


def _set_stage(db: sqlite3.Connection, name: str, stage: str, version: int, action: str) -> None:
    at = _now()
    db.execute(
        "INSERT INTO stages (name, stage, version, updated) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (name, stage) DO UPDATE SET version = excluded.version, updated = excluded.updated",
        (name, stage, version, at),
    )
    db.execute("INSERT INTO stage_events (name, stage, version, action, at) VALUES (?, ?, ?, ?, ?)",
               (name, stage, version, action, at))


def _not_found(db: sqlite3.Connection, name: str, version: int | None) -> RegistryError:
    versions = [r[0] for r in db.execute("SELECT version FROM deployments WHERE name = ? ORDER BY version", (name,))]
    if not versions:
        return RegistryError(f"no deployment named {name!r} in the registry")
    return RegistryError(
        f"{name}:{version} is not registered (versions: {', '.join(map(str, versions))})",
        hint=f"run `edgeopt show {name}` or `edgeopt models`",
    )

