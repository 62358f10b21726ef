"""Runtime checks of a PyTorch training run: `looplint.runtime_check.watch`.

The static rules see code; this package sees a run. It wraps real torch
optimizers with removable hooks and reports, with the same `LL` codes as the
static rules, parameters no optimizer updates (LL003), optimizer state that is
reset (LL002), stale gradients (LL001), schedulers stepping out of order (LL004)
and gradients cleared before the step that needs them (LL005).

Importing this package does not import torch (the pytest plugin lives here and
pytest must work without torch); `watch` is loaded on first use and needs the
`looplint[runtime]` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import LoopLintRuntimeError, LoopLintRuntimeWarning
from .finding import Finding
from .report import Report

if TYPE_CHECKING:
    from .session import Watch, watch

__all__ = [
    "Finding",
    "LoopLintRuntimeError",
    "LoopLintRuntimeWarning",
    "Report",
    "Watch",
    "watch",
]


def __getattr__(name: str) -> Any:
    """Load the torch-dependent entry points lazily (PEP 562)."""
    if name in ("watch", "Watch"):
        from . import session

        value = getattr(session, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
