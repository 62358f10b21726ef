"""Scheduler order (LL004): a scheduler must follow its optimizer, once per optimizer step.

Judged against the optimizer's *attempted* steps: a step that `GradScaler`
skipped because of inf/NaN gradients still counts, which removes the false alarm
torch's own "lr_scheduler.step() before optimizer.step()" warning gives there.
"""

from __future__ import annotations

from dataclasses import dataclass

from .records import OptimizerTracker, SchedulerTracker


@dataclass(frozen=True, slots=True)
class OrderProblem:
    """One scheduler-order violation: which check and the sentence that explains it."""

    check: str
    message: str


def judge_scheduler_step(
    scheduler: SchedulerTracker, optimizer: OptimizerTracker
) -> OrderProblem | None:
    """Judge one scheduler step against its optimizer's attempted steps, then record it."""
    problem: OrderProblem | None = None
    if optimizer.attempts == 0 and not optimizer.prior_steps:
        problem = OrderProblem(
            "scheduler-before-optimizer",
            f"{scheduler.label} stepped before {optimizer.label} had ever stepped, so the "
            "first value of the learning-rate schedule is skipped; call `optimizer.step()` "
            "before `scheduler.step()`.",
        )
    elif scheduler.seen_attempts is not None and scheduler.seen_attempts == optimizer.attempts:
        problem = OrderProblem(
            "scheduler-steps-twice",
            f"{scheduler.label} stepped again without a step of {optimizer.label} in between, "
            "so the schedule runs ahead of training; step the scheduler once per optimizer "
            "step (or once per epoch).",
        )
    scheduler.seen_attempts = optimizer.attempts
    scheduler.steps += 1
    return problem
