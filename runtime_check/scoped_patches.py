"""The only patches the checker makes: LR scheduler and GradScaler `step`, scoped to `watch`.

Torch has no hook for a scheduler step nor for a step that `GradScaler` skipped,
and both are needed to judge scheduler order without torch's own false alarm.
The class attributes are wrapped while at least one `watch` block is open and
restored when the last one closes (a reference count, so nested and overlapping
blocks restore correctly). `optimizer.step` is never touched: LR schedulers wrap
it themselves, and replacing it would fight them.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau


class StepListener(Protocol):
    """What a `watch` session offers the patched methods."""

    def on_scheduler_step(self, scheduler: Any) -> None:
        """A scheduler is about to step (outermost call only, never its constructor's)."""

    def before_scaler_step(self, optimizer: Optimizer) -> None:
        """`GradScaler.step(optimizer)` is about to run."""

    def after_scaler_step(self, optimizer: Optimizer) -> None:
        """`GradScaler.step(optimizer)` returned (the optimizer step may have been skipped)."""

    def on_inner_report(self, reported: list[tuple[str, str, object]]) -> None:
        """A block opened inside this one reported `(code, check, optimizer)` findings."""


_listeners: weakref.WeakSet[StepListener] = weakref.WeakSet()
_originals: list[tuple[type, Any]] = []
_users = 0
_lock = threading.Lock()
_nesting = threading.local()


def attach(listener: StepListener) -> None:
    """Start telling `listener` about scheduler and scaler steps; patch on first use."""
    global _users
    with _lock:
        if _users == 0:
            _install()
        _users += 1
        _listeners.add(listener)


def detach(listener: StepListener) -> None:
    """Stop telling `listener`; restore the original methods when nobody listens."""
    global _users
    with _lock:
        _listeners.discard(listener)
        _users -= 1
        if _users == 0:
            _restore()


def listeners() -> tuple[StepListener, ...]:
    """The `watch` sessions open right now (weakly held: this is no registry of objects)."""
    with _lock:
        return tuple(_listeners)


def is_patched() -> bool:
    """Whether any class attribute is currently wrapped (for leak tests)."""
    return bool(_originals)


def _scheduler_classes() -> Iterator[type]:
    seen: set[type] = set()
    pending: list[type] = [LRScheduler, ReduceLROnPlateau]
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        pending.extend(cls.__subclasses__())
        if "step" in cls.__dict__:
            yield cls


def _install() -> None:
    for cls in _scheduler_classes():
        original = cls.__dict__["step"]
        _originals.append((cls, original))
        type.__setattr__(cls, "step", _wrap_scheduler_step(original))
    scaler_cls = torch.amp.GradScaler
    original = scaler_cls.__dict__["step"]
    _originals.append((scaler_cls, original))
    type.__setattr__(scaler_cls, "step", _wrap_scaler_step(original))


def _restore() -> None:
    while _originals:
        cls, original = _originals.pop()
        type.__setattr__(cls, "step", original)


def _depth() -> int:
    return int(getattr(_nesting, "depth", 0))


_HAS_INITIAL_FLAG = hasattr(LRScheduler, "_is_initial")
"""torch >= 2.2 marks the constructor's own `step()` with `_is_initial`; older versions
only with `_step_count == 0`, which `CosineAnnealingWarmRestarts.step` never increments."""


def _is_constructor_step(scheduler: Any) -> bool:
    if _HAS_INITIAL_FLAG and isinstance(scheduler, LRScheduler):
        return bool(getattr(scheduler, "_is_initial", False))
    return bool(getattr(scheduler, "_is_initial", False)) or (
        getattr(scheduler, "_step_count", 1) == 0
    )


def _wrap_scheduler_step(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def step(self: Any, *args: Any, **kwargs: Any) -> Any:
        depth = _depth()
        if depth == 0 and not _is_constructor_step(self):
            for listener in tuple(_listeners):
                listener.on_scheduler_step(self)
        _nesting.depth = depth + 1
        try:
            return original(self, *args, **kwargs)
        finally:
            _nesting.depth = depth

    return step


def _wrap_scaler_step(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def step(self: Any, optimizer: Optimizer, *args: Any, **kwargs: Any) -> Any:
        listeners = tuple(_listeners)
        for listener in listeners:
            listener.before_scaler_step(optimizer)
        result = original(self, optimizer, *args, **kwargs)
        for listener in listeners:
            listener.after_scaler_step(optimizer)
        return result

    return step
