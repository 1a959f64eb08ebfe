"""Shared fixtures: the bundled digits CNN with its trained weights, and the digits split."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def digits():
    """(x_train, x_test, y_train, y_test) of scikit-learn's digits, as the example splits them."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from examples.digits.train import load_split

    return load_split()


@pytest.fixture
def digits_cnn(digits):
    """The trained DigitsCNN from examples/digits (weights shipped with the repo)."""
    from safetensors.torch import load_file

    from examples.digits.model import DigitsCNN

    model = DigitsCNN()
    model.load_state_dict(load_file(str(ROOT / "examples" / "digits" / "digits_cnn.safetensors")))
    return model.eval()
