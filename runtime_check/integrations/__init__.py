"""looplint's runtime checks as native callbacks of the trainers people use.

- `looplint.integrations.lightning.LoopLint`: a Lightning `Callback`
  (`looplint.integrations.pytorch_lightning.LoopLint` for the
  `pytorch_lightning` package name);
- `looplint.integrations.transformers.LoopLintCallback`: a
  `transformers.TrainerCallback`.

Each opens one `looplint.runtime_check.watch` session per training run, with
the trainer's model, optimizers, schedulers and gradient accumulation, and
closes it when the run ends. Importing this package imports nothing heavy;
each integration module imports its own library (and torch) only when it is
imported itself. With accelerate, use `watch` directly (see docs/runtime.md).
"""

from __future__ import annotations

__all__: list[str] = []
