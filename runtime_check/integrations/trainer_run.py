"""`TrainerRun`: one `watch` session opened and closed by a trainer's callback events.

A `with watch(...)` block needs the training call inside it; a trainer callback
instead sees the run start, end and (in Lightning) fail as separate calls. This
holds the open `Watch` between those calls, on the public `Watch` API only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from looplint.runtime_check.delivery import Mode
from looplint.runtime_check.report import Report
from looplint.runtime_check.session import Watch
from torch import nn
from torch.optim import Optimizer


class RunInterrupted(RuntimeError):
    """Stands for a training run whose end event never came (its trainer raised)."""


class TrainerRun:
    """The `Watch` of the current training run, driven by callback events.

    `mode` and `accumulation_steps` are checked when the callback is built, so
    a misconfigured callback fails before training starts rather than at its
    first event. `report` is the last run's `Report` (findings, steps, inactive).
    """

    __slots__ = ("_watch", "accumulation_steps", "mode", "report")

    def __init__(self, mode: Mode, accumulation_steps: int | None) -> None:
        if mode not in ("raise", "warn"):
            raise ValueError(f"mode must be 'raise' or 'warn', not {mode!r}")
        if accumulation_steps is not None and (
            not isinstance(accumulation_steps, int) or accumulation_steps < 1
        ):
            raise ValueError("accumulation_steps must be a positive integer")
        self.mode: Mode = mode
        self.accumulation_steps = accumulation_steps
        self.report: Report | None = None
        self._watch: Watch | None = None

    @property
    def running(self) -> bool:
        """Whether a run's hooks are installed now."""
        return self._watch is not None

    def accumulation_for(self, trainer_steps: int | None) -> int | None:
        """The accumulation to check: the one given, else the trainer's when above 1."""
        if self.accumulation_steps is not None:
            return self.accumulation_steps
        if trainer_steps is not None and trainer_steps > 1:
            return int(trainer_steps)
        return None

    def start(
        self,
        model: nn.Module | None,
        optimizers: Sequence[Optimizer],
        schedulers: Sequence[Any],
        *,
        accumulation_steps: int | None,
        names: dict[int, str],
    ) -> Report:
        """Install the hooks for a new run (closing one a failed run left open)."""
        if self._watch is not None:
            self.fail(RunInterrupted("the previous training run ended without its end event"))
        watch = Watch(
            model,
            optimizers,
            schedulers=schedulers,
            mode=self.mode,
            accumulation_steps=accumulation_steps,
            variable_names=names,
        )
        self.report = watch.__enter__()
        self._watch = watch
        return self.report

    def finish(self) -> None:
        """End the run: remove the hooks, then raise or warn about its findings."""
        __tracebackhide__ = True
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.__exit__(None, None, None)

    def fail(self, error: BaseException) -> None:
        """End a run that raised: remove the hooks; findings become a note on `error`."""
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.__exit__(type(error), error, error.__traceback__)
