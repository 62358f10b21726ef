"""`watch`: the context manager that checks a training run while it happens.

It installs only removable hooks (global optimizer step pre/post hooks, per
parameter post-accumulate-grad hooks, per optimizer load-state-dict hooks) plus
the scoped wrappers of `scoped_patches`, and removes all of them when the block
ends. Hook bodies run under `torch.compiler.disable` so a compiled optimizer
step does not trace (and recompile for) them, read only Python objects and
tensor metadata (never values: no device synchronisation), and never change a
tensor, so training is bit-identical with and without it.

The block only wires its parts together: `following` (which optimizers and
parameters), `step_checks` (the step hooks, LL002), `gradient_judge`
(LL001/LL005/LL010), `order_checks` (LL004), `construction` (where optimizers
are built, the model next to them), `model_checks` (LL011/LL017/LL021),
`clipping` (LL016), `sampler_epochs` (LL015), `accumulation_scale` (LL013) and
`conclusion` (LL003 and what went unjudged).
"""

from __future__ import annotations

import sys
import threading
import weakref
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import torch
from torch import nn
from torch.optim import Optimizer
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)
from torch.utils.hooks import RemovableHandle

from . import scoped_patches
from .accumulation_scale import AccumulationScale
from .call_site import user_call_site
from .clipping import ClipChecks
from .compile_guard import self_gated
from .conclusion import NO_MODEL, bucket_view_count, coverage_findings, note_nothing_stepped
from .construction import Constructions
from .delivery import Mode, deliver
from .finding import Finding
from .following import Following, optimizer_variables
from .gradient_judge import GradientJudge
from .guard import never_raises
from .model_checks import ModelChecks, named_parameters
from .nesting import Reported, as_reported, keys_of
from .order_checks import OrderChecks
from .report import IssueLog, Report
from .sampler_epochs import SamplerEpochs
from .step_checks import StepChecks

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

    Optimizers and LR schedulers are discovered when they are built or step;
    pass them explicitly to get their variable names in messages and coverage
    from the first step. `model` names parameters (`encoder.layers.3.bias`) and
    enables the coverage check (LL003); without it, the model is looked for next
    to each optimizer built inside the block. `mode="raise"` raises
    `LoopLintRuntimeError` (an `AssertionError`) when the block ends with
    findings; `mode="warn"` emits one `LoopLintRuntimeWarning` per distinct
    finding. `accumulation_steps=N` also reports gradients cleared more often
    than every N backward passes.
    """
    names = optimizer_variables(sys._getframe(1)) if optimizers else {}
    return Watch(
        model,
        optimizers,
        schedulers=tuple(schedulers),
        mode=mode,
        accumulation_steps=accumulation_steps,
        variable_names=names,
    )


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
        self._entered = False
        self._active = False
        self._attached = False
        self._handles: list[RemovableHandle] = []
        self._issues = IssueLog()
        self._defer_to_inner = defer_to_inner
        self._consumed: set[tuple[str, str, str | None]] = set()
        self._compiled_autograd_seen = False
        self.report = Report(self._issues.freeze)
        self.report.unchecked = list(self._unchecked)
        self._constructions = Constructions()
        self._following = Following(
            dict(variable_names or {}),
            self._note_unchecked,
            lambda optimizer: self._steps.after_load(optimizer),
            self._on_compiled_autograd,
            lambda optimizer: self._constructions.site_of(optimizer),
        )
        self._gradients = GradientJudge(
            self._issues,
            self._following,
            self._following.handles,
            accumulation_steps,
            self._note_unchecked,
        )
        self._order = OrderChecks(
            self._following, self._issues, self._note_unchecked, self.internal_error
        )
        self._steps = StepChecks(
            self._following,
            self._issues,
            self._gradients,
            self.report,
            self._note_unchecked,
            self._order.confirm_order,
            self.internal_error,
        )
        self._models = ModelChecks(self._issues, user_call_site, self._steps.observers)
        self._clips = ClipChecks(self._following, self._issues)
        self._samplers = SamplerEpochs(self._issues, lambda: self.report.steps)
        self._scaling = AccumulationScale(self._issues, self._note_unchecked, self._stop_scaling)
        self._steps.after_observers.append(self._scaling.on_step)

    # -- context manager -------------------------------------------------

    def __enter__(self) -> Report:
        if self._entered:
            raise RuntimeError("a watch() block can be entered only once; call watch() again")
        self._entered = True
        self._active = True
        thread = threading.get_ident()
        self._steps.thread = thread
        self._order.thread = thread
        self._order.active = True
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
        deliver(self.report, self._mode, exc)

    # -- installation ----------------------------------------------------

    def _install(self) -> None:
        model = self._model_ref() if self._model_ref is not None else None
        if model is not None:
            self._add_model(model)
        self._handles.append(register_optimizer_step_pre_hook(self_gated(self._steps.before_step)))
        self._handles.append(register_optimizer_step_post_hook(self_gated(self._steps.after_step)))
        for opt_ref in self._initial_optimizers:
            optimizer = opt_ref()
            if optimizer is not None:
                tracker = self._following.stepping_tracker(optimizer)
                if tracker is not None and (stepping := tracker.opt_ref()) is not None:
                    self._steps.judge_held_state(stepping, tracker)
        for sched_ref in self._initial_schedulers:
            scheduler = sched_ref()
            if scheduler is not None:
                self._order.scheduler_tracker(scheduler)
        scoped_patches.attach(self)
        self._attached = True

    def _add_model(self, model: nn.Module) -> None:
        modules = list(model.named_modules())  # one walk for the records and the checks
        registered: set[int] = set()
        following = self._following
        for found, param in named_parameters(model, modules):
            registered.add(id(param))
            name = found.replace(_COMPILED_PREFIX, "")
            record = following.record_for(param, name, is_model=True)
            if not record.is_model:
                record.is_model = True
                record.name = name
            following.model_records.append(record)
        self._models.add(model, modules, registered)

    def _teardown(self) -> None:
        if not self._active:
            return
        self._active = False
        self._order.active = False
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._following.remove_hooks()
        if self._attached:
            self._attached = False
            scoped_patches.detach(self)

    def _note_unchecked(self, line: str) -> None:
        if line not in self._unchecked:
            self._unchecked[line] = None
            if hasattr(self, "report"):
                self.report.unchecked.append(line)

    def _ours(self) -> bool:
        return self._active and threading.get_ident() == self._steps.thread

    # -- notifications from scoped_patches --------------------------------

    def on_scheduler_step(self, scheduler: Any) -> None:
        """A scheduler is about to step: judge its order (LL004)."""
        self._order.on_scheduler_step(scheduler)

    def before_scaler_step(self, optimizer: Optimizer) -> None:
        """`GradScaler.step(optimizer)` is about to run."""
        self._order.before_scaler_step(optimizer)

    def after_scaler_step(self, optimizer: Optimizer) -> None:
        """`GradScaler.step(optimizer)` returned (the step may have been skipped)."""
        self._order.after_scaler_step(optimizer)

    @never_raises
    def on_optimizer_built(self, optimizer: Optimizer) -> None:
        """Note where the optimizer was built; without a model, take the one found next to it."""
        if not self._ours():
            return
        for model in self._constructions.built(optimizer):
            if self._model_ref is None:
                self._add_model(model)

    @never_raises
    def on_clip(self, parameters: list[torch.Tensor], limit: float | None) -> None:
        """A gradient clip is about to run (LL016)."""
        if self._ours():
            self._clips.on_clip(parameters, limit)

    @never_raises
    def on_sampler_pass(self, sampler: Any) -> None:
        """A pass over a `DistributedSampler` starts (LL015)."""
        if self._ours():
            self._samplers.on_pass(sampler)

    @never_raises
    def on_sampler_pass_end(self, sampler: Any) -> None:
        """A pass over a `DistributedSampler` ended."""
        if self._ours():
            self._samplers.on_pass_end(sampler)

    def _stop_scaling(self) -> None:
        """LL013 found the loop does not accumulate: its per-step work ends here, and
        the gradient hooks may go quiet (unless `accumulation_steps` needs them)."""
        self._steps.stop_observing_after(self._scaling.on_step)
        scoped_patches.stop_hearing_backward(self)
        if self._accumulation is None:
            self._gradients.allow_quiet(self._following.all_trackers)

    def on_backward(self, tensors: Any, code: object, offset: int) -> None:
        """A backward pass is about to run (LL013's counts); guarded inline, once per
        backward pass, and never again once LL013 has stopped listening."""
        scaling = self._scaling
        if scaling.listening and self._active and threading.get_ident() == self._steps.thread:
            try:
                scaling.on_backward(tensors, code, offset, self._steps.in_step)
            except Exception as error:
                self.internal_error(tensors, error)

    # -- conclusion ------------------------------------------------------

    def _conclude(self) -> list[Finding]:
        self._gradients.settle_pending()
        self._scaling.conclude()
        findings = self._issues.freeze()
        trackers = self._following.all_trackers
        findings.extend(self._gradients.cleared_findings(trackers))
        if self._accumulation is not None:
            findings.extend(self._gradients.accumulation_findings(trackers))
        if self._following.model_records:
            findings.extend(
                coverage_findings(
                    self._following.model_records,
                    trackers,
                    self._note_unchecked,
                )
            )
        elif self._model_ref is None:
            self._note_unchecked(NO_MODEL)
        note_nothing_stepped(self.report, self._following.model_records, trackers)
        self._order.unjudged(trackers)
        views = bucket_view_count(trackers)
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

    # -- failures, compiled autograd and nested blocks -------------------

    def internal_error(self, subject: Any, error: Exception) -> None:
        """Stop checking `subject` after a failure inside looplint, and say so."""
        self._note_unchecked(
            f"checking of `{type(subject).__name__}` stopped after an internal looplint error "
            f"({type(error).__name__}: {error}); please report it."
        )
        self._following.forget(subject)

    def _on_compiled_autograd(self) -> None:
        self._compiled_autograd_seen = True

    def _tell_outer_blocks(self, findings: list[Finding]) -> None:
        reported = as_reported(findings, self._following.all_trackers)
        for listener in scoped_patches.listeners() if reported else ():
            if listener is not self:
                listener.on_inner_report(reported)

    def on_inner_report(self, reported: list[Reported]) -> None:
        """Leave bugs an inner block already reported to it (only with `defer_to_inner`)."""
        if self._defer_to_inner:
            self._consumed |= keys_of(reported, self._following)
