"""Judging the gradients an optimizer steps on: LL001 and LL005 at each step.

`take_census` classifies the gradients from version counters; this module turns
a census into findings, including the verdicts that need a second look
(a stale gradient confirmed or cleared through `.data` by a value probe at the
next backward pass) and those judged over the majority of steps
(`cleared-before-step`, `accumulation-broken`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle

from looplint.identity import GRADIENTS_CLEARED_BEFORE_STEP, MISSING_ZERO_GRAD

from .call_site import CallSite, user_call_site
from .finding import Finding
from .gradients import (
    QUIET_AFTER,
    GradientCensus,
    HookKeeper,
    go_quiet,
    make_probe,
    take_census,
)
from .records import OptimizerTracker, ParamRecord, Verdict
from .report import IssueLog


def evaluates_closure_once(optimizer: Optimizer) -> bool:
    """Whether `step(closure)` runs the closure exactly once, first (torch.optim, except LBFGS).

    Only then do the gradients after the step show one step's accumulation; LBFGS
    and unknown optimizers (SAM runs it twice) may evaluate it several times.
    """
    cls = type(optimizer)
    return cls.__module__.startswith("torch.optim.") and not isinstance(
        optimizer, torch.optim.LBFGS
    )


class GradientJudge:
    """The gradient checks of one `watch` block.

    Findings that hold on the step they are seen go to the block's `issues`;
    LL005 candidates are kept apart until the block ends, where they are
    reported only for optimizers whose gradients were cleared before most of
    their steps.
    """

    def __init__(
        self,
        issues: IssueLog,
        hooks: HookKeeper,
        handles: list[RemovableHandle],
        accumulation: int | None,
        note_unchecked: Callable[[str], None],
    ) -> None:
        self._issues = issues
        self._cleared = IssueLog()
        self.hooks = hooks
        """Who adds and removes the gradient hooks (`take_census` asks it)."""
        self.quiet_after = 0
        """Censuses in a row that find the canonical loop before the gradient hooks go
        quiet (`gradients.take_census`); 0 while LL013 still counts backward passes
        per step or `accumulation_steps` asks for them."""
        self._handles = handles
        self._accumulation = accumulation
        self._note_unchecked = note_unchecked
        self._pending_stale: list[tuple[OptimizerTracker, ParamRecord]] = []

    def allow_quiet(self, trackers: Iterable[OptimizerTracker]) -> None:
        """Let the gradient hooks go quiet from now on: at once for the optimizers whose
        last `QUIET_AFTER` censuses found the canonical loop, later for the others."""
        self.quiet_after = QUIET_AFTER
        for tracker in trackers:
            if tracker.calm >= QUIET_AFTER and not tracker.quiet:
                go_quiet(tracker, self.hooks)

    def judge_step(
        self, optimizer: Optimizer, tracker: OptimizerTracker, *, closure: bool = False
    ) -> None:
        """Take the census of the gradients `optimizer` is about to step on and judge it
        (`StepChecks.before_step` writes the same out, for the step without a closure)."""
        census = take_census(optimizer, tracker, self.hooks, self.quiet_after)
        if census is None:
            tracker.judged_steps += 1
        else:
            self.judge(optimizer, tracker, census, closure=closure)

    def judge(
        self,
        optimizer: Optimizer,
        tracker: OptimizerTracker,
        census: GradientCensus,
        *,
        closure: bool = False,
    ) -> None:
        """Judge a census that found something to judge (`take_census` returned one)."""
        (fresh, missing, reused, cleared, assigned, unknown, longest_run, reused_names, stale) = (
            census
        )
        settled = fresh == 0 and unknown == 0 and assigned == 0
        if unknown == 0 and assigned == 0:
            tracker.judged_steps += 1
        if settled and reused == 0 and missing + cleared > 0:
            tracker.cleared_steps += 1
            self._cleared.note(
                GRADIENTS_CLEARED_BEFORE_STEP,
                "cleared-before-step",
                f"{tracker.label} stepped while every gradient it holds had been cleared "
                "since the last backward pass (`zero_grad()` between `backward()` and "
                "`step()`, or `step()` before `backward()`), so the step did not learn "
                "from the batch.",
                optimizer=tracker.label,
                step=tracker.steps,
            )
        elif settled and reused > 0 and cleared == 0:
            self._issues.note(
                MISSING_ZERO_GRAD,
                "gradient-reused",
                f"{tracker.label} stepped again on the gradients its previous step already "
                "used: no backward pass ran in between, so the same batch is applied twice.",
                optimizer=tracker.label,
                step=tracker.steps,
                parameters=reused_names,
            )
        if stale:
            self._judge_stale(tracker, stale)
        if self._accumulation is not None and longest_run > 0:
            if closure and not evaluates_closure_once(optimizer):
                self._note_unchecked(
                    f"LL001 accumulation-broken is not judged for the closure steps of "
                    f"{tracker.label}: it may run the closure (and its backward pass) several "
                    "times per step."
                )
                return
            tracker.judged_runs += 1
            if longest_run < self._accumulation:
                if not tracker.short_runs:
                    tracker.short_site = user_call_site()
                tracker.short_runs += 1
                tracker.shortest_run = longest_run

    def _judge_stale(
        self, tracker: OptimizerTracker, stale: Iterable[tuple[ParamRecord, int]]
    ) -> None:
        """Report gradients a backward pass added to after a step consumed them.

        The first time a parameter is suspected, its next backward pass looks at
        the consumed gradient's values (one device synchronisation per parameter,
        ever): zeros mean it was cleared where the version counter cannot see it
        (`p.grad.data.zero_()`), or zeroed in place before the step (LL005).
        """
        confirmed: list[str] = []
        zeroed_before_step = False
        site: CallSite | None = None
        for record, accumulated_version in stale:
            verdict = record.verdict
            if verdict is Verdict.NONE:
                param = record.param_ref()
                grad = param.grad if param is not None else None
                if param is None or grad is None:
                    continue
                if site is None:
                    site = user_call_site()
                record.verdict = Verdict.PENDING
                record.moved = grad._version != accumulated_version
                record.pending_step = tracker.steps
                record.pending_site = site
                handle = param.register_hook(make_probe(record))  # type: ignore[no-untyped-call]
                record.probe_handle = handle
                self._handles.append(handle)
                self._pending_stale.append((tracker, record))
                continue
            if verdict is Verdict.PENDING:
                verdict = self._settle(tracker, record)
            if verdict is Verdict.STALE:
                confirmed.append(record.name)
            elif verdict is Verdict.ZEROED_BEFORE_STEP:
                zeroed_before_step = True
        if confirmed:
            self._note_stale(tracker, confirmed)
        if zeroed_before_step:
            tracker.cleared_steps += 1
            self._note_zeroed(tracker, tracker.steps)

    def _settle(self, tracker: OptimizerTracker, record: ParamRecord) -> Verdict:
        """Turn a probe's count of non-zero values into a verdict (first look only)."""
        probe = record.probe
        if probe is None:
            return Verdict.PENDING
        record.probe = None
        if record.probe_handle is not None:
            record.probe_handle.remove()
            record.probe_handle = None
        if bool(probe):
            verdict = Verdict.STALE
            self._note_stale(
                tracker, (record.name,), step=record.pending_step, site=record.pending_site
            )
        elif record.moved:
            verdict = Verdict.ZEROED_BEFORE_STEP
            tracker.cleared_steps += 1
            self._note_zeroed(tracker, record.pending_step, record.pending_site)
        else:
            verdict = Verdict.CLEARED_UNSEEN
        record.verdict = verdict
        return verdict

    def _note_zeroed(
        self, tracker: OptimizerTracker, step: int, site: CallSite | None = None
    ) -> None:
        self._cleared.note(
            GRADIENTS_CLEARED_BEFORE_STEP,
            "cleared-before-step",
            f"{tracker.label} stepped on gradients that were zeroed in place "
            "(`zero_grad(set_to_none=False)` or `model.zero_grad()`) after the backward "
            "pass and before `step()`, so the step did not learn from the batch. Clear "
            "gradients after `optimizer.step()` (or before `backward()`).",
            optimizer=tracker.label,
            step=step,
            site=site,
        )

    def _note_stale(
        self,
        tracker: OptimizerTracker,
        names: Iterable[str],
        *,
        step: int | None = None,
        site: CallSite | None = None,
    ) -> None:
        self._issues.note(
            MISSING_ZERO_GRAD,
            "stale-gradient",
            f"the gradients {tracker.label} stepped on were never cleared since an "
            "earlier step used them: the backward pass added to the old gradients, so "
            "each step applies the sum of all past batches. Call `optimizer.zero_grad()` "
            "once per step.",
            optimizer=tracker.label,
            step=tracker.steps if step is None else step,
            parameters=tuple(names),
            site=site,
        )

    def settle_pending(self) -> None:
        """Suspected stale gradients whose values were never looked at are reported."""
        for tracker, record in self._pending_stale:
            if record.verdict is not Verdict.PENDING:
                continue
            if self._settle(tracker, record) is Verdict.PENDING:
                record.verdict = Verdict.STALE
                self._note_stale(
                    tracker, (record.name,), step=record.pending_step, site=record.pending_site
                )
        self._pending_stale.clear()

    def cleared_findings(self, trackers: Sequence[OptimizerTracker]) -> list[Finding]:
        """LL005, for optimizers whose gradients were cleared before most of their steps.

        One step on cleared gradients (a batch whose non-finite loss skipped
        `backward()`) is a no-op, not the bug; the bug repeats on every step.
        """
        reported = {
            tracker.label
            for tracker in trackers
            if tracker.cleared_steps * 2 > tracker.judged_steps
            and any(record.received for record in tracker.records)
        }
        return [
            finding for finding in self._cleared.freeze() if (finding.optimizer or "") in reported
        ]

    def accumulation_findings(self, trackers: Sequence[OptimizerTracker]) -> list[Finding]:
        """LL001 `accumulation-broken`, judged over the majority of each optimizer's steps."""
        findings: list[Finding] = []
        for tracker in trackers:
            if tracker.short_runs * 2 <= tracker.judged_runs:
                continue
            log = IssueLog()
            log.note(
                MISSING_ZERO_GRAD,
                "accumulation-broken",
                f"accumulation_steps={self._accumulation}, but the gradients of "
                f"{tracker.label} were cleared after only {tracker.shortest_run} backward "
                f"pass(es) before {tracker.short_runs} of its {tracker.judged_runs} steps, so "
                "only the last micro-batches reach each step. Clear gradients once per "
                "step, after `optimizer.step()`.",
                optimizer=tracker.label,
                site=tracker.short_site,
            )
            findings.extend(log.freeze())
        return findings
