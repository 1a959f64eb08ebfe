"""The field log: one JSON line per predictor call, written by ``FieldRecorder`` and read by ``read_log``.

A line is either a header (``{"edgeopt_monitor": 1, "artifact", "manifest_sha256", "pid", "started"}``,
written whenever a predictor starts recording) or a call record (``{"t", "latency_s", "batch",
"features": {name: [one value per sample]}}``). Each line goes to the file in a single ``write`` on a
descriptor opened with ``O_APPEND``, so several processes can share one log. Raw inputs are never written.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgeopt.errors import DataError
from edgeopt.monitoring.stats import sample_features

LOG_VERSION = 1


class FieldRecorder:
    """Appends one line per recorded call to ``path``; ``every=k`` records one call in k."""

    def __init__(self, path: str | Path, *, artifact: str = "", manifest_sha256: str = "", every: int = 1) -> None:
        if every < 1:
            raise ValueError("every must be >= 1")
        self.path = Path(path)
        self.every = every
        self._calls = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        header = {
            "edgeopt_monitor": LOG_VERSION,
            "artifact": artifact,
            "manifest_sha256": manifest_sha256,
            "pid": os.getpid(),
            "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        }
        self._write(header)

    def _write(self, record: Mapping) -> None:
        if self._fd is not None:
            os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())

    def record(self, feeds: Mapping[str, np.ndarray], latency_s: float) -> None:
        """Summarize ``feeds`` (never store them) and append the call's line."""
        self._calls += 1
        if (self._calls - 1) % self.every:
            return
        features = sample_features(feeds)
        batch = len(next(iter(features.values()))) if features else 1
        self._write(
            {
                "t": round(time.time(), 3),
                "latency_s": latency_s,
                "batch": batch,
                "features": {k: v.tolist() for k, v in features.items()},
            }
        )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@dataclass
class FieldLog:
    """A field log read back: per-feature values over all recorded samples, and (batch, latency) per call."""

    features: dict[str, np.ndarray]
    calls: list[tuple[int, float]]
    headers: list[dict] = field(default_factory=list)
    bad_lines: int = 0

    @property
    def samples(self) -> int:
        return max((len(v) for v in self.features.values()), default=0)


def read_log(path: str | Path) -> FieldLog:
    """Read a field log; a truncated or foreign line is counted in ``bad_lines``, not fatal.

    Raises ``DataError`` when the file is missing or holds no call record at all.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no field log there", hint="record one with edgeopt.load(..., monitor_log=PATH)")
    parts: dict[str, list[list[float]]] = {}
    calls: list[tuple[int, float]] = []
    headers: list[dict] = []
    bad = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if not isinstance(rec, dict):
                bad += 1
            elif "edgeopt_monitor" in rec:
                headers.append(rec)
            elif isinstance(rec.get("features"), dict) and isinstance(rec.get("latency_s"), int | float):
                calls.append((int(rec.get("batch") or 1), float(rec["latency_s"])))
                for name, values in rec["features"].items():
                    if isinstance(values, list):
                        parts.setdefault(name, []).append([float(v) if v is not None else np.nan for v in values])
            else:
                bad += 1
    if not calls:
        raise DataError(
            f"{path}: no recorded calls in this field log" + (f" ({bad} unreadable line(s))" if bad else ""),
            hint="record one with edgeopt.load(..., monitor_log=PATH) and call the predictor",
        )
    features = {k: np.concatenate([np.asarray(p, dtype=np.float64) for p in v]) for k, v in parts.items()}
    return FieldLog(features=features, calls=calls, headers=headers, bad_lines=bad)
