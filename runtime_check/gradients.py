"""Gradient bookkeeping: stale gradients (LL001) and gradients cleared before use (LL005).

The signal needs no device synchronisation. Each parameter's gradient tensor is
remembered (weakly) with its version counter after every accumulation and every
optimizer step. Autograd accumulates in place (`grad += new`, version + 1);
`zero_grad(set_to_none=False)` and `model.zero_grad()` call `zero_()` (version +
1 again); `zero_grad()` and `p.grad = None` replace the tensor. So when a backward
pass lands on the very tensor a step consumed, with the version exactly one
higher, nothing cleared it in between: the gradient is stale. Stock optimizers
(for-loop, foreach and fused) never modify `.grad` in `step()`.

Two things the version counter cannot see are settled by looking at values,
once per parameter and only when a gradient is already suspected of being
stale (`probe_consumed_gradient`): `p.grad.data.zero_()` clears without moving
the version (`.data` has its own counter), and `zero_grad(set_to_none=False)`
between backward and step leaves the step nothing but zeros. What a block's
first steps learn per accumulation comes from `accumulation_hook`.
"""

from __future__ import annotations

import operator
import weakref
from collections.abc import Callable, Iterator
from itertools import chain
from typing import NamedTuple, Protocol

import torch
from torch.optim import Optimizer

from .compile_guard import outside_compile
from .records import OptimizerTracker, ParamRecord, Phase


class GradientCensus(NamedTuple):
    """How an optimizer's gradients look just before a step, counted per tensor.

    `fresh`: accumulated since the last step. `missing`: `.grad is None`.
    `reused`: the very tensor the previous step consumed, unchanged, after a
    backward pass had produced it (stepping twice on one gradient). `cleared`:
    the consumed tensor, changed in place since (zeroed). `assigned`: a gradient
    that no backward pass produced (`p.grad = delta`, fp32 master copies, a
    meta-gradient written through `.data`): not judged. `unknown`: first seen
    mid-iteration, not judged. `longest_run`: the most backward passes
    accumulated into one gradient since it was last cleared (0 when unknown).
    `stale`: fresh gradients that were accumulated on top of a gradient an
    earlier step consumed, each with the version counter it had before the census
    remembered it as consumed. (A named tuple rather than a dataclass: it is built on
    every step, and cheaply.)
    """

    fresh: int
    missing: int
    reused: int
    cleared: int
    assigned: int
    unknown: int
    longest_run: int
    reused_names: tuple[str, ...]
    stale: tuple[tuple[ParamRecord, int], ...]


QUIET_AFTER = 2
"""Censuses in a row that must find the canonical loop before gradient hooks go quiet."""


class HookKeeper(Protocol):
    """What the census asks of the block that owns the gradient hooks."""

    def hook(self, param: torch.Tensor, record: ParamRecord) -> None:
        """Register `record`'s gradient hook (again)."""

    def quieten(self, record: ParamRecord) -> None:
        """Remove `record`'s gradient hook."""


def go_quiet(tracker: OptimizerTracker, hooks: HookKeeper) -> None:
    """Remove the gradient hooks of `tracker`'s tensors (see `take_census`)."""
    tracker.quiet = True
    for record in tracker.records:
        hooks.quieten(record)


