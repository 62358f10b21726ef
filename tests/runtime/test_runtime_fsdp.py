"""Under FSDP2 (`fully_shard`, DTensor parameters; 2 processes, gloo, CPU).

Correct loops stay silent, each injected bug is found on every rank, and
watching adds no collective and changes no shard.
"""

from __future__ import annotations

import socket
import warnings
from typing import Any

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
pytest.importorskip("torch.distributed.fsdp")

EVERY_PARAMETER = ("0.weight", "0.bias", "2.weight", "2.bias")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def outcome() -> dict[int, Any]:
    """Both ranks' results, from one spawn for the whole module (start-up dominates)."""
    if not dist.is_available() or not hasattr(torch.distributed.fsdp, "fully_shard"):
        pytest.skip("torch.distributed.fsdp.fully_shard is not available")
    import torch.multiprocessing as mp
    from fsdp_worker import run

    manager = mp.get_context("spawn").Manager()
    with manager:
        results = manager.dict()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mp.spawn(run, args=(2, free_port(), results), nprocs=2, join=True)
        collected = dict(results)
    assert sorted(collected) == [0, 1]
    return collected


@pytest.mark.parametrize("rank", [0, 1])
def test_parameters_are_dtensor_shards(outcome: dict[int, Any], rank: int) -> None:
    assert outcome[rank]["param_types"] == ["DTensor"]


@pytest.mark.parametrize("rank", [0, 1])
@pytest.mark.parametrize(
    "scenario", ["correct", "kept_buffers", "accumulated", "unsynced_micro_batches"]
)
def test_correct_fsdp2_loops_are_silent(outcome: dict[int, Any], rank: int, scenario: str) -> None:
    assert outcome[rank][scenario] == []


@pytest.mark.parametrize("rank", [0, 1])
@pytest.mark.parametrize("scenario", ["no_zero_grad", "unsynced_without_zero_grad"])
def test_missing_zero_grad_is_ll001_on_every_shard(
    outcome: dict[int, Any], rank: int, scenario: str
) -> None:
    assert outcome[rank][scenario] == [("LL001", "stale-gradient", EVERY_PARAMETER)]


@pytest.mark.parametrize("rank", [0, 1])
def test_optimizer_missing_a_layer_is_ll003(outcome: dict[int, Any], rank: int) -> None:
    assert outcome[rank]["last_layer_only"] == [
        ("LL003", "uncovered-parameters", ("0.weight", "0.bias"))
    ]


@pytest.mark.parametrize("rank", [0, 1])
def test_broken_accumulation_and_early_clear_are_found(outcome: dict[int, Any], rank: int) -> None:
    assert outcome[rank]["accumulation_cleared"] == [("LL001", "accumulation-broken", ())]
    assert outcome[rank]["cleared_before_step"] == [("LL005", "cleared-before-step", ())]


@pytest.mark.parametrize("rank", [0, 1])
@pytest.mark.parametrize("loop", ["correct", "no_zero_grad"])
def test_watching_adds_no_collective_and_changes_no_shard(
    outcome: dict[int, Any], rank: int, loop: str
) -> None:
    unwatched, watched = outcome[rank][f"collectives/{loop}"]
    assert unwatched.get("c10d::_allgather_base_", 0) > 0  # the profiler does see FSDP2's traffic
    assert unwatched.get("c10d::_reduce_scatter_base_", 0) > 0
    assert watched == unwatched
    assert outcome[rank][f"identical/{loop}"]
