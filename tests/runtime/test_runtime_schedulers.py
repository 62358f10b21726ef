"""Scheduler order (LL004), including GradScaler-skipped steps."""

from __future__ import annotations

import sys
import warnings

import pytest

torch = pytest.importorskip("torch")

from looplint.runtime_check import LoopLintRuntimeError, watch  # noqa: E402
from runtime_loops import Net, batches, loss_of  # noqa: E402


def test_scheduler_after_optimizer_is_silent() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model) as report:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
        for batch in batches():
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
            scheduler.step()
    assert report.findings == []


def test_scheduler_before_optimizer_is_caught() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    with (
        warnings.catch_warnings(record=True) as seen,
        pytest.raises(LoopLintRuntimeError) as caught,
        watch(model, optimizer, schedulers=[scheduler]),
    ):
        warnings.simplefilter("always")
        for batch in batches():
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            scheduler_line = sys._getframe().f_lineno + 1
            scheduler.step()
            optimizer.step()
    (finding,) = caught.value.findings
    assert (finding.code, finding.name, finding.check) == (
        "LL004",
        "scheduler-order",
        "scheduler-before-optimizer",
    )
    assert finding.step == 0 and (finding.file, finding.line) == (__file__, scheduler_line)
    # LL004 at the user's line replaces torch's warning, which would name looplint's wrapper.
    assert [str(w.message) for w in seen if "lr_scheduler.step()" in str(w.message)] == []
    assert not hasattr(optimizer, "_opt_called") or optimizer._opt_called is True


def test_torchs_own_order_warning_is_untouched_outside_a_block() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    with watch(model, optimizer):
        pass
    with pytest.warns(UserWarning, match=r"before `optimizer.step\(\)`") as seen:
        scheduler.step()
    assert seen[0].filename == __file__


def test_scheduler_stepping_twice_per_iteration_is_caught() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model):
        for batch in batches(3):
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
            scheduler.step()
            scheduler.step()
    assert [f.check for f in caught.value.findings] == ["scheduler-steps-twice"]


def test_chained_and_sequential_schedulers_count_once() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    warmup = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.5, total_iters=2)
    decay = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    with watch(model) as report:
        scheduler = torch.optim.lr_scheduler.SequentialLR(
            optimizer, [warmup, decay], milestones=[2]
        )
        for batch in batches():
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
            scheduler.step()
    assert report.findings == []


def test_grad_scaler_skipped_step_then_scheduler_is_silent() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**127)  # first steps overflow
    with watch(model, optimizer) as report:
        for batch in batches():
            optimizer.zero_grad()
            scaler.scale(loss_of(model, batch) * 1e10).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
    assert report.steps < 6  # some steps really were skipped
    assert report.findings == []


def test_grad_scaler_does_not_hide_a_real_order_bug() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.9)
    scaler = torch.amp.GradScaler("cpu")
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for batch in batches(3):
            optimizer.zero_grad()
            scaler.scale(loss_of(model, batch)).backward()
            scheduler.step()
            scaler.step(optimizer)
            scaler.update()
    assert [f.check for f in caught.value.findings] == ["scheduler-before-optimizer"]
