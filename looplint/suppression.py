"""`# noqa: LL001` comments.

Only code-specific comments silence looplint: a bare `# noqa` written for another
tool must not hide a training bug.
"""

from __future__ import annotations

import re

_NOQA = re.compile(r"#\s*noqa\s*:\s*(?P<codes>[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*)", re.I)


def suppressed_codes(line: str) -> frozenset[str]:
    """The codes a line's `# noqa: ...` comment names (empty for a bare `# noqa`)."""
    codes: set[str] = set()
    for match in _NOQA.finditer(line):
        codes.update(code.upper() for code in re.split(r"[\s,]+", match.group("codes")) if code)
    return frozenset(codes)


def is_suppressed(line: str, code: str) -> bool:
    """Whether `line` carries a `# noqa` naming `code`."""
    return code in suppressed_codes(line)
