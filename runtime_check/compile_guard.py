"""Keep the checker's hooks out of `torch.compile` graphs, at no cost in eager runs.

A compiled optimizer step (or compiled autograd) would otherwise trace the hook
bodies and recompile whenever the Python state they read changes, i.e. every
step. `torch.compiler.disable` makes them run eagerly instead, but its wrapper
costs about 0.7 µs per call (it swaps dynamo's frame callback out and back in
and asks whether an export is running), and the hooks run several times per
step. So each hook gets a gate that dynamo treats exactly like a
`torch.compiler.disable`d function (it carries the same marker, so a trace that
reaches it breaks the graph and runs it eagerly) and whose own frame dynamo is
told to skip. Run eagerly, the gate calls the hook directly when no dynamo frame
callback is installed (a plain eager run) and through `torch.compiler.disable`
otherwise, so nothing the hook calls is ever compiled.

The hottest hooks (the optimizer step hooks and the per-parameter gradient
hook) are their own gate: they open with `if frame_callback() is not None:
return <their disabled twin>(...)` and are registered through `self_gated`,
which gives them the markers and the skipped frame. A gate of its own saves a
Python frame per call, and the hooks run inside every training step, where
each frame's cold cache lines cost more than its bytecode.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, TypeVar

import torch

HookT = TypeVar("HookT", bound=Callable[..., Any])


def _mark(gate: Callable[..., Any]) -> None:
    """Put on `gate` the markers `torch.compiler.disable` puts on its wrapper: a trace
    that reaches the gate breaks the graph instead of inlining it."""
    gate._torchdynamo_disable = True  # type: ignore[attr-defined]
    gate._torchdynamo_disable_recursive = True  # type: ignore[attr-defined]
    gate._torchdynamo_disable_msg = "looplint runtime check hook"  # type: ignore[attr-defined]


def _gated(hook: Callable[..., Any], frame_callback: Callable[[], Any]) -> Callable[..., Any]:
    disabled: Callable[..., Any] | None = None  # made on first need: it costs tens of µs

    def gate(*args: Any, **kwargs: Any) -> Any:
        nonlocal disabled
        if frame_callback() is None:
            return hook(*args, **kwargs)
        if disabled is None:
            disabled = torch.compiler.disable(hook)  # type: ignore[no-untyped-call]
        return disabled(*args, **kwargs)

    _mark(gate)
    return gate


_skip_code: Callable[[Any], None] | None = None


def _frame_callback_reader() -> Callable[[], Any] | None:
    """Dynamo's reader of the installed frame callback, or None where this torch
    lacks the private pieces the gate needs (then every hook goes through
    `torch.compiler.disable`)."""
    try:
        from torch._C._dynamo.eval_frame import get_eval_frame_callback
        from torch._dynamo.eval_frame import skip_code
    except ImportError:
        return None
    global _skip_code
    _skip_code = skip_code
    skip_code(_gated(print, print).__code__)  # one code object for all gates
    reader: Callable[[], Any] = get_eval_frame_callback
    return reader


_FRAME_CALLBACK = _frame_callback_reader()


def _no_callback() -> None:
    return None


frame_callback: Callable[[], Any] = _FRAME_CALLBACK or _no_callback
"""What a self-gated hook asks first: dynamo's installed frame callback, or `None` in a
plain eager run (always `None` where this torch lacks the pieces: the hook is then
registered inside `torch.compiler.disable`, see `self_gated`)."""


_twins: weakref.WeakKeyDictionary[Callable[..., Any], Callable[..., Any]] = (
    weakref.WeakKeyDictionary()
)
"""Each self-gated hook's `torch.compiler.disable`d twin, made on first need: only a run
under `torch.compile` needs one, and making one costs tens of microseconds."""


def call_eagerly(hook: Callable[..., Any], *args: Any) -> Any:
    """Call `hook` under `torch.compiler.disable`: what a self-gated hook does when a dynamo
    frame callback is installed (inside, the callback reads `None`, so the hook runs).

    `hook` is a function (a bound method would be a new key at every call).
    """
    twin = _twins.get(hook)
    if twin is None:
        twin = _twins[hook] = torch.compiler.disable(hook)  # type: ignore[no-untyped-call]
    return twin(*args)


def self_gated(hook: HookT) -> HookT:
    """What to register for a hook that opens with its own gate (see the module's docstring).

    Its function gets the markers of `torch.compiler.disable` (a trace that reaches
    it breaks the graph) and dynamo skips its frame; a bound method is marked
    through its function, once for all instances.
    """
    if _skip_code is None:
        disabled: HookT = torch.compiler.disable(hook)  # type: ignore[no-untyped-call]
        return disabled
    function = getattr(hook, "__func__", hook)
    if not getattr(function, "_torchdynamo_disable", False):
        _mark(function)
        _skip_code(function.__code__)
    return hook


def outside_compile(hook: HookT) -> HookT:
    """Return `hook` wrapped so that dynamo never traces it (typed: torch's is not).

    For hooks that run rarely; the hot ones are `self_gated`.
    """
    if _FRAME_CALLBACK is None:
        disabled: HookT = torch.compiler.disable(hook)  # type: ignore[no-untyped-call]
        return disabled
    gated: HookT = _gated(hook, _FRAME_CALLBACK)  # type: ignore[assignment]
    return gated
