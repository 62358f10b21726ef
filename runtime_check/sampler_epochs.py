"""`set_epoch` never called (LL015): a `DistributedSampler` shuffles every epoch the same way.

A shuffling `DistributedSampler` seeds its permutation with `seed + epoch`; if
`set_epoch(epoch)` is never called, every epoch sees the data in the same order.
The scoped wrapper of `DistributedSampler.__iter__` reports each pass over the
sampler and its end. A pass is a new *epoch* only when the previous pass ran to
its end and the optimizer stepped during it, so peeking at one batch
(`next(iter(loader))`) before training is not mistaken for an epoch.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass

from looplint.identity import DISTRIBUTED_SAMPLING

from .call_site import user_call_site
from .report import IssueLog


@dataclass(slots=True)
class _Pass:
    epoch: int
    steps_at_start: int
    finished: bool = False


class SamplerEpochs:
    """The passes over each shuffling `DistributedSampler` seen while a block is open."""

    def __init__(self, issues: IssueLog, steps: Callable[[], int]) -> None:
        self._issues = issues
        self._steps = steps
        self._passes: weakref.WeakKeyDictionary[object, _Pass] = weakref.WeakKeyDictionary()

    def on_pass(self, sampler: object) -> None:
        """A pass over `sampler` starts (its `__iter__` was called)."""
        if not getattr(sampler, "shuffle", False):
            return
        epoch = int(getattr(sampler, "epoch", 0))
        steps = self._steps()
        previous = self._passes.get(sampler)
        if (
            previous is not None
            and previous.finished
            and previous.epoch == epoch
            and steps > previous.steps_at_start
        ):
            self._issues.note(
                DISTRIBUTED_SAMPLING,
                "set-epoch-never-called",
                f"a shuffling `{type(sampler).__name__}` starts another epoch with "
                f"`epoch={epoch}` again, so every epoch sees the same order. Call "
                "`sampler.set_epoch(epoch)` at the start of each epoch.",
                group=f"sampler {id(sampler)}",
                site=user_call_site(),
            )
        self._passes[sampler] = _Pass(epoch, steps)

    def on_pass_end(self, sampler: object) -> None:
        """The pass over `sampler` ran to its end."""
        current = self._passes.get(sampler)
        if current is not None:
            current.finished = True