def take_census(
    optimizer: Optimizer,
    tracker: OptimizerTracker,
    hooks: HookKeeper,
    quiet_after: int = 0,
) -> GradientCensus | None:
    """Classify every trainable gradient of `optimizer` before its step (no sync), and
    remember each one as consumed by this step.

    Remembering here rather than after the step is one pass over the parameters
    instead of two, on every step: the step does not change a gradient (stock
    optimizers never modify `.grad` in `step()`), so each gradient and its version
    counter are the same before and after it. Each gradient is remembered weakly,
    with its version, as `Phase.STEPPED` by `tracker`; stale gradients come with the
    version they had before this census (`GradientCensus.stale`). `None` stands for
    the census of a quiet canonical step, which has nothing to judge: every gradient
    fresh (or frozen), none counted by a hook, none stale.

    **Quiet hooks.** Once `quiet_after` (0: never) censuses in a row have found every
    gradient a new tensor that exactly one backward pass produced (the canonical
    `zero_grad()` loop, which sets gradients to `None`), the gradient hooks of this
    optimizer's tensors are removed and the census judges alone: `None` is missing, a
    new tensor is fresh, and the very tensor the last step consumed (something
    accumulated into it, zeroed it in place, or nothing happened) means the loop
    changed its ways: that gradient is left unjudged for this step and its hook comes
    back, so the hooks judge it again from the next backward pass on. A stale
    gradient that starts late is then found one step later; nothing is found that the
    hooks would not find. Where a gradient is assigned rather than produced by
    backward (`p.grad = t`), a quiet census counts it fresh, which can only hide
    findings (LL005 needs steps without fresh gradients), never make one.
    """
    groups = optimizer.param_groups
    params = (
        groups[0]["params"] if len(groups) == 1 else [*chain.from_iterable(map(_PARAMS, groups))]
    )
    pairs: Iterator[tuple[torch.Tensor, ParamRecord]] = zip(  # aligned by `tracker.layout`
        params, tracker.records, strict=False
    )
    new_ref = weakref.ref
    fresh = 0
    if tracker.quiet:
        # The quiet canonical step, nearly every step once hooks are quiet: each gradient
        # a new tensor (or `None` on a frozen parameter). The first that is not leaves
        # the rest to the full classification below, which starts from it.
        for param, record in pairs:
            grad = param.grad
            if grad is None:
                if param.requires_grad or not record.quiet:
                    break
                record.grad_ref = None
            else:
                known = record.grad_ref
                if not record.quiet or (known is not None and known() is grad):
                    break
                record.version = grad._version
                record.grad_ref = new_ref(grad)
                fresh += 1
            record.last_stepper = tracker
        else:
            tracker.calm += 1
            return None
        pairs = chain(((param, record),), pairs)  # the one it stopped at comes first
    missing = reused = cleared = assigned = unknown = longest = 0
    reused_names: list[str] | None = None  # created on first use: this runs on every step
    stale: list[tuple[ParamRecord, int]] | None = None
    canonical = True
    accumulated = Phase.ACCUMULATED
    unknown_phase = Phase.UNKNOWN
    stepped = Phase.STEPPED
    for param, record in pairs:
        grad = param.grad
        record.last_stepper = tracker
        if record.quiet:
            # No hook: a new tensor came from a backward pass. Its version is kept
            # for the clip check (a clip that finds the consumed tensor unchanged
            # comes after the step; a changed one had a backward pass since).
            if grad is None:
                if param.requires_grad:
                    missing += 1
                record.grad_ref = None
                continue
            record.version = grad._version
            known = record.grad_ref
            if known is None or known() is not grad:
                fresh += 1
                record.grad_ref = new_ref(grad)
                continue
            # The consumed tensor again: not the canonical loop any more.
            unknown += 1
            canonical = False
            hooks.hook(param, record)
            record.consumed = known
        elif grad is not None and record.phase is accumulated:
            # The common case, kept short (it runs for every parameter on every
            # step): a backward pass accumulated into this gradient since the last
            # step (only a hooked parameter's hook sets `ACCUMULATED`).
            fresh += 1
            if record.stale:
                if stale is None:
                    stale = []
                stale.append((record, record.version))
                record.stale = False
            run = record.run
            if run > longest:
                longest = run
            known = record.grad_ref
            if known is None or known() is not grad:
                record.grad_ref = known = new_ref(grad)
            if run != 1 or known is record.consumed:
                canonical = False  # accumulated over passes, or into the consumed tensor
            record.consumed = known
            record.version = grad._version
        elif grad is None:
            if param.requires_grad:
                missing += 1
                if not record.hooked:
                    hooks.hook(param, record)
                    canonical = False
            record.grad_ref = record.consumed = None
            record.stale = False
        else:
            canonical = False
            known = record.grad_ref
            same = known is not None and known() is grad
            version = grad._version
            judged = True
            if not record.hooked:
                if param.requires_grad:
                    hooks.hook(param, record)
                else:
                    judged = False  # a gradient on a frozen parameter: remembered only
            phase = record.phase
            if not judged:
                pass
            elif phase is unknown_phase:
                unknown += 1
            elif not same:
                assigned += 1
                record.assigned = True
            elif version != record.version:
                cleared += 1
            elif record.received:
                reused += 1
                if reused_names is None:
                    reused_names = []
                reused_names.append(record.name)
            else:
                assigned += 1
                record.assigned = True
            if not same:
                record.grad_ref = new_ref(grad)
            record.consumed = record.grad_ref
            record.version = version
            record.stale = False
        record.phase = stepped
    if canonical:
        tracker.calm += 1
        if quiet_after and tracker.calm >= quiet_after and not tracker.quiet:
            go_quiet(tracker, hooks)
    else:
        tracker.calm = 0
        tracker.quiet = False
    if not (missing or reused or cleared or assigned or unknown or longest) and stale is None:
        return None  # the quiet canonical step: nothing to judge, no tuple to build
    # `tuple.__new__` directly: a named tuple's own `__new__` is a Python function.
    return tuple.__new__(
        GradientCensus,
        (
            fresh,
            missing,
            reused,
            cleared,
            assigned,
            unknown,
            longest,
            () if reused_names is None else tuple(reused_names),
            () if stale is None else tuple(stale),
        ),
    )


def make_probe(record: ParamRecord) -> Callable[[torch.Tensor], None]:
    """A tensor hook that looks, once, at the values of the gradient a step consumed.

    Registered only on a parameter suspected of a stale gradient; it runs before
    the next backward pass accumulates, and keeps the count of non-zero entries
    as a device tensor (read, with one synchronisation, at the next step).
    """

    def probe_consumed_gradient(incoming: torch.Tensor) -> None:
        param = record.param_ref()
        if param is None or record.probe is not None:
            return
        old = param.grad
        known = record.grad_ref
        if old is None or known is None or known() is not old:
            return
        if old._version != record.version or old.is_sparse:
            return
        record.probe = torch.count_nonzero(old.detach())

    return outside_compile(probe_consumed_gradient)


param_version = operator.attrgetter("_version")
"""A tensor's version counter, read without a Python frame (mapped over parameters)."""
_PARAMS = operator.itemgetter("params")


def param_layout(optimizer: Optimizer) -> tuple[int, ...]:
    """How many tensors each param group holds: what `tracker.records` is aligned by
    (read on every step, so without a Python loop over the groups)."""
    return tuple(map(len, map(_PARAMS, optimizer.param_groups)))


def remember_versions(optimizer: Optimizer, tracker: OptimizerTracker) -> None:
    """Keep the parameters' version counters as this step left them (read without a
    Python loop per parameter).

    If a parameter's version moves before another optimizer first steps it, the
    weights were overwritten in between (a checkpoint restore, e.g. after
    Lightning's `lr_find`), so starting a new optimizer from zero is right
    (`state.earlier_stepper`). Aligned with `tracker.records`.
    """
    tracker.versions = list(
        map(param_version, chain.from_iterable(map(_PARAMS, optimizer.param_groups)))
    )
