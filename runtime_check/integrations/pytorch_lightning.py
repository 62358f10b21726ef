"""`LoopLint`: looplint's runtime checks as a `pytorch_lightning` callback.

```python
import pytorch_lightning as pl
from looplint.integrations.pytorch_lightning import LoopLint

trainer = pl.Trainer(callbacks=[LoopLint()])   # or LoopLint(mode="warn")
trainer.fit(model, data)
```

Importing this module imports `pytorch_lightning` (and torch); for the newer
`lightning` package name use `looplint.integrations.lightning`.
"""

from __future__ import annotations

try:
    from pytorch_lightning import Callback
except ImportError as error:  # one line naming what to install, not a bare module error
    raise ImportError(
        "looplint.integrations.pytorch_lightning needs `pytorch_lightning`: "
        "pip install pytorch-lightning"
    ) from error

from looplint.runtime_check.delivery import Mode

from .lightning_hooks import LightningHooks

__all__ = ["LoopLint"]


class LoopLint(LightningHooks, Callback):  # type: ignore[misc]
    """Check every `Trainer.fit` with `looplint.runtime_check.watch`.

    `mode="raise"` (default) makes `fit` raise `LoopLintRuntimeError` (an
    `AssertionError` listing every finding) when it ends; `mode="warn"` emits one
    `LoopLintRuntimeWarning` per distinct finding. `accumulation_steps` defaults
    to the Trainer's `accumulate_grad_batches` (when above 1). If `fit` raises,
    the hooks are removed and the findings are added to the error as a note.
    `callback.report` is the last run's `Report`.
    """

    def __init__(self, mode: Mode = "raise", accumulation_steps: int | None = None) -> None:
        super().__init__(mode=mode, accumulation_steps=accumulation_steps)
