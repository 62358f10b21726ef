"""Which optimizer really steps: unwrapping wrappers, and refusing what cannot be followed.

Frameworks hand training code objects that *look* like `torch.optim.Optimizer`s
but are wrappers around the one that steps: accelerate's `AcceleratedOptimizer`
(and so every `transformers.Trainer`), timm's `Lookahead`. They subclass
`Optimizer` without running its `__init__`, so they lack the hook registries a
real optimizer has, and their own `step` only forwards to the inner optimizer's
(which the global step hooks see anyway). The checker therefore follows the
wrapper to the optimizer that steps, and reports anything it cannot follow as
*unchecked* instead of failing inside the user's training.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch.optim import Optimizer

_INNER_ATTRIBUTES = ("optimizer", "base_optimizer", "_base_optimizer", "_optimizer")
"""Where wrappers keep the optimizer they forward to (accelerate, timm, most others)."""

_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class Resolution:
    """What an object handed to (or seen by) the checker turns out to be.

    `target` is the optimizer that really steps (the object itself for a plain
    torch optimizer), or `None` when it cannot be followed; then `reason` says
    why, in words for the report's *unchecked* list.
    """

    target: Optimizer | None
    reason: str = ""


def is_initialised(optimizer: object) -> bool:
    """Whether `Optimizer.__init__` ran: the hook registries the checker uses exist."""
    state = getattr(optimizer, "__dict__", None)
    return (
        isinstance(state, dict)
        and "_optimizer_load_state_dict_post_hooks" in state
        and "param_groups" in state
    )


def inner_optimizer(wrapper: object) -> Optimizer | None:
    """The optimizer a wrapper forwards to, if it keeps one under a usual name."""
    for name in _INNER_ATTRIBUTES:
        try:
            inner: Any = getattr(wrapper, name, None)
        except Exception:  # a property that fails: not a wrapper we understand
            continue
        if inner is not wrapper and isinstance(inner, Optimizer):
            return inner
    return None


def resolve(candidate: object) -> Resolution:
    """Follow wrappers down to the optimizer that steps (never raises)."""
    current: object = candidate
    for _ in range(_MAX_DEPTH):
        if not isinstance(current, Optimizer):
            return Resolution(None, f"`{type(current).__name__}` is not a torch.optim optimizer")
        if is_initialised(current):  # a real optimizer (asked first: it is the common case)
            return Resolution(current)
        inner = inner_optimizer(current)
        if inner is not None:
            current = inner
            continue
        return Resolution(
            None,
            f"`{type(current).__name__}` subclasses torch.optim.Optimizer without running "
            "its `__init__` and wraps no optimizer looplint can find",
        )
    return Resolution(None, f"`{type(candidate).__name__}` wraps optimizers too deeply")
