"""Fixtures for the edgetpu plugin's tests; helpers live in ``tflite_builders`` and ``etpu_models`` beside this file.

The repository runs pytest with ``--import-mode=importlib``, which puts no test folder on ``sys.path``; this
folder is added so test modules can import those helpers (unique names).

Tests that convert need the ONNX → TFLite converter toolchain (``edgeopt edgetpu toolchain --create``) and
skip, saying so, without it; tests that only read ``.tflite`` files need ``ai-edge-litert``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))

needs_litert = pytest.mark.skipif(importlib.util.find_spec("ai_edge_litert") is None,
                                  reason="ai-edge-litert is not installed (pip install ai-edge-litert)")


def _converter_reason() -> str:
    from edgeopt_edgetpu.toolchain import SETUP_HINT, find_toolchain

    return "" if find_toolchain() is not None else f"no ONNX → TFLite converter toolchain: {SETUP_HINT}"


CONVERTER_MISSING = _converter_reason()
needs_converter = pytest.mark.skipif(bool(CONVERTER_MISSING), reason=CONVERTER_MISSING or "converter present")


@pytest.fixture
def isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A toolchain search with no env override and an empty cache directory."""
    monkeypatch.delenv("EDGEOPT_LITERT_PYTHON", raising=False)
    monkeypatch.setenv("EDGEOPT_TOOLCHAIN_DIR", str(tmp_path / "toolchains"))
    return tmp_path / "toolchains"
