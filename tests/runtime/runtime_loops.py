"""Tiny real models and training loops used by the runtime-checker tests."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

Batch = tuple[torch.Tensor, torch.Tensor]


class Net(nn.Module):
    """A two-layer network with named submodules, so findings have readable names."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.fc = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.encoder(x))


def batches(count: int = 6, size: int = 8) -> list[Batch]:
    """Fixed random regression batches."""
    return [(torch.randn(size, 4), torch.randn(size, 2)) for _ in range(count)]


def loss_of(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Mean-squared error of `model` on `batch`."""
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: list[Batch],
    *,
    clear: Callable[[], None] | None = None,
) -> None:
    """The canonical loop: clear, forward, backward, step."""
    for batch in data:
        (clear or optimizer.zero_grad)()
        loss_of(model, batch).backward()
        optimizer.step()
