"""`watch`: the context manager that checks a training run while it happens.

It installs only removable hooks (global optimizer step pre/post hooks, per
parameter post-accumulate-grad hooks, per optimizer load-state-dict hooks) plus
the scoped scheduler/GradScaler wrappers of `scoped_patches`, and removes all of
them when the block ends. Hook bodies run under `torch.compiler.disable` so a
compiled optimizer step does not trace (and recompile for) them, read only
Python objects and tensor metadata (never values: no device synchronisation),
and never change a tensor, so training is bit-identical with and without it.
"""

from __future__ import annotations

import functools
import sys
import threading
import warnings
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar, cast

import torch
from torch import nn
from torch.nn.parameter import UninitializedTensorMixin  # type: ignore[attr-defined]
from torch.optim import Optimizer
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)
from torch.utils.hooks import RemovableHandle
from torch.utils.weak import WeakIdKeyDictionary

from looplint.identity import (
    OPTIMIZER_IN_LOOP,
    PARTIAL_PARAMETERS,
    SCHEDULER_ORDER,
)

from . import scoped_patches
from .adoption import resolve
from .call_site import CallSite, user_call_site
from .compile_guard import outside_compile
from .coverage import find_gaps
from .errors import LoopLintRuntimeError, LoopLintRuntimeWarning
from .findings import Finding, IssueLog, Report, describe_names
from .gradient_judge import GradientJudge
from .gradients import make_accumulate_hook, remember_after_step
from .records import OptimizerTracker, ParamRecord, SchedulerTracker
from .schedulers import judge_scheduler_step
from .state import earlier_stepper, holds_state, mismatched_state, setup_of
from .step_nesting import steps_in_progress

Mode = Literal["raise", "warn"]

_COMPILED_PREFIX = "_orig_mod."


def watch(
    model: nn.Module | None = None,
    *optimizers: Optimizer,
    schedulers: Iterable[Any] = (),
    mode: Mode = "raise",
    accumulation_steps: int | None = None,
) -> Watch:
    """Check a training run for the silent bugs of training loops while it runs.

    ```python
    with looplint.runtime_check.watch(model) as report:
        train(model, loader)        # unmodified training code
    ```

    Optimizers and LR schedulers are discovered when they step; pass them
    explicitly to get their variable names in messages and coverage from the
    first step. `model` names parameters (`encoder.layers.3.bias`) and enables
    the coverage check (LL003); without it the other checks still run.
    `mode="raise"` raises `LoopLintRuntimeError` (an `AssertionError`) when the
    block ends with findings; `mode="warn"` emits one `LoopLintRuntimeWarning`
    per distinct finding. `accumulation_steps=N` also reports gradients cleared
    more often than every N backward passes.
    """
    names: dict[int, str] = {}
    if optimizers:
        frame = sys._getframe(1)
        try:
            names = {
                id(value): key
                for key, value in frame.f_locals.items()
                if isinstance(value, Optimizer)
            }
        finally:
            del frame
    return Watch(
        model,
        optimizers,
        schedulers=tuple(schedulers),
        mode=mode,
        accumulation_steps=accumulation_steps,
        variable_names=names,
    )


HookT = TypeVar("HookT", bound=Callable[..., None])


def _never_raises(hook: HookT) -> HookT:
    """Keep a looplint bug out of the user's training: the failure is reported instead.

    An exception inside a hook would otherwise stop `optimizer.step()` or
    `scheduler.step()`; the object involved is then left unchecked, and the
    report says so (`report.unchecked`).
    """

    @functools.wraps(hook)
    def guarded(self: Watch, subject: Any, *args: Any) -> None:
        try:
            hook(self, subject, *args)
        except Exception as error:
            self._internal_error(subject, error)

    return cast(HookT, guarded)


def _is_bucket_view(record: ParamRecord) -> bool:
    """Whether the parameter's gradient is a view into a shared bucket (DDP)."""
    param = record.param_ref()
    grad = param.grad if param is not None else None
    return grad is not None and grad._base is not None


def _in_backward() -> bool:
    """Whether this thread is running a backward pass (autograd's engine threads)."""
    return bool(torch._C._current_graph_task_id() != -1)


