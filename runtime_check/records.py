"""Per-session bookkeeping about parameters, optimizers and schedulers.

Everything here belongs to one `watch` block and is dropped when it ends. It
never holds a tensor strongly: gradients are remembered by weak reference and
version counter, optimizers and parameters by weak reference, so watching cannot
keep memory alive or change what the garbage collector does.
"""

from __future__ import annotations

import weakref
from enum import IntEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch.optim import Optimizer
    from torch.utils.hooks import RemovableHandle

    from .call_site import CallSite


class Phase(IntEnum):
    """What last happened to a parameter's gradient, as far as the hooks saw."""

    UNKNOWN = 0
    """Nothing seen yet (the parameter was first seen mid-iteration)."""
    ACCUMULATED = 1
    """A backward pass accumulated into the gradient since the last step."""
    STEPPED = 2
    """An optimizer step consumed the gradient and nothing accumulated since."""


class Verdict(IntEnum):
    """What a value probe found out about a gradient that a backward pass landed on
    after a step had consumed it (the version counter alone cannot tell)."""

    NONE = 0
    """Never suspected."""
    PENDING = 1
    """Suspected; the next backward pass looks at the consumed gradient's values."""
    STALE = 2
    """The consumed gradient still held values: never cleared (LL001)."""
    CLEARED_UNSEEN = 3
    """It was all zeros although its version never moved: cleared through `.data`."""
    ZEROED_BEFORE_STEP = 4
    """It was all zeros after an in-place change between backward and step (LL005)."""


class ParamRecord:
    """What the session knows about one parameter (or any optimized tensor).

    `grad_ref`/`version` remember the gradient tensor and its version counter at
    the last event: an in-place accumulation bumps the version by exactly one,
    `zero_()` bumps it again, `p.grad = None` replaces the tensor. Comparing them
    tells whether a gradient was cleared without ever reading its values (no
    device synchronisation).
    """

    __slots__ = (
        "assigned",
        "consumed",
        "grad_ref",
        "handle",
        "hooked",
        "is_model",
        "last_stepper",
        "moved",
        "name",
        "param_ref",
        "pending_site",
        "pending_step",
        "phase",
        "probe",
        "probe_handle",
        "quiet",
        "received",
        "run",
        "stale",
        "verdict",
        "version",
    )

    def __init__(self, param: torch.Tensor, name: str, *, is_model: bool) -> None:
        self.param_ref: weakref.ref[torch.Tensor] = weakref.ref(param)
        self.name = name
        self.is_model = is_model
        self.grad_ref: weakref.ref[torch.Tensor] | None = None
        self.version = -1
        self.phase = Phase.UNKNOWN
        self.run = 0
        self.received = False
        self.stale = False
        self.hooked = False
        self.handle: RemovableHandle | None = None
        """The gradient hook's handle, while one is registered."""
        self.quiet = False
        """Whether the gradient hook was removed because the loop clears gradients by
        setting them to `None` (see `gradients.take_census`)."""
        self.consumed: weakref.ref[torch.Tensor] | None = None
        """The `grad_ref` of the gradient the last step consumed."""
        self.last_stepper: OptimizerTracker | None = None
        self.assigned = False
        self.verdict = Verdict.NONE
        self.moved = False
        self.pending_step = 0
        self.pending_site: CallSite | None = None
        self.probe: torch.Tensor | None = None
        self.probe_handle: RemovableHandle | None = None


class OptimizerTracker:
    """What the session knows about one optimizer, keyed weakly by the optimizer.

    `records` is aligned with the flattened `param_groups` and rebuilt when the
    group layout changes (`add_param_group`). `attempts` counts steps including
    those a `GradScaler` skipped, which is what scheduler order is judged by.
    `judged_steps`/`cleared_steps` count the steps whose gradients were judged
    and those that found them all cleared (LL005 is reported over the majority).
    """

    __slots__ = (
        "__weakref__",
        "attempts",
        "built_at",
        "calm",
        "cleared_steps",
        "cuda",
        "depth",
        "generation",
        "had_state",
        "handles",
        "index",
        "judged_runs",
        "judged_steps",
        "label",
        "layout",
        "loaded",
        "opt_ref",
        "pending_order",
        "prior_steps",
        "quiet",
        "records",
        "scaler_mark",
        "setup",
        "short_runs",
        "short_site",
        "shortest_run",
        "state_checked",
        "state_len",
        "steps",
        "versions",
    )

    def __init__(self, optimizer: Optimizer, index: int, label: str) -> None:
        self.opt_ref: weakref.ref[Optimizer] = weakref.ref(optimizer)
        self.index = index
        self.label = label
        self.records: list[ParamRecord] = []
        self.layout: tuple[int, ...] = ()
        self.steps = 0
        self.attempts = 0
        self.prior_steps = False
        self.depth = 0
        self.calm = 0
        """How many censuses in a row found every gradient a new tensor from one backward
        pass (see `gradients.take_census`)."""
        self.quiet = False
        """Whether this optimizer's gradient hooks were made quiet."""
        self.had_state = False
        self.state_checked = False
        """Whether the state it held when the block followed it was judged then (restored
        before the block: `StepChecks.judge_held_state`), so its first step need not."""
        self.state_len = 0
        self.loaded = False
        self.cuda = False
        self.scaler_mark = -1
        self.short_runs = 0
        self.shortest_run = 0
        self.judged_runs = 0
        self.handles: list[RemovableHandle] = []
        self.judged_steps = 0
        self.cleared_steps = 0
        self.generation = 0
        self.setup: tuple[object, ...] = ()
        self.short_site: CallSite | None = None
        self.pending_order: list[tuple[str, str, CallSite | None]] = []
        self.versions: list[int] = []
        """The parameters' version counters after the last step, aligned with `records`
        (see `gradients.remember_versions`)."""
        self.built_at: CallSite | None = None
        """The user's line that built the optimizer (when a block saw it built)."""


class SchedulerTracker:
    """What the session knows about one LR scheduler: its label and its last step."""

    __slots__ = ("label", "seen_attempts", "steps")

    def __init__(self, label: str) -> None:
        self.label = label
        self.seen_attempts: int | None = None
        self.steps = 0
