"""The Keras digits CNN: data, model and training, deterministic with a seed.

Keras runs on the torch backend (set here before Keras is imported; no TensorFlow needed). Images are
channels-last, ``(N, 8, 8, 1)``, as Keras lays them out.
"""

from __future__ import annotations

import os

os.environ["KERAS_BACKEND"] = "torch"  # before the first `import keras`, whatever the shell says

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


def load_split(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``x_train, x_test, y_train, y_test``: 8×8 digit images scaled to [0, 1], NHWC float32."""
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[..., None]
    y = digits.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def build_model() -> Any:
    """A small Functional CNN: two 3×3 convolutions, pooling, a dense softmax head over 10 classes."""
    import keras

    inputs = keras.Input((8, 8, 1), name="image")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="digits_cnn")


def train(x: np.ndarray, y: np.ndarray, *, epochs: int = 6, seed: int = 0) -> Any:
    """Fit ``build_model()`` on ``x, y`` (a few seconds on a laptop CPU)."""
    import keras

    keras.utils.set_random_seed(seed)
    model = build_model()
    model.compile(optimizer=keras.optimizers.Adam(5e-3), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, batch_size=128, epochs=epochs, verbose=0)
    return model


def save(model: Any, path: Path) -> Path:
    """Write ``model`` as a Keras 3 ``.keras`` archive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(str(path))
    return path
