"""Repository-wide pytest setup: no test ever writes to the user's real deployment registry."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_registry(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point ``EDGEOPT_REGISTRY`` at a fresh database under the test's temp dir (subprocesses inherit it)."""
    monkeypatch.setenv("EDGEOPT_REGISTRY", str(tmp_path_factory.mktemp("registry") / "registry.db"))
