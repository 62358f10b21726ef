"""Quiet gradient hooks: once a loop has cleared its gradients by setting them to `None`
for a few steps, the per-parameter hooks are removed and the step's census judges
alone. Every bug the hooks find must still be found when it starts after that point
(at most one step later), and a loop that changes its ways must not be misjudged."""

from __future__ import annotations

from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")

from looplint.runtime_check import LoopLintRuntimeError, watch  # noqa: E402
from runtime_loops import Batch, Net, batches, loss_of, train  # noqa: E402
from torch import nn  # noqa: E402

CANONICAL_STEPS = 5
"""More than enough canonical steps for the hooks to go quiet."""


def gradient_hooks(model: nn.Module) -> int:
    return sum(len(p._post_accumulate_grad_hooks or {}) for p in model.parameters())


def _codes(error: pytest.ExceptionInfo[LoopLintRuntimeError]) -> list[tuple[str, str]]:
    return [(finding.code, finding.check) for finding in error.value.findings]


def canonical_then(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    later: Callable[[Batch], None],
    steps: int = 4,
) -> None:
    """Train canonically until the hooks are quiet, then run `later` on each batch."""
    train(model, optimizer, batches(CANONICAL_STEPS))
    assert gradient_hooks(model) == 0, "the hooks went quiet"
    for batch in batches(steps):
        later(batch)


def test_a_canonical_loop_goes_quiet_and_stays_silent() -> None:
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with watch(model, optimizer) as report:
        train(model, optimizer, batches(1))
        assert gradient_hooks(model) == 4, "hooked during the first step"
        train(model, optimizer, batches(1))
        assert gradient_hooks(model) == 0, "quiet after two canonical steps"
        train(model, optimizer, batches(3))
    assert report.findings == [] and report.unchecked == []
    assert report.steps == 5


def test_zero_grad_dropped_after_the_hooks_went_quiet_is_still_ll001() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def no_clearing(batch: Batch) -> None:
        loss_of(model, batch).backward()
        optimizer.step()

    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        canonical_then(model, optimizer, no_clearing)
    assert _codes(caught) == [("LL001", "stale-gradient")]
    assert gradient_hooks(model) == 0  # removed with the block


def test_switching_to_zeroing_in_place_after_quiet_is_silent() -> None:
    """`zero_grad(set_to_none=False)` brings back the consumed tensors: judged unknown
    for one step, then by the hooks again (zeroed, then accumulated: no bug)."""
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def zero_in_place(batch: Batch) -> None:
        optimizer.zero_grad(set_to_none=False)
        loss_of(model, batch).backward()
        optimizer.step()

    with watch(model, optimizer) as report:
        canonical_then(model, optimizer, zero_in_place)
        assert gradient_hooks(model) == 4, "the hooks came back"
    assert report.findings == []


def test_clearing_between_backward_and_step_after_quiet_is_ll005() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def clear_too_late(batch: Batch) -> None:
        loss_of(model, batch).backward()
        optimizer.zero_grad()
        optimizer.step()

    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        canonical_then(model, optimizer, clear_too_late, steps=CANONICAL_STEPS + 3)
    assert _codes(caught) == [("LL005", "cleared-before-step")]


def test_stepping_twice_after_quiet_is_ll001_reused() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def step_twice(batch: Batch) -> None:
        optimizer.zero_grad()
        loss_of(model, batch).backward()
        optimizer.step()
        optimizer.step()

    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        canonical_then(model, optimizer, step_twice)
    assert ("LL001", "gradient-reused") in _codes(caught)


def test_clipping_after_quiet_is_judged_by_the_gradients_tensor() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def clip_in_place(batch: Batch) -> None:
        optimizer.zero_grad()
        loss_of(model, batch).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    def clip_after_step(batch: Batch) -> None:
        optimizer.zero_grad()
        loss_of(model, batch).backward()
        optimizer.step()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)

    with watch(model, optimizer) as report:
        canonical_then(model, optimizer, clip_in_place)
    assert report.findings == []
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        canonical_then(model, optimizer, clip_after_step)
    assert _codes(caught) == [("LL016", "clipping-without-effect")]


def test_hooks_stay_while_accumulation_is_checked() -> None:
    """`accumulation_steps` needs each gradient's count of backward passes: no quiet."""
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with watch(model, optimizer, accumulation_steps=1) as report:
        train(model, optimizer, batches(CANONICAL_STEPS + 3))
        assert gradient_hooks(model) == 4
    assert report.findings == []


def test_accumulating_loops_never_go_quiet() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with watch(model, optimizer) as report:
        for index, batch in enumerate(batches(4 * CANONICAL_STEPS)):
            (loss_of(model, batch) / 2).backward()
            if index % 2 == 1:
                optimizer.step()
                optimizer.zero_grad()
        assert gradient_hooks(model) == 4
    assert report.findings == []


class WithUnusedHead(Net):
    """A model with a head the loss never reaches: its gradients stay `None`."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Linear(8, 2)


def test_a_quiet_loop_with_an_unused_parameter_is_silent_and_still_judged() -> None:
    model = WithUnusedHead()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def no_clearing(batch: Batch) -> None:
        loss_of(model, batch).backward()
        optimizer.step()

    with watch(model, optimizer) as report:
        train(model, optimizer, batches(CANONICAL_STEPS))
        assert gradient_hooks(model) == 0
    assert report.findings == []
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        canonical_then(model, optimizer, no_clearing)
    assert _codes(caught) == [("LL001", "stale-gradient")]


def test_two_optimizers_sharing_a_parameter_after_quiet_are_silent() -> None:
    """Both step the shared bias on the same gradient each iteration, as the loop has
    done from the start: the second optimizer's step is no reuse of its own."""
    model = Net()
    first = torch.optim.SGD(model.encoder.parameters(), lr=0.01)
    second = torch.optim.SGD([*model.fc.parameters(), model.encoder[0].bias], lr=0.01)
    with watch(model, first, second) as report:
        for batch in batches(CANONICAL_STEPS + 3):
            model.zero_grad()
            loss_of(model, batch).backward()
            first.step()
            second.step()
    assert [finding.check for finding in report.findings] == []


def test_a_clip_in_place_after_zero_grad_was_dropped_is_not_ll016() -> None:
    """The backward pass accumulated into the consumed tensor (LL001): the clip between
    that backward pass and the step is where it belongs."""
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

    def no_clearing_then_clip(batch: Batch) -> None:
        loss_of(model, batch).backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        canonical_then(model, optimizer, no_clearing_then_clip)
    assert _codes(caught) == [("LL001", "stale-gradient")]
