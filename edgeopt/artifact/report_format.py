"""Formatting helpers of the Markdown report: safe manifest lookups, units, table cells, fidelity text.

Each helper takes whatever the manifest holds (of any age) and never raises: a missing or non-finite value is None
(or ``n/a``), so a section can leave out what it cannot show.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def lookup(d: Any, *keys: str) -> Any:
    """``d[k1][k2]...``, or None where a level is missing or not a mapping (manifests of any age render)."""
    for k in keys:
        if not isinstance(d, Mapping):
            return None
        d = d.get(k)
    return d


def num(x: Any) -> float | None:
    """``x`` as a finite float, else None (booleans are not numbers)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def fmt_seconds(x: Any) -> str | None:
    """Seconds in µs, ms or s."""
    v = num(x)
    if v is None:
        return None
    if v < 1e-3:
        return f"{v * 1e6:.1f} µs"
    return f"{v * 1e3:.3g} ms" if v < 1 else f"{v:.3g} s"


def fmt_bytes(x: Any) -> str | None:
    """Bytes in B, KiB, MiB or GiB."""
    v = num(x)
    if v is None:
        return None
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(v) < 1024 or unit == "GiB":
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.2f} {unit}"
        v /= 1024
    return None


def fmt_joules(x: Any) -> str | None:
    """Joules in µJ, mJ or J."""
    v = num(x)
    if v is None:
        return None
    if v < 1e-3:
        return f"{v * 1e6:.1f} µJ"
    return f"{v * 1e3:.3g} mJ" if v < 1 else f"{v:.3g} J"


def fmt(x: Any, digits: int = 4) -> str:
    """A number to ``digits`` significant digits; ``n/a`` for None; anything else as text."""
    v = num(x)
    if v is not None:
        return f"{v:.{digits}g}"
    return "n/a" if x is None else str(x)


def cell(x: Any) -> str:
    """``x`` as one Markdown table cell (pipes escaped, newlines flattened)."""
    return ("" if x is None else str(x)).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def params_text(params: Any) -> str:
    """Pass parameters as ``k=v, ...`` (empty when none)."""
    if not isinstance(params, Mapping) or not params:
        return ""
    return ", ".join(f"{k}={v}" for k, v in params.items())


def fidelity_text(fid: Any) -> str | None:
    """The fidelity figures of a candidate in words, or None when it has none."""
    if num(fid) is not None:
        return fmt(fid)
    if not isinstance(fid, Mapping):
        return None
    parts = []
    if num(fid.get("top1_agreement")) is not None:
        parts.append(f"top-1 agreement {fid['top1_agreement']:.1f}%")
    if num(fid.get("cosine")) is not None:
        parts.append(f"cosine {fid['cosine']:.5f}")
    if num(fid.get("sqnr_db")) is not None:
        parts.append(f"SQNR {fid['sqnr_db']:.1f} dB")
    if num(fid.get("max_abs_error")) is not None:
        parts.append(f"max abs error {fid['max_abs_error']:.3g}")
    return ", ".join(parts) or None


def main_latency(m: Mapping[str, Any]) -> tuple[str, Mapping[str, Any]] | None:
    """The batch (``"1"`` when measured) and latency stats the report leads with, or None."""
    lat = lookup(m, "profile", "latency")
    if not isinstance(lat, Mapping):
        return None
    stats = {str(k): v for k, v in lat.items() if isinstance(v, Mapping) and num(v.get("p50")) is not None}
    if not stats:
        return None
    key = "1" if "1" in stats else min(stats, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k))
    return key, stats[key]
