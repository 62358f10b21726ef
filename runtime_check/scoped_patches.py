"""The only patches the checker makes, scoped to `watch`: where torch offers no hook.

Torch has no hook for a scheduler step, a step that `GradScaler` skipped, an
optimizer being built, a gradient clip, a pass over a `DistributedSampler` or a
`backward()` call, and the checks need each of them. Backward passes are heard
through the module function `torch.autograd.backward`, which `Tensor.backward`
calls (and some code calls directly), never through `torch.Tensor` itself:
setting an attribute on a class invalidates the interpreter's caches for it and
every subclass (Python 3.12+ also caps how often a class may be re-cached), and
every tensor operation in training goes through `torch.Tensor`. These attributes are
wrapped while at least one `watch` block is open and restored when the last one
closes (a reference count, so nested and overlapping blocks restore correctly).
A wrapper that outlives the block (a script that imported `clip_grad_value_`
while it was patched) only calls the original once nobody listens.
`optimizer.step` is never touched: LR schedulers wrap it themselves, and
replacing it would fight them.

torch's own "`lr_scheduler.step()` before `optimizer.step()`" warning is kept
quiet while a block is open: LL004 judges the same order, counts the steps a
GradScaler skipped (where torch's check is a false alarm) and points at the
user's line, whereas torch's warning, issued from inside the wrapper, would
name this file.
"""

from __future__ import annotations

import functools
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import torch
from torch.nn.utils import clip_grad
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from torch.utils.data.distributed import DistributedSampler

is_compiling = torch.compiler.is_compiling
_AUTOGRAD = torch.autograd
_TENSOR_BACKWARD = torch.Tensor.backward.__code__
"""The code of torch's `Tensor.backward`, which calls `torch.autograd.backward`."""
_CLIP_VALUE = clip_grad.clip_grad_value_
_CLIP_WITH_NORM = getattr(clip_grad, "_clip_grads_with_norm_", None)
_CLIP_ENTRY_POINTS = (
    (clip_grad, "_clip_grads_with_norm_"),  # what `clip_grad_norm_` calls, however imported
    (torch.nn.utils, "clip_grads_with_norm_"),  # accelerate's `clip_grad_norm_`
    (clip_grad, "clip_grad_value_"),
    (torch.nn.utils, "clip_grad_value_"),
)
"""The module attributes through which gradients are clipped (torch >= 2.6 splits the
norm's computation from the clip; older versions are left unpatched)."""


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

    def on_optimizer_built(self, optimizer: Optimizer) -> None:
        """`Optimizer.__init__` completed for `optimizer`."""

    def on_clip(self, parameters: list[torch.Tensor], limit: float | None) -> None:
        """A gradient clip is about to run on `parameters`."""

    def on_sampler_pass(self, sampler: Any) -> None:
        """A pass over a `DistributedSampler` starts."""

    def on_sampler_pass_end(self, sampler: Any) -> None:
        """A pass over a `DistributedSampler` ran to its end."""

    def on_backward(self, tensors: Any, code: object, offset: int) -> None:
        """`torch.autograd.backward(tensors)` is about to run (directly, or for
        `loss.backward()`), called at instruction `offset` of the caller's `code`."""


_listeners: weakref.WeakSet[StepListener] = weakref.WeakSet()
_snapshot: tuple[weakref.ref[StepListener], ...] = ()
"""The open blocks as weak references, rebuilt on attach/detach: the wrappers read this
plain tuple (iterating a `WeakSet` costs microseconds)."""
_hearing: tuple[weakref.ref[StepListener], ...] = ()
"""The open blocks still told of backward passes (a block leaves it for good with
`stop_hearing_backward`): once every block has stopped listening, `torch.autograd.backward`
is torch's own again (`_wrap_backward_while_heard`)."""
_originals: list[tuple[Any, str, Any]] = []
"""`(owner, attribute, original)` for every patched class or module attribute except
`torch.autograd.backward`, which comes and goes on its own (`_backward_original`)."""
_backward_original: Any = None
"""torch's own `torch.autograd.backward` while it is wrapped (`_wrap_backward_while_heard`)."""
_users = 0
_lock = threading.Lock()
_nesting = threading.local()


