"""`watch` around an accelerate training loop, as docs/runtime.md shows it.

The model, optimizer, data loader and scheduler are `accelerator.prepare`d,
the prepared optimizer is handed to `watch`, and the accumulation to check is
the Accelerator's own `gradient_accumulation_steps`.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from third_party import import_library  # noqa: E402

accelerate = import_library("accelerate")

from looplint.runtime_check import watch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

MICRO_BATCHES = 8
ACCUMULATION = 2


@pytest.fixture(autouse=True)
def _fresh_accelerator_state() -> Iterator[None]:
    """accelerate keeps its state in process-wide singletons; each test starts anew."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="accelerate")
        yield
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()


def train(*, watched: bool, bug: str = "", schedule_after_prepare: bool = False) -> Any:
    """Train a small classifier with accelerate; return (model, report or None).

    A scheduler built after `prepare` is not accelerate's, so the loop steps it
    only when the micro-batch ends an accumulation (`accelerator.sync_gradients`).
    """
    torch.manual_seed(0)
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=ACCUMULATION)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    params = model[2].parameters() if bug == "last_layer_only" else model.parameters()
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4 * MICRO_BATCHES, 6, generator=generator)
    y = torch.randint(0, 3, (4 * MICRO_BATCHES,), generator=generator)
    loader = DataLoader(TensorDataset(x, y), batch_size=4)
    if schedule_after_prepare or bug == "scheduler_every_micro_batch":
        model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
    else:
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2)
        model, optimizer, loader, scheduler = accelerator.prepare(
            model, optimizer, loader, scheduler
        )
    block: Any = contextlib.nullcontext()
    if watched:
        block = watch(
            model,
            optimizer,
            mode="warn",
            accumulation_steps=accelerator.gradient_accumulation_steps,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with block as report:
            for inputs, labels in loader:
                with accelerator.accumulate(model):
                    if bug == "clear_every_micro_batch":
                        model.zero_grad()
                    loss = nn.functional.cross_entropy(model(inputs), labels)
                    accelerator.backward(loss)
                    optimizer.step()
                    if accelerator.sync_gradients or bug == "scheduler_every_micro_batch":
                        scheduler.step()
                    if bug != "no_zero_grad":
                        optimizer.zero_grad()
    return model, report


@pytest.mark.parametrize("schedule_after_prepare", [False, True], ids=["prepared", "built-after"])
def test_correct_accelerate_loop_is_silent_and_bit_identical(schedule_after_prepare: bool) -> None:
    plain, _ = train(watched=False, schedule_after_prepare=schedule_after_prepare)
    watched, report = train(watched=True, schedule_after_prepare=schedule_after_prepare)
    assert report.findings == []
    assert report.unchecked == []
    assert report.steps == MICRO_BATCHES // ACCUMULATION
    for (name, a), (_, b) in zip(
        plain.state_dict().items(), watched.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


@pytest.mark.parametrize(
    ("bug", "expected"),
    [
        ("no_zero_grad", [("LL001", "stale-gradient")]),
        ("clear_every_micro_batch", [("LL001", "accumulation-broken")]),
        ("last_layer_only", [("LL003", "uncovered-parameters")]),
        (
            "scheduler_every_micro_batch",
            [("LL004", "scheduler-before-optimizer"), ("LL004", "scheduler-steps-twice")],
        ),
    ],
)
def test_injected_bug_is_found(bug: str, expected: list[tuple[str, str]]) -> None:
    _, report = train(watched=True, bug=bug)
    assert [(f.code, f.check) for f in report.findings] == expected
    if bug == "clear_every_micro_batch":
        assert f"accumulation_steps={ACCUMULATION}" in report.findings[0].message
    if bug == "last_layer_only":
        assert report.findings[0].parameters == ("0.weight", "0.bias")
