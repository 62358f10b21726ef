"""Accumulation not scaled (LL013): N backward passes per step, the loss never divided by N.

Accumulating gradients over N micro-batches sums them; unless each loss is
divided by N the step is N times larger than with one large batch. At run time
the counts are exact (backward passes between two optimizer steps) and the loss
graph shows the scaling: a loss handed to `backward()` straight from a loss
function (`NllLossBackward0`, `MseLossBackward0`, a `.mean()`) was not divided;
one whose last operation is a division (`DivBackward0`, also under a
GradScaler's multiplication) was. Anything else (a multiplication alone, a sum
of losses) cannot be told apart from a deliberate weighting and is listed in
`report.unchecked` instead of guessed. The scaling is read from a window's
second pass on: the passes of an accumulation window all come from one
`backward()` call, so they compute their loss the same way, and a step that
consumed a single pass (the common case) never pays for reading the graph.

Only one `backward()` call repeated within each step counts as accumulation:
two different losses backpropagated before one step (two domains, two heads)
are a sum on purpose. A call is told by its code object and instruction offset,
compared by identity (hashing a code object reads all of its bytecode, and the
line number needs a walk of the line table): this runs on every backward pass
of a block's first steps. A loop whose first `_SETTLED` steps each consumed one
backward pass does not accumulate; from then on the block stops listening
(no per-step cost).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim import Optimizer

from looplint.identity import ACCUMULATED_LOSS_NOT_SCALED

from .call_site import CallSite, user_call_site
from .records import OptimizerTracker
from .report import IssueLog

_UNSCALED = re.compile(r"(Loss|Entropy\w*|KlDiv|Mean)Backward\d*$")
_SCALED = "DivBackward"
_SCALE = "MulBackward"
_SETTLED = 2


_KINDS: dict[type, str] = {}
"""The scaling a loss's last operation tells, per autograd node type (read once per type)."""


def _kind_of(node_type: type) -> str:
    kind = _KINDS.get(node_type)
    if kind is None:
        name = node_type.__name__
        if name.startswith(_SCALED):
            kind = "scaled"
        elif name.startswith(_SCALE):
            kind = "product"
        elif _UNSCALED.search(name):
            kind = "unscaled"
        else:
            kind = name
        _KINDS[node_type] = kind
    return kind


def scaling_of(tensors: Any) -> str:
    """`"scaled"`, `"unscaled"` or the name of the operation that leaves it open, for
    what `torch.autograd.backward` was given: a loss, or a sequence of tensors (several
    losses backpropagated together are a sum, which leaves it open)."""
    if isinstance(tensors, torch.Tensor):
        loss = tensors
    elif isinstance(tensors, Sequence) and len(tensors) == 1:
        loss = tensors[0]
    else:
        return "several tensors"
    node = getattr(loss, "grad_fn", None)
    if node is None:
        return "none"
    kind = _kind_of(type(node))
    if kind != "product":
        return kind
    inner = [_kind_of(type(n)) for n, _ in node.next_functions if n is not None]
    return "scaled" if "scaled" in inner else type(node).__name__


@dataclass(slots=True)
class _Window:
    """The backward passes since the last optimizer step."""

    count: int = 0
    code: object = None
    """The code object of the first `backward()` call (compared by identity)."""
    offset: int = -1
    """Its instruction offset in that code (`f_lasti`): one call, one offset."""
    one_call: bool = True
    """Whether every pass came from that same call."""
    kinds: set[str] = field(default_factory=set)
    site: CallSite | None = None
    in_step: bool = False


class AccumulationScale:
    """Counts backward passes per step and reads how each loss was scaled."""

    def __init__(
        self,
        issues: IssueLog,
        note_unchecked: Callable[[str], None],
        settled: Callable[[], None],
    ) -> None:
        """`settled` is called once, when the loop is found not to accumulate: from then
        on neither backward passes nor steps need to be reported here."""
        self._issues = issues
        self._note_unchecked = note_unchecked
        self._settled = settled
        self._window = _Window()
        self._accumulating: list[_Window] = []
        self._single = 0
        self.listening = True

    def on_backward(self, loss: Any, code: object, offset: int, in_step: bool) -> None:
        """A backward pass of `loss` (what `torch.autograd.backward` was given) is about
        to run, called at instruction `offset` of `code`.

        Inside a step (a closure) only the first pass counts: LBFGS re-evaluates
        its closure for a line search, which is no micro-batch.
        """
        window = self._window
        if in_step:
            if window.in_step:
                return
            window.in_step = True
        count = window.count + 1
        window.count = count
        if count == 1:
            # Most windows end here (one pass per step); reading the loss's graph
            # (`loss.grad_fn` builds a Python object for its node) waits for a second
            # pass, from which on every pass's scaling is read.
            window.code = code
            window.offset = offset
            return
        window.kinds.add(scaling_of(loss))
        if code is not window.code or offset != window.offset:
            window.one_call = False
        if window.site is None:
            window.site = user_call_site()

    def on_step(self, optimizer: Optimizer, tracker: OptimizerTracker) -> None:
        """An optimizer stepped: close the window of backward passes it consumed.

        A window is accumulation only when the gradients summed exactly its passes:
        cleared in between, scaling would not matter; never cleared, it is LL001's
        stale gradient, not a choice of scale.
        """
        window = self._window
        if window.count == 0:
            return
        if window.count == 1:  # the common case: reuse the window, allocate nothing
            self._single += 1
            if self._single >= _SETTLED and not self._accumulating and self.listening:
                self.listening = False
                self._settled()
            window.count = 0
            window.code = None
            window.kinds.clear()
            window.in_step = False
            return
        if window.one_call and any(record.run == window.count for record in tracker.records):
            self._accumulating.append(window)
        self._window = _Window()

    def conclude(self) -> None:
        """Report unscaled accumulation seen in at least two full windows, or say it is open."""
        windows = self._accumulating
        if len(windows) < 2 or self._single > len(windows):
            return
        kinds = set().union(*(window.kinds for window in windows))
        sizes = sorted({window.count for window in windows})
        every = "/".join(str(size) for size in sizes)
        if kinds == {"unscaled"}:
            self._issues.note(
                ACCUMULATED_LOSS_NOT_SCALED,
                "accumulated-loss-not-scaled",
                f"the optimizer stepped once every {every} backward passes ({len(windows)} "
                "times) and each loss came straight from the loss function, never divided by "
                f"the number of passes: every step is {every} times too large. Divide the loss "
                "by the accumulation steps before `backward()`.",
                group="accumulation",
                site=windows[0].site,
            )
        elif "scaled" not in kinds:
            opened = ", ".join(sorted(kind for kind in kinds if kind != "unscaled"))
            self._note_unchecked(
                f"LL013 accumulation scaling is not judged: the optimizer stepped once every "
                f"{every} backward passes, and the loss handed to `backward()` ends in "
                f"{opened}, which may or may not divide it."
            )
