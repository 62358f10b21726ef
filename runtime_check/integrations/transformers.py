"""`LoopLintCallback`: looplint's runtime checks as a `transformers.TrainerCallback`.

```python
from transformers import Trainer
from looplint.integrations.transformers import LoopLintCallback

trainer = Trainer(model=model, args=args, train_dataset=data, callbacks=[LoopLintCallback()])
trainer.train()
```

Importing this module imports `transformers` (and torch).
"""

from __future__ import annotations

try:
    from transformers import TrainerCallback
except ImportError as error:  # one line naming what to install, not a bare module error
    raise ImportError(
        "looplint.integrations.transformers needs `transformers`: pip install transformers"
    ) from error

from typing import Any

from looplint.runtime_check.delivery import Mode
from looplint.runtime_check.report import Report
from torch.optim import Optimizer

from .trainer_run import TrainerRun

__all__ = ["LoopLintCallback"]


class LoopLintCallback(TrainerCallback):  # type: ignore[misc]
    """Check every `Trainer.train()` with `looplint.runtime_check.watch`.

    The session opens at `on_train_begin` (the optimizer and the scheduler exist
    by then) and closes at `on_train_end`:
    `mode="raise"` (default) then makes `train()` raise `LoopLintRuntimeError`
    (an `AssertionError` listing every finding); `mode="warn"` emits one
    `LoopLintRuntimeWarning` per distinct finding. `accumulation_steps`
    defaults to `TrainingArguments.gradient_accumulation_steps` (when above 1).
    The Trainer has no failure event: if `train()` raises, the hooks stay until
    the next `train()` with this callback or `close()`. `callback.report` is
    the last run's `Report`.
    """

    def __init__(self, mode: Mode = "raise", accumulation_steps: int | None = None) -> None:
        self.run = TrainerRun(mode, accumulation_steps)

    @property
    def report(self) -> Report | None:
        """The last `train()`'s `Report` (`None` before the first)."""
        return self.run.report

    def close(self) -> None:
        """Remove the hooks a `train()` that raised left installed (no findings raised)."""
        if self.run.running:
            self.run.fail(RuntimeError("training ended with an error"))

    def on_train_begin(
        self,
        args: Any,
        state: Any,
        control: Any,
        model: Any = None,
        optimizer: Any = None,
        lr_scheduler: Any = None,
        **kwargs: Any,
    ) -> None:
        """Install looplint's hooks over the model, its optimizer and scheduler.

        The optimizer is accelerate's `AcceleratedOptimizer`; `watch` follows it to
        the optimizer that really steps.
        """
        optimizers = [optimizer] if isinstance(optimizer, Optimizer) else []
        self.run.start(
            model,
            optimizers,
            [lr_scheduler] if lr_scheduler is not None else [],
            accumulation_steps=self.run.accumulation_for(args.gradient_accumulation_steps),
            names={id(opt): "trainer.optimizer" for opt in optimizers},
        )

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Remove the hooks; raise `LoopLintRuntimeError` or warn about the findings."""
        __tracebackhide__ = True
        self.run.finish()
