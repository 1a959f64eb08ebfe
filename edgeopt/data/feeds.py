"""Checking feeds against a runtime's declared inputs, for runners to explain a failed call."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

Dim = int | str | None

ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(int16)": "int16",
    "tensor(int8)": "int8",
    "tensor(uint8)": "uint8",
    "tensor(bool)": "bool",
    "tensor(string)": "object",
}
"""ONNX Runtime's type strings (``NodeArg.type``) as numpy dtype names."""


def ort_signature(args: Iterable[Any]) -> dict[str, tuple[str, tuple[Dim, ...]]]:
    """ONNX Runtime ``NodeArg``s (``session.get_inputs()``) as ``feeds_mismatch``'s ``expected`` mapping; a type
    string with no numpy equivalent is kept as is."""
    return {a.name: (ORT_DTYPES.get(a.type, a.type), tuple(a.shape)) for a in args}


def feeds_mismatch(expected: Mapping[str, tuple[str, Sequence[Dim]]], feeds: Mapping[str, np.ndarray]) -> str | None:
    """What about ``feeds`` does not fit ``expected`` (name → (numpy dtype name, shape with int or
    symbolic dims)), or None when they fit. Symbolic or None dims accept any size."""
    missing = sorted(set(expected) - set(feeds))
    extra = sorted(set(feeds) - set(expected))
    if missing or extra:
        return f"inputs do not match the model: missing {missing or 'none'}, unexpected {extra or 'none'}"
    for name, (dtype, shape) in expected.items():
        value = np.asarray(feeds[name])
        fixed = [d if isinstance(d, int) else None for d in shape]
        fits = value.ndim == len(fixed) and all(d is None or d == v for d, v in zip(fixed, value.shape, strict=True))
        if str(value.dtype) != dtype or not fits:
            want = [d if d is not None else "?" for d in fixed]
            return f"input {name!r} is {value.dtype}{list(value.shape)}, the model expects {dtype}{want}"
    return None
