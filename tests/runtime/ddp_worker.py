"""Worker for the DDP test: run in a spawned process (gloo backend, CPU)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from looplint.runtime_check import watch
from torch import nn
from torch.nn.parallel import DistributedDataParallel


def run(rank: int, world_size: int, port: int, results: dict[int, object]) -> None:
    """Train a correct and a buggy DDP loop; put each rank's finding codes in `results`."""
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        torch.manual_seed(rank)
        model = DistributedDataParallel(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)))
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        data = [(torch.randn(8, 4), torch.randn(8, 1)) for _ in range(4)]
        outcome = {}
        for clear in (True, False):
            with watch(model, optimizer, mode="warn") as report:
                for x, y in data:
                    if clear:
                        optimizer.zero_grad()
                    nn.functional.mse_loss(model(x), y).backward()
                    optimizer.step()
            outcome["correct" if clear else "buggy"] = [
                (f.code, f.parameters) for f in report.findings
            ]
        bucketed = DistributedDataParallel(
            nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)),
            gradient_as_bucket_view=True,
        )
        bucket_optimizer = torch.optim.SGD(bucketed.parameters(), lr=0.1)
        with watch(bucketed, bucket_optimizer, mode="warn") as report:
            for x, y in data:
                bucket_optimizer.zero_grad()
                nn.functional.mse_loss(bucketed(x), y).backward()
                bucket_optimizer.step()
        outcome["bucket_view"] = (report.findings, report.unchecked)
        results[rank] = outcome
    finally:
        dist.destroy_process_group()