def attach(listener: StepListener) -> None:
    """Start telling `listener` about scheduler and scaler steps; patch on first use."""
    global _users, _snapshot, _hearing
    with _lock:
        if _users == 0:
            _install()
        _users += 1
        _listeners.add(listener)
        ref = weakref.ref(listener)  # a new listener hears everything: no rebuild needed
        _snapshot = (*_snapshot, ref)
        _hearing = (*_hearing, ref)
        _wrap_backward_while_heard()


def detach(listener: StepListener) -> None:
    """Stop telling `listener`; restore the original methods when nobody listens."""
    global _users
    with _lock:
        _listeners.discard(listener)
        _refresh()
        _users -= 1
        if _users == 0:
            _restore()
        else:
            _wrap_backward_while_heard()


def stop_hearing_backward(listener: StepListener) -> None:
    """Stop calling `listener.on_backward` (it has learnt what it needed from them).

    Called inside a training step, so it only drops the listener from the tuple the
    wrapper reads (nothing else remembers who stopped listening)."""
    global _hearing
    with _lock:
        _hearing = tuple(ref for ref in _hearing if ref() is not listener)
        _wrap_backward_while_heard()


def _wrap_backward_while_heard() -> None:
    """Keep `torch.autograd.backward` wrapped exactly while an open block listens to
    backward passes: once none does, training's `backward()` calls go straight to
    torch's own (set back once per block, instead of a wrapper frame on every call)."""
    global _backward_original
    if _hearing and _backward_original is None and _users:
        original = _AUTOGRAD.__dict__["backward"]
        _backward_original = original
        _AUTOGRAD.backward = _wrapper_for(original, _wrap_backward)
    elif _backward_original is not None and not (_hearing and _users):
        _AUTOGRAD.backward = _backward_original
        _backward_original = None


def _refresh() -> None:
    """Drop closed and collected blocks from the tuples the wrappers read."""
    global _snapshot, _hearing
    _snapshot = tuple(weakref.ref(listener) for listener in _listeners)
    _hearing = tuple(
        ref for ref in _hearing if (listener := ref()) is not None and listener in _listeners
    )


def _open() -> tuple[StepListener, ...]:
    """The listeners alive right now, without taking the lock (read by every wrapper)."""
    return tuple(listener for ref in _snapshot if (listener := ref()) is not None)


def listeners() -> tuple[StepListener, ...]:
    """The `watch` sessions open right now (weakly held: this is no registry of objects)."""
    with _lock:
        return tuple(_listeners)


def is_patched() -> bool:
    """Whether any class attribute is currently wrapped (for leak tests)."""
    return bool(_originals) or _backward_original is not None


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


_wrappers: dict[Any, Any] = {}
"""The wrapper made for each original, kept for the next block: entering a block then
builds no function (a training run enters once, a test suite thousands of times)."""


def _wrapper_for(original: Any, wrap: Callable[[Any], Any]) -> Any:
    wrapper = _wrappers.get(original)
    if wrapper is None:
        wrapper = _wrappers[original] = wrap(original)
    return wrapper


def _patch(owner: Any, attribute: str, wrap: Callable[[Any], Any]) -> None:
    original = owner.__dict__[attribute]
    _originals.append((owner, attribute, original))
    setattr(owner, attribute, _wrapper_for(original, wrap))


def _install() -> None:
    for cls in _scheduler_classes():
        _patch(cls, "step", _wrap_scheduler_step)
    _patch(torch.amp.GradScaler, "step", _wrap_scaler_step)
    _patch(Optimizer, "__init__", _wrap_optimizer_init)
    for owner, attribute in _CLIP_ENTRY_POINTS:
        original = owner.__dict__.get(attribute)
        if original is None:
            continue
        if original is _CLIP_WITH_NORM:
            _patch(owner, attribute, _wrap_clip_with_norm)
        elif original is _CLIP_VALUE:
            _patch(owner, attribute, _wrap_clip_value)
    _patch(DistributedSampler, "__iter__", _wrap_sampler_iter)


