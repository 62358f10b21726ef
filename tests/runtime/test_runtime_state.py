"""Optimizer state persistence (LL002), in both directions."""

from __future__ import annotations

import io

import pytest

torch = pytest.importorskip("torch")

from looplint.runtime_check import LoopLintRuntimeError, LoopLintRuntimeWarning, watch  # noqa: E402
from runtime_loops import Net, batches, train  # noqa: E402
from torch import nn  # noqa: E402


def test_optimizer_recreated_each_epoch_is_caught() -> None:
    model = Net()
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model):
        for _epoch in range(3):
            optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
            train(model, optimizer, batches(2))
    (finding,) = caught.value.findings
    assert (finding.code, finding.name, finding.check) == (
        "LL002",
        "optimizer-in-loop",
        "optimizer-recreated",
    )
    assert finding.optimizer == "Adam #1"
    assert "Adam #0" in finding.message and "fc.weight" in finding.parameters
    assert finding.occurrences == 2


def test_optimizer_created_once_is_silent() -> None:
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with watch(model) as report:
        for _epoch in range(3):
            train(model, optimizer, batches(2))
    assert report.findings == []


def test_checkpoint_round_trip_is_silent() -> None:
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with watch(model, optimizer) as report:
        train(model, optimizer, batches(2))
        buffer = io.BytesIO()
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, buffer)
        buffer.seek(0)
        checkpoint = torch.load(buffer)
        model.load_state_dict(checkpoint["model"])
        restored = torch.optim.Adam(model.parameters(), lr=0.01)
        restored.load_state_dict(checkpoint["optimizer"])
        train(model, restored, batches(2))
    assert report.findings == []


def test_mismatched_state_load_is_caught() -> None:
    source = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    source_opt = torch.optim.Adam(source.parameters(), lr=0.01)
    source(torch.randn(2, 4)).sum().backward()
    source_opt.step()
    target = nn.Sequential(nn.Linear(3, 2), nn.Linear(4, 3))  # same count, other order
    target_opt = torch.optim.Adam(target.parameters(), lr=0.01)
    with pytest.warns(LoopLintRuntimeWarning), watch(target, target_opt, mode="warn") as report:
        target_opt.load_state_dict(source_opt.state_dict())
    (finding,) = report.findings
    assert (finding.code, finding.check) == ("LL002", "mismatched-state")
    assert set(finding.parameters) == {"0.weight", "0.bias", "1.weight", "1.bias"}


def _restored_into_other_order() -> tuple[nn.Module, torch.optim.Optimizer]:
    """A model whose optimizer got the state of a model with its layers the other way round."""
    source = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    source_opt = torch.optim.Adam(source.parameters(), lr=0.01)
    source(torch.randn(2, 4)).sum().backward()
    source_opt.step()
    target = nn.Sequential(nn.Linear(3, 2), nn.Linear(4, 3))
    target_opt = torch.optim.Adam(target.parameters(), lr=0.01)
    target_opt.load_state_dict(source_opt.state_dict())
    return target, target_opt


def test_mismatched_state_restored_before_the_block_is_judged_on_entering_it() -> None:
    model, optimizer = _restored_into_other_order()
    with pytest.warns(LoopLintRuntimeWarning), watch(model, optimizer, mode="warn") as report:
        assert [(f.code, f.check) for f in report.findings] == [("LL002", "mismatched-state")]
    (finding,) = report.findings  # once, not again at a first step
    assert finding.step == 0


def test_mismatched_state_of_an_optimizer_found_stepping_is_judged_at_its_first_step() -> None:
    model, optimizer = _restored_into_other_order()
    with pytest.warns(LoopLintRuntimeWarning), watch(model, mode="warn") as report:
        assert report.findings == []
        optimizer.zero_grad()
        (model[0](torch.randn(2, 3)).sum() + model[1](torch.randn(2, 4)).sum()).backward()
        with pytest.raises(RuntimeError):  # Adam's own shape error, after looplint's check
            optimizer.step()
    assert [(f.code, f.check) for f in report.findings] == [("LL002", "mismatched-state")]


def test_state_cleared_during_training_is_caught() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        train(model, optimizer, batches(2))
        optimizer.state.clear()
        train(model, optimizer, batches(2))
    assert [(f.code, f.check) for f in caught.value.findings] == [("LL002", "state-cleared")]
