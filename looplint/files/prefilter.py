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
Rules that need no optimizer (a loss fed the wrong activation, an evaluation loop)
name the text they need in `Rule.markers`; a file with that text is kept for them.
Parsing is the dominant cost, and most files of a codebase mention none of these.

Across modules, a file can also matter through what others pass to it (an optimizer
given to its `train(model, optimizer)`): the runner checks such a file again with those
bindings, and then this test is skipped. A caller whose only optimizer comes from an
unseen-text factory in another module (`opt = make(model)`) is not followed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_MARKERS = re.compile(r"optim|GradScaler|scaler|AdamW|Adafactor|_schedule|lion_pytorch")


def is_candidate(source: str, markers: Sequence[re.Pattern[str]] = ()) -> bool:
    """Whether any rule could report something in `source` (`markers`: the `Rule.markers`
    of the selected rules that need no optimizer)."""
    if _MARKERS.search(source) is not None:
        return True
    return any(marker.search(source) for marker in markers)
