"""Which optimizers and parameters a `watch` block follows, and how each is found again.

A step hook receives an optimizer; the block needs that optimizer's tracker (or
knows it is a wrapper of another, or cannot be followed at all) and, for every
tensor it updates, a `ParamRecord` with its gradient hook. This module keeps
that bookkeeping, weakly keyed so watching never keeps a tensor or an optimizer
alive, and nothing else: no judging happens here.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from types import FrameType
from typing import Any

import torch
from torch.nn.parameter import UninitializedTensorMixin  # type: ignore[attr-defined]
from torch.optim import Optimizer
from torch.utils.hooks import RemovableHandle
from torch.utils.weak import WeakIdKeyDictionary

from .accumulation_hook import make_accumulate_hook
from .adoption import resolve
from .call_site import CallSite
from .compile_guard import outside_compile
from .gradients import param_layout
from .records import OptimizerTracker, ParamRecord
from .state import holds_state


def optimizer_variables(frame: FrameType) -> dict[int, str]:
    """The names the caller's local variables give its optimizers (`id` -> name)."""
    try:
        return {
            id(value): key for key, value in frame.f_locals.items() if isinstance(value, Optimizer)
        }
    finally:
        del frame


def _no_optimizer() -> None:
    return None


_NOBODY: tuple[Callable[[], Any], None] = (_no_optimizer, None)
"""`Following.last` before any look-up: a weak reference to nothing, so that reading it
needs no test for `None`."""


class Unfollowed:
    """What the checker remembers about an object it does not follow itself.

    A wrapper (accelerate's `AcceleratedOptimizer`, timm's `Lookahead`) points at
    the tracker of the optimizer it forwards to; an object that cannot be
    followed at all points at nothing.
    """

    __slots__ = ("target",)

    def __init__(self, target: OptimizerTracker | None) -> None:
        self.target = target


