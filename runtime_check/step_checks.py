"""The optimizer step hooks of a `watch` block and the state checks they make (LL002).

torch calls `before_step` and `after_step` around every optimizer step (global,
removable hooks) and `after_load` after a `load_state_dict`. They keep the
trackers in step with the optimizer (nesting, param-group changes, counts), hand
the gradients to the `GradientJudge`, and judge optimizer state here: an
optimizer re-created over parameters another one already stepped, state emptied
during training, or restored state that does not fit the parameters.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import Optimizer

from looplint.identity import OPTIMIZER_IN_LOOP

from .compile_guard import call_eagerly, frame_callback
from .following import Following
from .gradient_judge import GradientJudge
from .gradients import param_layout, param_version, remember_versions, take_census
from .guard import never_raises
from .records import OptimizerTracker
from .report import IssueLog, Report
from .state import earlier_stepper, holds_state, mismatched_state, setup_of
from .step_nesting import steps_in_progress


def in_backward() -> bool:
    """Whether this thread is running a backward pass (autograd's engine threads)."""
    return bool(torch._C._current_graph_task_id() != -1)


_get_ident = threading.get_ident  # bound once: the step hooks run on every step


def _closure_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The closure a `step` call was given, if any (positional or keyword)."""
    return args[1] if len(args) > 1 else kwargs.get("closure")


StepObserver = Callable[[Optimizer, OptimizerTracker], None]
"""Told before (or after) each outermost step of a followed optimizer."""


def _unconsume(tracker: OptimizerTracker) -> None:
    """The previous step raised after its census (an out-of-memory batch skipped): the
    gradients it remembered as consumed were not, so accumulating onto them since is no
    stale gradient."""
    for record in tracker.records:
        if record.last_stepper is tracker:
            record.stale = False


class StepChecks:
    """What happens on every optimizer step of one block."""

    def __init__(
        self,
        following: Following,
        issues: IssueLog,
        gradients: GradientJudge,
        report: Report,
        note_unchecked: Callable[[str], None],
        confirm_order: Callable[[OptimizerTracker], None],
        internal_error: Callable[[Any, Exception], None],
    ) -> None:
        self._following = following
        self._issues = issues
        self._gradients = gradients
        self._report = report
        self._note_unchecked = note_unchecked
        self._confirm_order = confirm_order
        self._internal_error = internal_error
        self.thread = threading.get_ident()
        self.observers: list[StepObserver] = []
        self.after_observers: list[StepObserver] = []
        self.in_step = False

    def stop_observing_after(self, observer: StepObserver) -> None:
        """Stop telling `observer` of steps (safe from inside the observer: a step in
        progress keeps the list it started with)."""
        observers = list(self.after_observers)
        if observer in observers:
            observers.remove(observer)
        self.after_observers = observers

    def internal_error(self, subject: Any, error: Exception) -> None:
        """Report a failure of these hooks (see `guard.never_raises`)."""
        self._internal_error(subject, error)

    def before_step(
        self, optimizer: Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Bring the tracker up to date and judge what the step is about to consume.

        It runs on every step, so it is its own gate (`compile_guard.self_gated`) and
        its own guard (`guard.never_raises`), written out: each wrapper's frame would
        cost more inside a training step than its bytecode suggests.
        """
        if frame_callback() is not None:
            call_eagerly(StepChecks.before_step, self, optimizer, args, kwargs)
            return
        try:
            if _get_ident() != self.thread and not self._ours_elsewhere():
                return
            following = self._following
            last = following.last
            tracker = last[1] if last[0]() is optimizer else following.tracker_for(optimizer)
            if tracker is None:
                return
            if tracker.depth:
                # Nested (a subclass's `step` calling `super().step()`), or the previous
                # step raised and its post-hook never ran: only the stack can tell.
                depth = steps_in_progress(optimizer)
                if depth > 1:
                    tracker.depth = depth
                    return
                _unconsume(tracker)
            tracker.depth = 1
            self.in_step = True
            if tracker.cuda:
                self._check_capture(tracker)
            groups = optimizer.param_groups
            layout = (len(groups[0]["params"]),) if len(groups) == 1 else param_layout(optimizer)
            if layout != tracker.layout:
                following.rebuild(optimizer, tracker)  # `add_param_group` and the like
            if tracker.steps == 0:
                self._check_first_step(optimizer, tracker)
            elif (
                tracker.had_state
                and not tracker.loaded
                and len(optimizer.state) < tracker.state_len
            ):
                self._note_state_cleared(optimizer, tracker)
            for observer in self.observers:
                observer(optimizer, tracker)
            if len(args) < 2 and not kwargs:  # `step()`: no closure (`_closure_of`)
                # `GradientJudge.judge_step`, written out: the quiet canonical step
                # (`None`) is nearly every step.
                gradients = self._gradients
                census = take_census(optimizer, tracker, gradients.hooks, gradients.quiet_after)
                if census is None:
                    tracker.judged_steps += 1
                else:
                    gradients.judge(optimizer, tracker, census)
            elif _closure_of(args, kwargs) is None:
                self._gradients.judge_step(optimizer, tracker)
        except Exception as error:
            self.internal_error(optimizer, error)

    def after_step(
        self, optimizer: Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        """Count the step and keep what it left (its own gate and guard, as `before_step`)."""
        if frame_callback() is not None:
            call_eagerly(StepChecks.after_step, self, optimizer, args, kwargs)
            return
        try:
            if _get_ident() != self.thread and not in_backward():
                return
            following = self._following
            last = following.last
            tracker = last[1] if last[0]() is optimizer else following.tracker_for(optimizer)
            if tracker is None:
                return
            if tracker.depth > 1:
                tracker.depth -= 1
                return
            tracker.depth = 0
            self.in_step = False
            if (len(args) > 1 or kwargs) and _closure_of(args, kwargs) is not None:
                # The backward passes ran inside `step` (Lightning's automatic
                # optimization, LBFGS): the gradients are judged as the closure left
                # them; stock optimizers never modify `.grad` in `step`.
                self._gradients.judge_step(optimizer, tracker, closure=True)
            groups = optimizer.param_groups
            if len(groups) == 1:  # `remember_versions`, written out for one group
                tracker.versions = list(map(param_version, groups[0]["params"]))
            else:
                remember_versions(optimizer, tracker)
            if tracker.pending_order and not tracker.attempts:
                self._confirm_order(tracker)
            tracker.steps += 1
            tracker.attempts += 1
            self._report.steps += 1
            if not tracker.had_state:
                tracker.had_state = holds_state(optimizer)
            tracker.state_len = len(optimizer.state)
            tracker.loaded = False
            for observer in self.after_observers:
                observer(optimizer, tracker)
        except Exception as error:
            self.internal_error(optimizer, error)

    def _note_state_cleared(self, optimizer: Optimizer, tracker: OptimizerTracker) -> None:
        self._issues.note(
            OPTIMIZER_IN_LOOP,
            "state-cleared",
            f"the state of {tracker.label} (momentum, moment estimates) was emptied "
            f"during training ({tracker.state_len} -> {len(optimizer.state)} entries) "
            "without `load_state_dict`, so the optimizer starts over.",
            optimizer=tracker.label,
            step=tracker.steps,
        )

    @never_raises
    def after_load(self, optimizer: Optimizer) -> None:
        """A `load_state_dict` restored the optimizer: judge the state it brought."""
        if _get_ident() != self.thread:
            return
        tracker = self._following.tracker_for(optimizer)
        if tracker is None:
            return
        tracker.loaded = True
        tracker.had_state = tracker.had_state or holds_state(optimizer)
        self._check_loaded_state(optimizer, tracker)

    @never_raises
    def judge_held_state(self, optimizer: Optimizer, tracker: OptimizerTracker) -> None:
        """An optimizer the block follows from its start: judge the state it already
        holds (restored before the block, or stepped) now rather than inside its first
        step; state loaded later is judged by `after_load`."""
        if tracker.had_state:
            tracker.state_checked = True
            self._check_loaded_state(optimizer, tracker)

    def _check_first_step(self, optimizer: Optimizer, tracker: OptimizerTracker) -> None:
        if holds_state(optimizer):
            # Restored from a checkpoint (or stepped before the block): not a reset.
            if not tracker.state_checked:
                self._check_loaded_state(optimizer, tracker)
            return
        earlier, names = earlier_stepper(tracker)
        tracker.setup = setup_of(optimizer, tracker)
        if earlier is None:
            return
        tracker.generation = earlier.generation + 1
        # One deliberate rebuild with other parameters or settings (two-phase
        # fine-tuning, Lightning's `lr_find` then `fit`) is a recipe, not a bug; the
        # same optimizer built again, or a second rebuild, is.
        if tracker.generation >= 2 or tracker.setup == earlier.setup:
            self._issues.note(
                OPTIMIZER_IN_LOOP,
                "optimizer-recreated",
                f"{tracker.label} was created over {len(names)} parameter(s) that "
                f"{earlier.label} had already stepped, so its momentum / moment estimates "
                "start again from zero. Build the optimizer once, before the loop (or restore "
                "it with `load_state_dict`).",
                optimizer=tracker.label,
                step=tracker.steps,
                parameters=names,
                group=f"{type(optimizer).__name__} over {names[0]}",
            )

    def _check_loaded_state(self, optimizer: Optimizer, tracker: OptimizerTracker) -> None:
        names = mismatched_state(optimizer, tracker)
        if names:
            self._issues.note(
                OPTIMIZER_IN_LOOP,
                "mismatched-state",
                f"the state restored into {tracker.label} does not match the shapes of "
                f"{len(names)} of its parameters: it was saved from a different model or "
                "parameter order, so momentum lands on the wrong tensors.",
                optimizer=tracker.label,
                step=tracker.steps,
                parameters=names,
            )

    def _check_capture(self, tracker: OptimizerTracker) -> None:
        if not torch.cuda.is_available() or not torch.cuda.is_current_stream_capturing():
            return
        reason = (
            f"{tracker.label} stepped during CUDA-graph capture: hooks do not run when "
            "the captured graph is replayed, so replayed steps are not checked."
        )
        if reason not in self._report.inactive:
            self._report.inactive.append(reason)

    def _ours_elsewhere(self) -> bool:
        """Whether a step from another thread still belongs to this run.

        On CUDA the autograd engine runs backward hooks in its own thread, so an
        optimizer stepped inside a backward pass (optimizer-in-backward) is
        checked; any other thread's steps belong to another training run.
        """
        if in_backward():
            return True
        self._note_unchecked(
            "optimizer steps in threads other than the one that entered the block are not "
            "checked (they belong to other training runs)."
        )
        return False
