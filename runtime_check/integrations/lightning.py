"""`LoopLint`: looplint's runtime checks as a Lightning (`lightning.pytorch`) callback.

```python
import lightning as L
from looplint.integrations.lightning import LoopLint

trainer = L.Trainer(callbacks=[LoopLint()])   # or LoopLint(mode="warn")
trainer.fit(model, data)
```

Importing this module imports `lightning` (and torch); for the older
`pytorch_lightning` package name use `looplint.integrations.pytorch_lightning`.
"""

from __future__ import annotations

try:
    from lightning.pytorch import Callback
except ImportError as error:  # one line naming what to install, not a bare module error
    raise ImportError(
        "looplint.integrations.lightning needs `lightning`: pip install lightning"
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
