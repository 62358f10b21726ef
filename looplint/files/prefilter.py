"""A text test that skips files no rule can fire on, before paying for a parse.

Every rule needs an optimizer, LR scheduler or GradScaler to be recognised, and the
analysis recognises one only through text containing one of these words:
- `optim`: `torch.optim` (schedulers and `Optimizer` annotations included),
  `torch.distributed.optim`, `bitsandbytes.optim`, `apex.optimizers`,
  `torch_optimizer`, `timm.optim`, `diffusers.optimization`;
- `GradScaler` (constructors and annotations) and `scaler` (a parameter passed
  to `scaler.step(x)` is an optimizer);
- transformers' `AdamW`, `Adafactor` and `get_*_schedule*`/`get_scheduler`
  (`_schedule`), and `lion_pytorch`.
A parameter used as `x.step()` with `x.zero_grad()` needs none of them, but it
clears its own gradients and has no scheduler, so no rule can fire on it alone.
Parsing is the dominant cost, and most files of a codebase mention none of these.

A few rules are about how a network is *defined*, not trained (a submodule kept in a
plain list, a `requires_grad` typo): they need no optimizer, and each declares the
text its bug cannot be written without (`Rule.prefilter`), kept narrow so that the
many model files of a codebase are still skipped unparsed.

Across modules, a file can also matter through what others pass to it (an optimizer
given to its `train(model, optimizer)`): the runner checks such a file again with those
bindings, and then this test is skipped. A caller whose only optimizer comes from an
unseen-text factory in another module (`opt = make(model)`) is not followed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_MARKERS = re.compile(r"optim|GradScaler|scaler|AdamW|Adafactor|_schedule|lion_pytorch")


def is_candidate(source: str, own: Iterable[re.Pattern[str]] = ()) -> bool:
    """Whether any rule could report something in `source`: a training-loop rule, or a
    rule whose own marker (`own`, see `Rule.prefilter`) is in the text."""
    return _MARKERS.search(source) is not None or any(p.search(source) for p in own)
