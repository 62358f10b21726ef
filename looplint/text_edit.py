"""Where two versions of a text differ, as one replacement an editor can apply.

Positions are 0-based lines and code-point columns, the way Python indexes a
line; the Language Server converts columns to the client's units (UTF-16 by
default) before sending them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True, order=True)
class TextPosition:
    """A 0-based line and a 0-based column in code points within that line."""

    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Replacement:
    """Replace the text from `start` up to (not including) `end` with `text`."""

    start: TextPosition
    end: TextPosition
    text: str


def split_lines(text: str) -> list[str]:
    """The lines of `text` without their breaks, split where an editor splits them
    (`\\n`, `\\r\\n`, `\\r`); a trailing break opens an empty last line."""
    return _LINE_BREAK.split(text)


def position_at(text: str, offset: int) -> TextPosition:
    """The position of the character at `offset` (a string index) in `text`."""
    before = text[:offset]
    breaks = list(_LINE_BREAK.finditer(before))
    if not breaks:
        return TextPosition(0, offset)
    return TextPosition(len(breaks), offset - breaks[-1].end())


def replacement_between(before: str, after: str) -> Replacement | None:
    """The smallest single replacement turning `before` into `after` (None if equal).

    The changed span is widened so that it never splits a `\\r\\n` pair.
    """
    if before == after:
        return None
    limit = min(len(before), len(after))
    prefix = 0
    while prefix < limit and before[prefix] == after[prefix]:
        prefix += 1
    suffix = 0
    while (
        suffix < limit - prefix
        and before[len(before) - 1 - suffix] == after[len(after) - 1 - suffix]
    ):
        suffix += 1
    if prefix and before[prefix - 1] == "\r":
        prefix -= 1
    if suffix and before[len(before) - suffix] == "\n":
        suffix -= 1
    start, end = prefix, len(before) - suffix
    return Replacement(
        position_at(before, start), position_at(before, end), after[prefix : len(after) - suffix]
    )
