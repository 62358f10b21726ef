"""Scheduler order (LL004) as the scoped scheduler and GradScaler wrappers report it.

`scoped_patches` tells the block when a scheduler is about to step and when
`GradScaler.step` runs; this module keeps the scheduler trackers, counts the
steps a scaler skipped as attempted, and holds "before the optimizer ever
stepped" back until that optimizer does step in the block (a test that steps
only a scheduler, to check its values, trains nothing and is not a bug).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from torch.optim import Optimizer
from torch.utils.weak import WeakIdKeyDictionary

from looplint.identity import SCHEDULER_ORDER

from .call_site import user_call_site
from .following import Following
from .guard import never_raises
from .records import OptimizerTracker, SchedulerTracker
from .report import IssueLog
from .schedulers import judge_scheduler_step


class OrderChecks:
    """The scheduler and GradScaler side of one block."""

    def __init__(
        self,
        following: Following,
        issues: IssueLog,
        note_unchecked: Callable[[str], None],
        internal_error: Callable[[Any, Exception], None],
    ) -> None:
        self._following = following
        self._issues = issues
        self._note_unchecked = note_unchecked
        self._internal_error = internal_error
        self._schedulers: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.thread = threading.get_ident()
        self.active = False

    def internal_error(self, subject: Any, error: Exception) -> None:
        """Report a failure of these hooks (see `guard.never_raises`)."""
        self._internal_error(subject, error)

    def scheduler_tracker(self, scheduler: Any) -> SchedulerTracker:
        """The tracker of `scheduler`, created on first sight."""
        tracker: SchedulerTracker | None = self._schedulers.get(scheduler)  # type: ignore[no-untyped-call]
        if tracker is None:
            tracker = SchedulerTracker(f"{type(scheduler).__name__} #{len(self._schedulers)}")
            self._schedulers[scheduler] = tracker
        return tracker

    def _ours(self) -> bool:
        return self.active and threading.get_ident() == self.thread

    @never_raises
    def on_scheduler_step(self, scheduler: Any) -> None:
        """Judge a scheduler step against its optimizer's attempted steps (LL004)."""
        if not self._ours():
            return
        optimizer = getattr(scheduler, "optimizer", None)
        tracker = self._following.stepping_tracker(optimizer)
        schedule = self.scheduler_tracker(scheduler)
        if tracker is None:
            self._note_unchecked(
                f"LL004 is not judged for {schedule.label}: its optimizer "
                f"(`{type(optimizer).__name__}`) is not one looplint can follow."
            )
            return
        problem = judge_scheduler_step(schedule, tracker)
        if problem is not None and problem.check == "scheduler-before-optimizer":
            if not tracker.pending_order:
                tracker.pending_order.append((problem.check, problem.message, user_call_site()))
        elif problem is not None:
            self._issues.note(
                SCHEDULER_ORDER,
                problem.check,
                problem.message,
                optimizer=tracker.label,
                step=tracker.steps,
            )

    @never_raises
    def before_scaler_step(self, optimizer: Optimizer) -> None:
        """Remember the step count so a step GradScaler skips is still counted."""
        if self._ours():
            tracker = self._following.stepping_tracker(optimizer)
            if tracker is not None:
                tracker.scaler_mark = tracker.steps

    @never_raises
    def after_scaler_step(self, optimizer: Optimizer) -> None:
        """Count a step GradScaler skipped (inf/NaN gradients) as attempted."""
        if not self._ours():
            return
        tracker = self._following.stepping_tracker(optimizer)
        if tracker is None:
            return
        if tracker.scaler_mark == tracker.steps:
            if tracker.pending_order and not tracker.attempts:
                self.confirm_order(tracker)
            tracker.attempts += 1
        tracker.scaler_mark = -1

    def confirm_order(self, tracker: OptimizerTracker) -> None:
        """The optimizer stepped after all: report the scheduler step that preceded it."""
        for check, message, site in tracker.pending_order:
            self._issues.note(
                SCHEDULER_ORDER, check, message, optimizer=tracker.label, step=0, site=site
            )
        tracker.pending_order.clear()

    def unjudged(self, trackers: list[OptimizerTracker]) -> None:
        """Say which held-back scheduler steps were never judged (the optimizer never stepped)."""
        for tracker in trackers:
            if tracker.pending_order and not tracker.attempts:
                self._note_unchecked(
                    f"LL004 scheduler order is not judged for {tracker.label}: a scheduler "
                    "stepped but the optimizer never stepped in the block."
                )
