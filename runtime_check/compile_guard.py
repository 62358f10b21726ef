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
"""

from __future__ import annotations

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


def _gated(
    hook: Callable[..., Any],
    disabled: Callable[..., Any],
    frame_callback: Callable[[], Any],
) -> Callable[..., Any]:
    def gate(*args: Any, **kwargs: Any) -> Any:
        if frame_callback() is None:
            return hook(*args, **kwargs)
        return disabled(*args, **kwargs)

    _mark(gate)
    return gate


def _gated_one(
    hook: Callable[[Any], Any],
    disabled: Callable[[Any], Any],
    frame_callback: Callable[[], Any],
) -> Callable[[Any], Any]:
    """The gate of a hook torch calls with one argument (a gradient hook: once per
    tensor per backward pass, so no argument packing)."""

    def gate(argument: Any) -> Any:
        if frame_callback() is None:
            return hook(argument)
        return disabled(argument)

    _mark(gate)
    return gate


def _gated_three(
    hook: Callable[[Any, Any, Any], Any],
    disabled: Callable[[Any, Any, Any], Any],
    frame_callback: Callable[[], Any],
) -> Callable[[Any, Any, Any], Any]:
    """The gate of an optimizer step hook, which torch calls as `(optimizer, args, kwargs)`."""

    def gate(first: Any, second: Any, third: Any) -> Any:
        if frame_callback() is None:
            return hook(first, second, third)
        return disabled(first, second, third)

    _mark(gate)
    return gate


_GATES: dict[int | None, Callable[..., Callable[..., Any]]] = {
    None: _gated,
    1: _gated_one,
    3: _gated_three,
}
"""The gate for each number of positional arguments (None: any call)."""


def _frame_callback_reader() -> Callable[[], Any] | None:
    """Dynamo's reader of the installed frame callback, or None where this torch
    lacks the private pieces the gate needs (then every hook goes through
    `torch.compiler.disable`)."""
    try:
        from torch._C._dynamo.eval_frame import get_eval_frame_callback
        from torch._dynamo.eval_frame import skip_code
    except ImportError:
        return None
    for make_gate in _GATES.values():
        skip_code(make_gate(print, print, print).__code__)  # one code object per kind of gate
    reader: Callable[[], Any] = get_eval_frame_callback
    return reader


_FRAME_CALLBACK = _frame_callback_reader()


def outside_compile(hook: HookT, arity: int | None = None) -> HookT:
    """Return `hook` wrapped so that dynamo never traces it (typed: torch's is not).

    `arity` (1 or 3) says torch always calls it with that many positional
    arguments, which gives it a gate without argument packing (hot hooks).
    """
    disabled: HookT = torch.compiler.disable(hook)  # type: ignore[no-untyped-call]
    if _FRAME_CALLBACK is None:
        return disabled
    gated: HookT = _GATES[arity](hook, disabled, _FRAME_CALLBACK)  # type: ignore[assignment]
    return gated
