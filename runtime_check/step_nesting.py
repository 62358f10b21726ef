"""How many `step` calls of one optimizer are running right now, read from the stack.

torch runs the step pre-hooks, the step and then the post-hooks; when `step`
raises, the post-hooks never run. A counter kept by the hooks alone therefore
cannot tell a nested step (a subclass's `step` calling `super().step()`) from a
step that follows one that raised and was caught (an out-of-memory batch
skipped). Counting torch's step-wrapper frames whose `self` is the optimizer
can; it is done only when the counter says "nested", never on an ordinary step.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

from torch.optim import Optimizer


def _wrapper_code() -> Any:
    def step(*args: Any, **kwargs: Any) -> None:
        return None

    return Optimizer.profile_hook_step(step).__code__


_STEP_WRAPPER = _wrapper_code()
_MAX_FRAMES = 200


def steps_in_progress(optimizer: Optimizer) -> int:
    """The number of torch step-wrapper frames on this thread's stack for `optimizer`."""
    count = 0
    frame: FrameType | None = sys._getframe(1)
    try:
        for _ in range(_MAX_FRAMES):
            if frame is None:
                break
            if frame.f_code is _STEP_WRAPPER and frame.f_locals.get("self") is optimizer:
                count += 1
            frame = frame.f_back
    finally:
        del frame
    return count
