"""The body of the Lightning callback, shared by both of Lightning's package names.

`lightning.pytorch.Callback` and `pytorch_lightning.Callback` are different
classes, and a Trainer accepts only callbacks of its own package; the two thin
`LoopLint` classes in `lightning.py` and `pytorch_lightning.py` put this mixin
in front of the right base.
"""

from __future__ import annotations

from typing import Any

from looplint.runtime_check.delivery import Mode
from looplint.runtime_check.report import Report

from .trainer_run import TrainerRun


class LightningHooks:
    """Watch every `Trainer.fit` run: from `on_fit_start` to `on_fit_end`.

    `on_fit_start` comes after `configure_optimizers`, so the optimizers and
    schedulers are known (with names such as `optimizers[1]` in messages), and
    before a checkpoint's optimizer state is restored, which is therefore seen
    as a restore, not a reset. Each `fit` is its own session: `Tuner.lr_find`
    followed by `fit`, or `fit` twice, is not a rebuilt optimizer.
    """

    def __init__(self, mode: Mode = "raise", accumulation_steps: int | None = None) -> None:
        super().__init__()
        self.run = TrainerRun(mode, accumulation_steps)

    @property
    def report(self) -> Report | None:
        """The last `fit`'s `Report` (`None` before the first `fit`)."""
        return self.run.report

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        """Install looplint's hooks over the module, its optimizers and schedulers."""
        optimizers = list(trainer.optimizers)
        if len(optimizers) == 1:
            names = {id(optimizers[0]): "optimizer"}
        else:
            names = {id(opt): f"optimizers[{index}]" for index, opt in enumerate(optimizers)}
        schedulers = [config.scheduler for config in getattr(trainer, "lr_scheduler_configs", ())]
        self.run.start(
            pl_module,
            optimizers,
            schedulers,
            accumulation_steps=self.run.accumulation_for(trainer.accumulate_grad_batches),
            names=names,
        )

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        """Remove the hooks; raise `LoopLintRuntimeError` or warn about the findings."""
        __tracebackhide__ = True
        self.run.finish()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        """Remove the hooks of a failed `fit`; its findings become a note on the error."""
        self.run.fail(exception)

    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        """Close a `fit` that ended without `on_fit_end` (`Tuner` stops its runs early)."""
        if stage == "fit" and self.run.running:
            self.run.finish()