def _closure_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The closure a `step` call was given, if any (positional or keyword)."""
    return args[1] if len(args) > 1 else kwargs.get("closure")


def _warn_at(warning: Warning, site: CallSite | None) -> None:
    """Emit `warning` attributed to the user's line (not to looplint's own file)."""
    if site is None:
        warnings.warn(warning, stacklevel=3)
        return
    module = Path(site.file).stem
    warnings.warn_explicit(warning, type(warning), site.file, site.line, module=module)


class _Unfollowed:
    """What the checker remembers about an object it does not follow itself.

    A wrapper (accelerate's `AcceleratedOptimizer`, timm's `Lookahead`) points at
    the tracker of the optimizer it forwards to; an object that cannot be
    followed at all points at nothing.
    """

    __slots__ = ("target",)

    def __init__(self, target: OptimizerTracker | None) -> None:
        self.target = target


class Watch:
    """One `watch` block: its hooks, its bookkeeping and its `Report`.

    Entered once; everything it installs is removed on exit, even when the block
    raises, so tests neither leak hooks into each other nor change behaviour.
    """

    def __init__(
        self,
        model: nn.Module | None,
        optimizers: Iterable[Optimizer],
        *,
        schedulers: Iterable[Any] = (),
        mode: Mode = "raise",
        accumulation_steps: int | None = None,
        variable_names: dict[int, str] | None = None,
        defer_to_inner: bool = False,
    ) -> None:
        """`defer_to_inner=True` (the pytest plugin's session-wide watch) leaves a bug
        to an inner `watch` block that already reported it, so a test that expects
        looplint's own error is not failed a second time."""
        if mode not in ("raise", "warn"):
            raise ValueError(f"mode must be 'raise' or 'warn', not {mode!r}")
        if accumulation_steps is not None and accumulation_steps < 1:
            raise ValueError("accumulation_steps must be a positive integer")
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"watch() expects an nn.Module as model, got {type(model).__name__}")
        self._model_ref = weakref.ref(model) if model is not None else None
        self._unchecked: dict[str, None] = {}
        self._initial_optimizers: list[weakref.ref[Any]] = []
        for candidate in optimizers:
            try:
                self._initial_optimizers.append(weakref.ref(candidate))
            except TypeError:
                self._note_unchecked(
                    f"`{type(candidate).__name__}` passed to watch() is not a torch.optim "
                    "optimizer: its steps are not checked."
                )
        self._initial_schedulers = [weakref.ref(s) for s in schedulers]
        self._mode: Mode = mode
        self._accumulation = accumulation_steps
        self._names = dict(variable_names or {})
        self._entered = False
        self._active = False
        self._attached = False
        self._records: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._trackers: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._schedulers: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self._all_trackers: list[OptimizerTracker] = []
        self._model_records: list[ParamRecord] = []
        self._handles: list[RemovableHandle] = []
        self._issues = IssueLog()
        self._last: tuple[weakref.ref[Optimizer], OptimizerTracker | None] | None = None
        self._defer_to_inner = defer_to_inner
        self._consumed: set[tuple[str, str, str | None]] = set()
        self._thread = threading.get_ident()
        self._compiled_autograd_seen = False
        self.report = Report(self._issues.freeze)
        self.report.unchecked = list(self._unchecked)
        self._gradients = GradientJudge(
            self._issues, self._hook, self._handles, accumulation_steps, self._note_unchecked
        )

    # -- context manager -------------------------------------------------

    def __enter__(self) -> Report:
        if self._entered:
            raise RuntimeError("a watch() block can be entered only once; call watch() again")
        self._entered = True
        self._active = True
        self._thread = threading.get_ident()
        try:
            self._install()
        except BaseException:
            self._teardown()
            raise
        return self.report

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        __tracebackhide__ = True
        try:
            findings = self._conclude()
        finally:
            self._teardown()
        self.report.close(findings)
        self._tell_outer_blocks(findings)
        exit_site = user_call_site() if findings or self.report.inactive else None
        for reason in self.report.inactive:
            _warn_at(LoopLintRuntimeWarning(reason), exit_site)
        if not findings:
            return
        if self._mode == "warn":
            for finding in findings:
                site = CallSite(finding.file, finding.line or 0) if finding.file else exit_site
                _warn_at(LoopLintRuntimeWarning(str(finding)), site)
            return
        error = LoopLintRuntimeError(findings, unchecked=self.report.unchecked)
        if exc is None:
            raise error
        if not isinstance(exc, LoopLintRuntimeError) and hasattr(exc, "add_note"):
            exc.add_note(str(error))

    # -- installation ----------------------------------------------------

    def _install(self) -> None:
        model = self._model_ref() if self._model_ref is not None else None
        if model is not None:
            for name, param in model.named_parameters():
                record = self._record_for(param, name.replace(_COMPILED_PREFIX, ""), is_model=True)
                self._model_records.append(record)
        self._handles.append(register_optimizer_step_pre_hook(outside_compile(self._before_step)))
        self._handles.append(register_optimizer_step_post_hook(outside_compile(self._after_step)))
        for opt_ref in self._initial_optimizers:
            optimizer = opt_ref()
            if optimizer is not None:
                self._stepping_tracker(optimizer)
        for sched_ref in self._initial_schedulers:
            scheduler = sched_ref()
            if scheduler is not None:
                self._scheduler_tracker(scheduler)
        scoped_patches.attach(self)
        self._attached = True

    def _teardown(self) -> None:
        if not self._active:
            return
        self._active = False
        for handle in self._handles:
            handle.remove()
        for tracker in self._all_trackers:
            for handle in tracker.handles:
                handle.remove()
            tracker.handles.clear()
        self._handles.clear()
        self._last = None
        if self._attached:
            self._attached = False
            scoped_patches.detach(self)

    def _record_for(self, param: torch.Tensor, name: str, *, is_model: bool) -> ParamRecord:
        record: ParamRecord | None = self._records.get(param)  # type: ignore[no-untyped-call]
        if record is None:
            record = ParamRecord(param, name, is_model=is_model)
            self._records[param] = record
            if param.requires_grad:
                self._hook(param, record)
        return record

    def _hook(self, param: torch.Tensor, record: ParamRecord) -> None:
        if isinstance(param, UninitializedTensorMixin):
            # A lazy module's parameter: materialised in place (same object) by the
            # first forward, then hooked by the first step's census.
            return
        record.hooked = True
        if not param.is_leaf:
            return
        hook = make_accumulate_hook(record, self._on_compiled_autograd)
        self._handles.append(param.register_post_accumulate_grad_hook(hook))  # type: ignore[no-untyped-call]

    def _tracker_for(self, optimizer: Optimizer) -> OptimizerTracker | None:
        """The tracker of an optimizer whose own step is checked; `None` for wrappers and
        optimizers looplint cannot follow (their steps are ignored, never a crash)."""
        last = self._last
        if last is not None and last[0]() is optimizer:
            return last[1]
        entry: OptimizerTracker | _Unfollowed | None = self._trackers.get(optimizer)  # type: ignore[no-untyped-call]
        if entry is None:
            entry = self._adopt(optimizer)
        tracker = entry if isinstance(entry, OptimizerTracker) else None
        try:
            self._last = (weakref.ref(optimizer), tracker)
        except TypeError:
            self._last = None
        return tracker

    def _stepping_tracker(self, candidate: Any) -> OptimizerTracker | None:
        """The tracker of the optimizer that really steps for `candidate` (a wrapper's inner)."""
        entry: OptimizerTracker | _Unfollowed | None
        try:
            entry = self._trackers.get(candidate)  # type: ignore[no-untyped-call]
        except TypeError:  # not weak-referenceable: certainly not an optimizer
            entry = None
        if entry is None:
            entry = self._adopt(candidate)
        return entry.target if isinstance(entry, _Unfollowed) else entry

    def _adopt(self, candidate: Any) -> OptimizerTracker | _Unfollowed:
        """Start following an optimizer; never raises into training.

        A wrapper is remembered as an alias of the optimizer it forwards to (whose
        own steps are the ones checked); anything else that cannot be followed is
        listed once in `report.unchecked`.
        """
        resolution = resolve(candidate)
        entry: OptimizerTracker | _Unfollowed
        if resolution.target is None:
            self._note_unchecked(f"{resolution.reason}: its steps are not checked.")
            entry = _Unfollowed(None)
        elif resolution.target is not candidate:
            variable = self._names.get(id(candidate))
            if variable is not None:
                self._names.setdefault(id(resolution.target), variable)
            entry = _Unfollowed(self._stepping_tracker(resolution.target))
        else:
            entry = self._follow(resolution.target)
        try:
            self._trackers[candidate] = entry
        except TypeError:
            pass
        return entry

    def _follow(self, optimizer: Optimizer) -> OptimizerTracker | _Unfollowed:
        index = len(self._all_trackers)
        label = f"{type(optimizer).__name__} #{index}"
        variable = self._names.get(id(optimizer))
        if variable is not None:
            label += f" ({variable})"
        tracker = OptimizerTracker(optimizer, index, label)
        try:
            tracker.prior_steps = bool(getattr(optimizer, "_opt_called", False))
            tracker.had_state = holds_state(optimizer)
            tracker.state_len = len(optimizer.state)
            self._rebuild(optimizer, tracker)
            tracker.handles.append(
                optimizer.register_load_state_dict_post_hook(outside_compile(self._after_load))
            )
        except Exception as error:
            for handle in tracker.handles:
                handle.remove()
            self._note_unchecked(
                f"`{type(optimizer).__name__}` could not be followed "
                f"({type(error).__name__}: {error}): its steps are not checked."
            )
            return _Unfollowed(None)
        self._all_trackers.append(tracker)
        return tracker

    def _note_unchecked(self, line: str) -> None:
        if line not in self._unchecked:
            self._unchecked[line] = None
            if hasattr(self, "report"):
                self.report.unchecked.append(line)

    def _rebuild(self, optimizer: Optimizer, tracker: OptimizerTracker) -> None:
        records: list[ParamRecord] = []
        for group_index, group in enumerate(optimizer.param_groups):
            for param_index, param in enumerate(group["params"]):
                name = f"{tracker.label} param_groups[{group_index}][{param_index}]"
                records.append(self._record_for(param, name, is_model=False))
                if param.is_cuda:
                    tracker.cuda = True
        tracker.records = records
        tracker.layout = tuple(len(group["params"]) for group in optimizer.param_groups)

    # -- optimizer hooks -------------------------------------------------

    @_never_raises
    def _before_step(
        self, optimizer: Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if threading.get_ident() != self._thread and not self._ours_elsewhere():
            return
        tracker = self._tracker_for(optimizer)
        if tracker is None:
            return
        if tracker.depth:
            # Nested (a subclass's `step` calling `super().step()`), or the previous
            # step raised and its post-hook never ran: only the stack can tell.
            depth = steps_in_progress(optimizer)
            if depth > 1:
                tracker.depth = depth
                return
        tracker.depth = 1
        if tracker.cuda:
            self._check_capture(tracker)
        groups = optimizer.param_groups
        layout = tracker.layout
        if len(groups) != len(layout):
            self._rebuild(optimizer, tracker)
        else:
            for group, size in zip(groups, layout, strict=True):
                if len(group["params"]) != size:
                    self._rebuild(optimizer, tracker)
                    break
        if tracker.steps == 0:
            self._check_first_step(optimizer, tracker)
        elif tracker.had_state and not tracker.loaded and len(optimizer.state) < tracker.state_len:
            self._issues.note(
                OPTIMIZER_IN_LOOP,
                "state-cleared",
                f"the state of {tracker.label} (momentum, moment estimates) was emptied "
                f"during training ({tracker.state_len} -> {len(optimizer.state)} entries) "
                "without `load_state_dict`, so the optimizer starts over.",
                optimizer=tracker.label,
                step=tracker.steps,
            )
        if _closure_of(args, kwargs) is None:
            self._gradients.judge(optimizer, tracker)

    @_never_raises
    def _after_step(
        self, optimizer: Optimizer, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> None:
        if threading.get_ident() != self._thread and not _in_backward():
            return
        tracker = self._tracker_for(optimizer)
        if tracker is None:
            return
        if tracker.depth > 1:
            tracker.depth -= 1
            return
        tracker.depth = 0
        if _closure_of(args, kwargs) is not None:
            # The backward passes ran inside `step` (Lightning's automatic optimization,
            # LBFGS): the gradients are judged as the closure left them; stock
            # optimizers never modify `.grad` in `step`.
            self._gradients.judge(optimizer, tracker, closure=True)
        remember_after_step(optimizer, tracker)
        if tracker.pending_order and not tracker.attempts:
            self._confirm_order(tracker)
        tracker.steps += 1
        tracker.attempts += 1
        self.report.steps += 1
        if not tracker.had_state:
            tracker.had_state = holds_state(optimizer)
        tracker.state_len = len(optimizer.state)
        tracker.loaded = False

    @_never_raises
    def _after_load(self, optimizer: Optimizer) -> None:
        if threading.get_ident() != self._thread:
            return
        tracker = self._tracker_for(optimizer)
        if tracker is None:
            return
        tracker.loaded = True
        tracker.had_state = tracker.had_state or holds_state(optimizer)
        self._check_loaded_state(optimizer, tracker)

    def _check_first_step(self, optimizer: Optimizer, tracker: OptimizerTracker) -> None:
        if holds_state(optimizer):
            # Restored from a checkpoint (or stepped before the block): not a reset.
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
        if reason not in self.report.inactive:
            self.report.inactive.append(reason)

    # -- scheduler and GradScaler notifications (from scoped_patches) -----

    def _scheduler_tracker(self, scheduler: Any) -> SchedulerTracker:
        tracker: SchedulerTracker | None = self._schedulers.get(scheduler)  # type: ignore[no-untyped-call]
        if tracker is None:
            tracker = SchedulerTracker(f"{type(scheduler).__name__} #{len(self._schedulers)}")
            self._schedulers[scheduler] = tracker
        return tracker

    @_never_raises
    def on_scheduler_step(self, scheduler: Any) -> None:
        """Judge a scheduler step against its optimizer's attempted steps (LL004).

        "Before the optimizer ever stepped" is held back until that optimizer does
        step in the block: a test that steps only a scheduler, to check its values,
        trains nothing and is not a bug.
        """
        if not self._active or threading.get_ident() != self._thread:
            return
        optimizer = getattr(scheduler, "optimizer", None)
        tracker = self._stepping_tracker(optimizer)
        schedule = self._scheduler_tracker(scheduler)
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

    @_never_raises
    def before_scaler_step(self, optimizer: Optimizer) -> None:
        """Remember the step count so a step GradScaler skips is still counted."""
        if self._active and threading.get_ident() == self._thread:
            tracker = self._stepping_tracker(optimizer)
            if tracker is not None:
                tracker.scaler_mark = tracker.steps

    @_never_raises
    def after_scaler_step(self, optimizer: Optimizer) -> None:
        """Count a step GradScaler skipped (inf/NaN gradients) as attempted."""
        if not self._active or threading.get_ident() != self._thread:
            return
        tracker = self._stepping_tracker(optimizer)
        if tracker is None:
            return
        if tracker.scaler_mark == tracker.steps:
            if tracker.pending_order and not tracker.attempts:
                self._confirm_order(tracker)
            tracker.attempts += 1
        tracker.scaler_mark = -1

    # -- conclusion ------------------------------------------------------

    def _conclude(self) -> list[Finding]:
        self._gradients.settle_pending()
        findings = self._issues.freeze()
        findings.extend(self._gradients.cleared_findings(self._all_trackers))
        if self._accumulation is not None:
            findings.extend(self._gradients.accumulation_findings(self._all_trackers))
        if self._model_ref is not None:
            findings.extend(self._coverage_findings())
        else:
            self._note_unchecked(
                "LL003 coverage (parameters no optimizer updates) is not checked: no model "
                "was given (`watch(model)`, `looplint_watch(model)`)."
            )
        self._check_something_stepped()
        for tracker in self._all_trackers:
            if tracker.pending_order and not tracker.attempts:
                self._note_unchecked(
                    f"LL004 scheduler order is not judged for {tracker.label}: a scheduler "
                    "stepped but the optimizer never stepped in the block."
                )
        views = sum(
            _is_bucket_view(record) for tracker in self._all_trackers for record in tracker.records
        )
        if views:
            self._note_unchecked(
                f"LL001 stale-gradient is not judged for {views} gradient(s) that are views into "
                "a shared bucket (DDP `gradient_as_bucket_view=True`): they share one version "
                "counter."
            )
        if self._compiled_autograd_seen:
            self._note_unchecked(
                "LL001/LL005 are not judged for gradients accumulated under compiled autograd "
                "(each compiled backward moves a gradient's version counter by more than one)."
            )
        if self._consumed:
            findings = [
                finding
                for finding in findings
                if (finding.code, finding.check, finding.optimizer) not in self._consumed
            ]
        return findings

    def _check_something_stepped(self) -> None:
        """Say so when the model trained but no optimizer looplint follows ever stepped."""
        if self.report.steps or any(tracker.attempts for tracker in self._all_trackers):
            return
        if not any(record.received for record in self._model_records):
            return
        reason = (
            "no torch.optim optimizer stepped while the model's parameters received "
            "gradients: parameters updated another way (a manual `p.data.add_(...)` update, "
            "an optimizer looplint cannot follow) are not checked."
        )
        if reason not in self.report.inactive:
            self.report.inactive.append(reason)

    # -- threads, compiled autograd and nested blocks ---------------------

    def _internal_error(self, subject: Any, error: Exception) -> None:
        """Stop checking `subject` after a failure inside looplint, and say so."""
        self._note_unchecked(
            f"checking of `{type(subject).__name__}` stopped after an internal looplint error "
            f"({type(error).__name__}: {error}); please report it."
        )
        self._last = None
        try:
            self._trackers[subject] = _Unfollowed(None)
        except TypeError:
            pass

    def _ours_elsewhere(self) -> bool:
        """Whether a step from another thread still belongs to this run.

        On CUDA the autograd engine runs backward hooks in its own thread, so an
        optimizer stepped inside a backward pass (optimizer-in-backward) is
        checked; any other thread's steps belong to another training run.
        """
        if _in_backward():
            return True
        self._note_unchecked(
            "optimizer steps in threads other than the one that entered the block are not "
            "checked (they belong to other training runs)."
        )
        return False

    def _on_compiled_autograd(self) -> None:
        self._compiled_autograd_seen = True

    def _confirm_order(self, tracker: OptimizerTracker) -> None:
        """The optimizer stepped after all: report the scheduler step that preceded it."""
        for check, message, site in tracker.pending_order:
            self._issues.note(
                SCHEDULER_ORDER, check, message, optimizer=tracker.label, step=0, site=site
            )
        tracker.pending_order.clear()

    def _tell_outer_blocks(self, findings: list[Finding]) -> None:
        if not findings:
            return
        optimizers = {tracker.label: tracker.opt_ref() for tracker in self._all_trackers}
        reported: list[tuple[str, str, object]] = [
            (finding.code, finding.check, optimizers.get(finding.optimizer or ""))
            for finding in findings
        ]
        for listener in scoped_patches.listeners():
            if listener is not self:
                listener.on_inner_report(reported)

    def on_inner_report(self, reported: list[tuple[str, str, object]]) -> None:
        """Leave bugs an inner block already reported to it (only with `defer_to_inner`)."""
        if not self._defer_to_inner:
            return
        for code, check, optimizer in reported:
            label: str | None = None
            if optimizer is not None:
                tracker = self._stepping_tracker(optimizer)
                if tracker is None:
                    continue
                label = tracker.label
            self._consumed.add((code, check, label))

    def _coverage_findings(self) -> list[Finding]:
        gaps = find_gaps(self._model_records, self._all_trackers)
        if gaps.copied:
            self._note_unchecked(
                f"LL003: {len(gaps.copied)} model parameter(s) are taken as trained through "
                "optimized copies with assigned gradients (fp32 master weights), matched by "
                "shape, not by identity."
            )
        log = IssueLog()
        if gaps.uncovered:
            log.note(
                PARTIAL_PARAMETERS,
                "uncovered-parameters",
                f"{len(gaps.uncovered)} parameter(s) of the model received gradients but are "
                f"in no optimizer's param groups, so they never train: "
                f"{describe_names(gaps.uncovered)}. Give the optimizer `model.parameters()` "
                "(or add the missing ones with `add_param_group`).",
                parameters=gaps.uncovered,
            )
        for label in gaps.orphaned:
            log.note(
                PARTIAL_PARAMETERS,
                "orphaned-optimizer",
                f"none of the tensors {label} updates ever received a gradient while the "
                "model's parameters did: it optimizes orphans (was the model re-created after "
                "the optimizer was built?).",
                optimizer=label,
            )
        return log.freeze()
