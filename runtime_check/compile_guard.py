"""Keep the checker's hooks out of `torch.compile` graphs.

A compiled optimizer step (or compiled autograd) would otherwise trace the hook
bodies and recompile whenever the Python state they read changes, i.e. every
step. `torch.compiler.disable` makes them run eagerly instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import torch

HookT = TypeVar("HookT", bound=Callable[..., Any])


def outside_compile(hook: HookT) -> HookT:
    """Return `hook` wrapped so that dynamo never traces it (typed: torch's is not)."""
    wrapped: HookT = torch.compiler.disable(hook)  # type: ignore[no-untyped-call]
    return wrapped
