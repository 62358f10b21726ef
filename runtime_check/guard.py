"""Keep a looplint bug out of the user's training: hook failures are reported, not raised.

An exception inside a hook would otherwise stop `optimizer.step()` or
`scheduler.step()`. Every hook body of the checker is wrapped by `never_raises`;
the object involved is then left unchecked, and the report says so
(`report.unchecked`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, cast


class FailureSink(Protocol):
    """What a hook owner offers: a place to report its own failure."""

    def internal_error(self, subject: Any, error: Exception) -> None:
        """Stop checking `subject` after `error`, and say so in the report."""


HookT = TypeVar("HookT", bound=Callable[..., None])


def never_raises(hook: HookT) -> HookT:
    """Turn an exception in `hook(self, subject, ...)` into `self.internal_error(subject, ...)`."""

    @functools.wraps(hook)
    def guarded(self: FailureSink, subject: Any, *args: Any, **kwargs: Any) -> None:
        try:
            hook(self, subject, *args, **kwargs)
        except Exception as error:
            self.internal_error(subject, error)

    return cast(HookT, guarded)
