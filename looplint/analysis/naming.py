"""What a helper's name says it does with the objects it is handed.

An unknown helper handed an optimizer may step or clear it, so the analysis usually gives
up on what it cannot see. A name that only speaks of reading (`clip_gradient(optimizer,
max_norm)`, `adjust_learning_rate(optimizer, epoch)`, `save_checkpoint(model, optimizer)`)
and says nothing of stepping, clearing or training is evidence enough that it does neither.
"""

from __future__ import annotations

import re

_ACTING_WORDS = re.compile(r"step|zero|clear|reset|update|train|optimi[sz]e|backward|apply|fit|run")
_READING_WORDS = re.compile(
    r"clip|log|print|learning_rate|save|checkpoint|ckpt|warm_?up|summar|record|plot|dump|write"
)


def reads_by_name(name: str) -> bool:
    """Whether an unknown helper's name says it only reads or adjusts the optimizer it is
    handed (`clip_gradient(optimizer, max_norm)`, `adjust_learning_rate(optimizer, epoch)`,
    `save_checkpoint(model, optimizer)`) and says nothing of stepping or clearing."""
    lowered = name.lower()
    if _ACTING_WORDS.search(lowered):
        return False
    return _READING_WORDS.search(lowered) is not None or "lr" in lowered.split("_")