def _restore() -> None:
    while _originals:
        owner, attribute, original = _originals.pop()
        setattr(owner, attribute, original)
    _wrap_backward_while_heard()  # nobody uses the patches any more: set back too


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
        listeners = _open()
        if depth == 0 and not _is_constructor_step(self):
            for listener in listeners:
                listener.on_scheduler_step(self)
        _nesting.depth = depth + 1
        quieted = _quiet_torch_order_warning(self) if listeners else None
        try:
            return original(self, *args, **kwargs)
        finally:
            _nesting.depth = depth
            if quieted is not None:
                _restore_order_flag(*quieted)

    return step


_ABSENT = object()


def _quiet_torch_order_warning(scheduler: Any) -> tuple[Any, Any] | None:
    """Mark the optimizer as stepped for the one call where torch would warn about order.

    torch warns when a scheduler's first `step()` finds its optimizer's
    `_opt_called` flag unset (the flag its own `optimizer.step` wrapper sets).
    The flag is restored right after the call, so nothing else sees it.
    """
    optimizer = getattr(scheduler, "optimizer", None)
    if getattr(scheduler, "_step_count", None) != 1 or optimizer is None:
        return None
    previous = getattr(optimizer, "__dict__", {}).get("_opt_called", _ABSENT)
    if previous is True:
        return None
    try:
        optimizer._opt_called = True
    except AttributeError:
        return None
    return optimizer, previous


def _restore_order_flag(optimizer: Any, previous: Any) -> None:
    if previous is _ABSENT:
        optimizer.__dict__.pop("_opt_called", None)
    else:
        optimizer._opt_called = previous


def _wrap_optimizer_init(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def __init__(self: Optimizer, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        for listener in _open():
            listener.on_optimizer_built(self)

    return __init__


def _wrap_backward(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
        if _hearing and not is_compiling():
            caller = sys._getframe(1)
            if caller.f_code is _TENSOR_BACKWARD and caller.f_back is not None:
                caller = caller.f_back  # `loss.backward()`: the user's call is one out
            code = caller.f_code
            offset = caller.f_lasti
            del caller
            for ref in _hearing:
                listener = ref()
                if listener is not None:
                    listener.on_backward(tensors, code, offset)
        return original(tensors, *args, **kwargs)

    return backward


def _wrap_clip_with_norm(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def clip(parameters: Any, max_norm: float, *args: Any, **kwargs: Any) -> Any:
        listeners = () if torch.compiler.is_compiling() else _open()
        if listeners:
            parameters = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
            for listener in listeners:
                listener.on_clip(parameters, float(max_norm))
        return original(parameters, max_norm, *args, **kwargs)

    return clip


def _wrap_clip_value(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def clip(parameters: Any, clip_value: float, *args: Any, **kwargs: Any) -> Any:
        listeners = () if torch.compiler.is_compiling() else _open()
        if listeners:
            parameters = [parameters] if isinstance(parameters, torch.Tensor) else list(parameters)
            for listener in listeners:
                listener.on_clip(parameters, float(clip_value))
        return original(parameters, clip_value, *args, **kwargs)

    return clip


def _wrap_sampler_iter(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def __iter__(self: Any) -> Iterator[Any]:
        listeners = _open()
        for listener in listeners:
            listener.on_sampler_pass(self)
        indices = original(self)
        if not listeners:
            return indices  # type: ignore[no-any-return]
        return _until_the_end(self, indices, listeners)

    return __iter__


def _until_the_end(
    sampler: Any, indices: Iterator[Any], listeners: tuple[StepListener, ...]
) -> Iterator[Any]:
    yield from indices
    for listener in listeners:
        listener.on_sampler_pass_end(sampler)


def _wrap_scaler_step(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def step(self: Any, optimizer: Optimizer, *args: Any, **kwargs: Any) -> Any:
        listeners = _open()
        for listener in listeners:
            listener.before_scaler_step(optimizer)
        result = original(self, optimizer, *args, **kwargs)
        for listener in listeners:
            listener.after_scaler_step(optimizer)
        return result

    return step
