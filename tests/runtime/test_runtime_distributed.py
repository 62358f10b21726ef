"""Under DistributedDataParallel (2 processes, gloo, CPU) each rank sees the bug, and only it."""

from __future__ import annotations

import socket
import warnings

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")
def test_each_ddp_rank_detects_the_bug_and_a_correct_loop_is_silent() -> None:
    import torch.multiprocessing as mp
    from ddp_worker import run

    manager = mp.get_context("spawn").Manager()
    with manager:
        results = manager.dict()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mp.spawn(run, args=(2, free_port(), results), nprocs=2, join=True)
        outcome = dict(results)
    assert sorted(outcome) == [0, 1]
    for rank in (0, 1):
        assert outcome[rank]["correct"] == []
        ((code, parameters),) = outcome[rank]["buggy"]
        assert code == "LL001"
        assert "module.0.weight" in parameters
        findings, unchecked = outcome[rank]["bucket_view"]
        assert findings == []
        assert any("gradient_as_bucket_view=True" in line for line in unchecked)
