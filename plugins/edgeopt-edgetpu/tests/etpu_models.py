"""A MobileNet-style torch model trained on scikit-learn's digits in seconds, for the Edge TPU deploy tests.

Digits are upsampled 8x8 → 16x16 so the net can stride like a MobileNet: a 3x3 stem conv with BatchNorm and
ReLU6, three depthwise-separable blocks (depthwise 3x3 + BN + ReLU6, pointwise 1x1 + BN + ReLU6, two of
them with stride 2), global average pooling and a linear classifier.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def _separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(),
    )


class MobileNetStyle(nn.Module):
    def __init__(self, width: int = 16, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU6(),
            _separable(width, 2 * width, 2), _separable(2 * width, 2 * width, 1), _separable(2 * width, 4 * width, 2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def digits_16x16(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, x_test, y_train, y_test)``: digits in [0, 1], upsampled to 1x16x16, a stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = np.kron(digits.images / 16.0, np.ones((2, 2))).astype(np.float32)[:, None]
    return train_test_split(x, digits.target.astype(np.int64), test_size=0.25, random_state=seed,
                            stratify=digits.target)


def trained_mobilenet(x: np.ndarray, y: np.ndarray, *, epochs: int = 12, seed: int = 0) -> MobileNetStyle:
    """A MobileNetStyle trained with Adam (a few seconds on two CPU cores), in eval mode."""
    torch.manual_seed(seed)
    model = MobileNetStyle()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(xt))
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(xt[idx]), yt[idx]).backward()
            opt.step()
    return model.eval()
