"""A text test that skips files no rule can fire on, before paying for a parse.

Every rule needs an optimizer, an LR scheduler or a GradScaler to be recognised,
and each of those is only recognisable through text that contains one of these
words (an import or constructor path, an annotation, or a `scaler.step(x)` call).
Parsing is the dominant cost, and most files of a codebase never mention them.
"""

from __future__ import annotations

import re

_MARKERS = re.compile(r"optim|schedule|Scaler|scaler|Lion|AdamW|Adafactor")


def is_candidate(source: str) -> bool:
    """Whether any rule could report something in `source`."""
    return _MARKERS.search(source) is not None
