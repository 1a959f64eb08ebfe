"""Tiny torch models for the importer tests, importable as ``tests.importers.torch_factory:<name>``."""

from __future__ import annotations

import torch


class TinyCNN(torch.nn.Module):
    """Conv -> BatchNorm -> ReLU -> global average -> Linear, with non-trivial BatchNorm statistics."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8, 5)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-0.5, 0.5)
            self.bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3)))


class TwoInputs(torch.nn.Module):
    """y = relu(a @ w) * b, two named inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(4, 6))

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.relu(a @ self.w) * b


class Branchy(torch.nn.Module):
    """Data-dependent control flow: torch.export cannot capture it, the TorchScript tracer can."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return x * 2
        return x - 1


def tiny_cnn() -> TinyCNN:
    """Factory for ``package.module:factory`` sources."""
    torch.manual_seed(0)
    return TinyCNN()


def not_a_module() -> str:
    return "nope"