class Following:
    """The trackers and parameter records of one block, and the hooks they installed."""

    def __init__(
        self,
        names: dict[int, str],
        note_unchecked: Callable[[str], None],
        after_load: Callable[[Optimizer], None],
        on_compiled_autograd: Callable[[], None],
        built_at: Callable[[Optimizer], CallSite | None],
    ) -> None:
        self.names = names
        self._built_at = built_at
        self._records: dict[int, ParamRecord] = {}
        """Records by the `id` of their tensor (checked against the record's weak
        reference: an `id` can be reused once its tensor is gone). A plain dict, read
        on entry and on every clip call: a weakly keyed one costs microseconds a look-up."""
        self.trackers: WeakIdKeyDictionary = WeakIdKeyDictionary()
        self.all_trackers: list[OptimizerTracker] = []
        self.model_records: list[ParamRecord] = []
        self.handles: list[RemovableHandle] = []
        self._note_unchecked = note_unchecked
        self._after_load = after_load
        self._on_compiled_autograd = on_compiled_autograd
        self.last: tuple[Callable[[], Any], OptimizerTracker | None] = _NOBODY
        """The optimizer of the last look-up (weakly) and its tracker: the step hooks
        test it inline (`last[0]() is optimizer`) and `tracker_for` answers from it,
        without the weakly keyed look-up."""

    def known_record(self, param: torch.Tensor) -> ParamRecord | None:
        """The record of `param`, if the block has one."""
        record = self._records.get(id(param))
        if record is None or record.param_ref() is not param:
            return None
        return record

    def record_for(self, param: torch.Tensor, name: str, *, is_model: bool) -> ParamRecord:
        """The record of `param`, created (and its gradient hooked) on first sight."""
        record = self.known_record(param)
        return record if record is not None else self._new_record(param, name, is_model)

    def _new_record(self, param: torch.Tensor, name: str, is_model: bool) -> ParamRecord:
        record = ParamRecord(param, name, is_model=is_model)
        self._records[id(param)] = record
        if param.requires_grad:
            self.hook(param, record)
        return record

    def hook(self, param: torch.Tensor, record: ParamRecord) -> None:
        """Watch the gradients that land on `param` (a leaf that is materialised)."""
        if isinstance(param, UninitializedTensorMixin):
            # A lazy module's parameter: materialised in place (same object) by the
            # first forward, then hooked by the first step's census.
            return
        record.hooked = True
        if not param.is_leaf:
            return
        hook = make_accumulate_hook(record, self._on_compiled_autograd)
        handle = param.register_post_accumulate_grad_hook(hook)  # type: ignore[no-untyped-call]
        record.handle = handle
        record.quiet = False
        self.handles.append(handle)

    def quieten(self, record: ParamRecord) -> None:
        """Remove `record`'s gradient hook: the census judges its gradients alone."""
        if record.handle is not None:
            record.handle.remove()
            record.handle = None
            record.quiet = True

    def tracker_for(self, optimizer: Optimizer) -> OptimizerTracker | None:
        """The tracker of an optimizer whose own step is checked; `None` for wrappers and
        optimizers looplint cannot follow (their steps are ignored, never a crash)."""
        last = self.last
        if last[0]() is optimizer:
            return last[1]
        entry: OptimizerTracker | Unfollowed | None = self.trackers.get(optimizer)  # type: ignore[no-untyped-call]
        if entry is None:
            entry = self._adopt(optimizer)
        tracker = entry if isinstance(entry, OptimizerTracker) else None
        try:
            self.last = (weakref.ref(optimizer), tracker)
        except TypeError:
            self.last = _NOBODY
        return tracker

    def stepping_tracker(self, candidate: Any) -> OptimizerTracker | None:
        """The tracker of the optimizer that really steps for `candidate` (a wrapper's inner)."""
        entry: OptimizerTracker | Unfollowed | None
        try:
            entry = self.trackers.get(candidate)  # type: ignore[no-untyped-call]
        except TypeError:  # not weak-referenceable: certainly not an optimizer
            entry = None
        if entry is None:
            entry = self._adopt(candidate)
        return entry.target if isinstance(entry, Unfollowed) else entry

    def forget(self, subject: Any) -> None:
        """Stop following `subject` (after an internal error while checking it)."""
        self.last = _NOBODY
        try:
            self.trackers[subject] = Unfollowed(None)
        except TypeError:
            pass

    def rebuild(self, optimizer: Optimizer, tracker: OptimizerTracker) -> None:
        """Align the tracker's records with the optimizer's current param groups."""
        records: list[ParamRecord] = []
        for group_index, group in enumerate(optimizer.param_groups):
            for param_index, param in enumerate(group["params"]):
                record = self.known_record(param)  # the model's: named already
                if record is None:
                    name = f"{tracker.label} param_groups[{group_index}][{param_index}]"
                    record = self._new_record(param, name, is_model=False)
                records.append(record)
                if param.is_cuda:
                    tracker.cuda = True
        tracker.records = records
        tracker.layout = param_layout(optimizer)
        tracker.quiet = False  # new records come hooked: the census per parameter again

    def remove_hooks(self) -> None:
        """Remove every hook the block installed through its trackers and records."""
        for handle in self.handles:
            handle.remove()
        for tracker in self.all_trackers:
            for handle in tracker.handles:
                handle.remove()
            tracker.handles.clear()
        self.handles.clear()
        self.last = _NOBODY

    def _adopt(self, candidate: Any) -> OptimizerTracker | Unfollowed:
        """Start following an optimizer; never raises into training.

        A wrapper is remembered as an alias of the optimizer it forwards to (whose
        own steps are the ones checked); anything else that cannot be followed is
        listed once in `report.unchecked`.
        """
        resolution = resolve(candidate)
        entry: OptimizerTracker | Unfollowed
        if resolution.target is None:
            self._note_unchecked(f"{resolution.reason}: its steps are not checked.")
            entry = Unfollowed(None)
        elif resolution.target is not candidate:
            variable = self.names.get(id(candidate))
            if variable is not None:
                self.names.setdefault(id(resolution.target), variable)
            entry = Unfollowed(self.stepping_tracker(resolution.target))
        else:
            entry = self._follow(resolution.target)
        try:
            self.trackers[candidate] = entry
        except TypeError:
            pass
        return entry

    def _follow(self, optimizer: Optimizer) -> OptimizerTracker | Unfollowed:
        index = len(self.all_trackers)
        label = f"{type(optimizer).__name__} #{index}"
        variable = self.names.get(id(optimizer))
        if variable is not None:
            label += f" ({variable})"
        tracker = OptimizerTracker(optimizer, index, label)
        tracker.built_at = self._built_at(optimizer)
        try:
            tracker.prior_steps = bool(getattr(optimizer, "_opt_called", False))
            tracker.had_state = holds_state(optimizer)
            tracker.state_len = len(optimizer.state)
            self.rebuild(optimizer, tracker)
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
            return Unfollowed(None)
        self.all_trackers.append(tracker)
        # The optimizer about to step is most often the one just followed: its first
        # step then skips the weakly keyed look-up.
        self.last = (tracker.opt_ref, tracker)
        return tracker
