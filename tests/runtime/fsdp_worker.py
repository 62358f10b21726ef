"""Worker for the FSDP2 test: run in a spawned process (gloo backend, CPU).

Each scenario builds a fresh `fully_shard` model (its parameters are DTensor
shards), trains it for a few steps and records what `watch` found. The correct
loop is also trained unwatched under the profiler, so the test can compare the
collectives both runs issued and their final shards.
"""

from __future__ import annotations

import collections
import contextlib
import os
import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.distributed as dist
from looplint.runtime_check import watch
from torch import nn
from torch.distributed.fsdp import fully_shard
from torch.optim import Optimizer
from torch.profiler import ProfilerActivity, profile

STEPS = 4
Batches = list[torch.Tensor]


def sharded_model() -> nn.Module:
    """A two-layer MLP sharded per layer and as a whole, as FSDP2 recommends."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    fully_shard(model[0])
    fully_shard(model[2])
    fully_shard(model)
    return model


def batches(rank: int) -> Batches:
    """Different data on each rank, as a sharded data loader gives."""
    generator = torch.Generator().manual_seed(100 + rank)
    return [torch.randn(8, 4, generator=generator) for _ in range(2 * STEPS)]


def loss_of(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return model(x).pow(2).mean()


def correct(model: nn.Module, optimizer: Optimizer, data: Batches) -> None:
    for x in data[:STEPS]:
        optimizer.zero_grad()
        loss_of(model, x).backward()
        optimizer.step()


def kept_buffers(model: nn.Module, optimizer: Optimizer, data: Batches) -> None:
    for x in data[:STEPS]:
        optimizer.zero_grad(set_to_none=False)
        loss_of(model, x).backward()
        optimizer.step()


def accumulated(model: nn.Module, optimizer: Optimizer, data: Batches) -> None:
    for index, x in enumerate(data):
        (loss_of(model, x) / 2).backward()
        if index % 2 == 1:
            optimizer.step()
            optimizer.zero_grad()


def unsynced_micro_batches(model: nn.Module, optimizer: Optimizer, data: Batches) -> None:
    """Accumulate without reduce-scatter until the last micro-batch (FSDP2's no-sync)."""
    for index, x in enumerate(data):
        model.set_requires_gradient_sync(index % 2 == 1)
        (loss_of(model, x) / 2).backward()
        if index % 2 == 1:
            optimizer.step()
            optimizer.zero_grad()


def unsynced_without_zero_grad(model: nn.Module, optimizer: Optimizer, data: Batches) -> None:
    for index, x in enumerate(data):
        model.set_requires_gradient_sync(index % 2 == 1)
        (loss_of(model, x) / 2).backward()
        if index % 2 == 1:
            optimizer.step()


def no_zero_grad(model: nn.Module, optimizer: Optimizer, data: Batches) -> None:
    for x in data[:STEPS]:
        loss_of(model, x).backward()
        optimizer.step()


def accumulation_cleared(model: nn.Module, optimizer: Optimizer, data: Batches) -> None:
    for index, x in enumerate(data):
        optimizer.zero_grad()
        loss_of(model, x).backward()
        if index % 2 == 1:
            optimizer.step()


def cleared_before_step(model: nn.Module, optimizer: Optimizer, data: Batches) -> None:
    for x in data[:STEPS]:
        loss_of(model, x).backward()
        optimizer.zero_grad()
        optimizer.step()


Loop = Callable[[nn.Module, Optimizer, Batches], None]

# name -> (training loop, optimize only the last layer?, accumulation_steps)
SCENARIOS: dict[str, tuple[Loop, bool, int | None]] = {
    "correct": (correct, False, None),
    "kept_buffers": (kept_buffers, False, None),
    "accumulated": (accumulated, False, 2),
    "unsynced_micro_batches": (unsynced_micro_batches, False, None),
    "unsynced_without_zero_grad": (unsynced_without_zero_grad, False, None),
    "no_zero_grad": (no_zero_grad, False, None),
    "last_layer_only": (correct, True, None),
    "accumulation_cleared": (accumulation_cleared, False, 2),
    "cleared_before_step": (cleared_before_step, False, None),
}


def collectives_and_shards(
    rank: int, loop: Loop, watched: bool
) -> tuple[dict[str, int], list[torch.Tensor]]:
    """Train `loop` under the profiler: the c10d/gloo ops it ran, and its final shards."""
    model = sharded_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    block = watch(model, optimizer, mode="warn") if watched else contextlib.nullcontext()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with profile(activities=[ProfilerActivity.CPU]) as profiler, block:
            loop(model, optimizer, batches(rank))
    counts = collections.Counter(
        event.name for event in profiler.events() if event.name.startswith(("c10d::", "gloo:"))
    )
    shards = [param.to_local().detach().clone() for param in model.parameters()]
    return dict(counts), shards


def run(rank: int, world_size: int, port: int, results: dict[int, object]) -> None:
    """Run every scenario on this rank; put its findings and measurements in `results`."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        outcome: dict[str, Any] = {}
        for name, (loop, last_layer_only, accumulation) in SCENARIOS.items():
            model = sharded_model()
            params = model[2].parameters() if last_layer_only else model.parameters()
            optimizer = torch.optim.Adam(params, lr=0.1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                block = watch(model, optimizer, mode="warn", accumulation_steps=accumulation)
                with block as report:
                    loop(model, optimizer, batches(rank))
            outcome[name] = [(f.code, f.check, f.parameters) for f in report.findings]
        outcome["param_types"] = sorted({type(p).__name__ for p in sharded_model().parameters()})
        for name, loop in (("correct", correct), ("no_zero_grad", no_zero_grad)):
            unwatched, plain_shards = collectives_and_shards(rank, loop, watched=False)
            watched, watched_shards = collectives_and_shards(rank, loop, watched=True)
            outcome[f"collectives/{name}"] = (unwatched, watched)
            outcome[f"identical/{name}"] = all(
                torch.equal(a, b) for a, b in zip(plain_shards, watched_shards, strict=True)
            )
        results[rank] = outcome
    finally:
        dist.destroy_process_group()
