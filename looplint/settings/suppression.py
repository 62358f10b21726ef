"""`# noqa: LL001` on a line, `# looplint: noqa: LL001` for a whole file.

Only code-specific line comments silence looplint: a bare `# noqa` written for
another tool must not hide a training bug. A comment that was plainly meant for
looplint but does nothing (`# noqa LL001` without its colon, a code that does not
exist) is reported as a notice instead of being skipped in silence.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from looplint.identity import ALL_IDENTITIES

KNOWN_CODES = frozenset(identity.code for identity in ALL_IDENTITIES)
_CODE_LIST = r"[A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*"
_NOQA = re.compile(rf"#\s*noqa\s*:\s*(?P<codes>{_CODE_LIST})", re.I)
_FILE_NOQA = re.compile(
    rf"^\s*#\s*looplint\s*:\s*noqa(?P<colon>\s*:\s*(?P<codes>{_CODE_LIST}))?\s*$", re.I
)
_LOOPLINT_COMMENT = re.compile(r"#\s*looplint\s*:?\s*noqa\b(?P<rest>.*)$", re.I)
_NOQA_WITHOUT_COLON = re.compile(r"#\s*noqa\s+(?P<codes>LL[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*)", re.I)
_OUR_CODE = re.compile(r"^LL[0-9]+$")
_ANY_NOQA = re.compile("noqa", re.I)


@dataclass(frozen=True, slots=True)
class Notice:
    """A comment about suppression that does not do what it seems to, and where.

    `line` counts in the checked program; for notebooks `cell`/`line` locate it in a cell.
    """

    line: int
    message: str
    cell: int | None = None

    def location(self, path: str) -> str:
        """`path:line`, or `nb.ipynb:cell 3:4` for notebooks."""
        if self.cell is not None:
            return f"{path}:cell {self.cell}:{self.line}"
        return f"{path}:{self.line}"


@dataclass(frozen=True, slots=True)
class FileDirectives:
    """What a file's `# looplint: noqa` comments silence for the whole file."""

    codes: frozenset[str] = frozenset()
    everything: bool = False

    def silences(self, code: str) -> bool:
        """Whether findings of `code` are suppressed everywhere in the file."""
        return self.everything or code in self.codes


NO_DIRECTIVES = FileDirectives()


def _codes(text: str) -> list[str]:
    return [code.upper() for code in re.split(r"[\s,]+", text) if code]


def suppressed_codes(line: str) -> frozenset[str]:
    """The codes a line's `# noqa: ...` comment names (empty for a bare `# noqa`)."""
    codes: set[str] = set()
    for match in _NOQA.finditer(line):
        codes.update(_codes(match.group("codes")))
    return frozenset(codes)


def is_suppressed(line: str, code: str) -> bool:
    """Whether `line` carries a `# noqa` naming `code`."""
    return code in suppressed_codes(line)


def _unknown(codes: Collection[str]) -> list[str]:
    return [code for code in codes if _OUR_CODE.match(code) and code not in KNOWN_CODES]


def scan(text: str) -> tuple[FileDirectives, list[Notice]]:
    """The file-level directives of `text`, and a notice for each comment that misfires."""
    if _ANY_NOQA.search(text) is None:
        return FileDirectives(), []
    codes: set[str] = set()
    everything = False
    notices: list[Notice] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if "noqa" not in line.lower():
            continue
        whole_file = _FILE_NOQA.match(line)
        if whole_file is not None:
            if whole_file.group("codes") is None:
                everything = True
            else:
                named = _codes(whole_file.group("codes"))
                codes.update(named)
                notices += _unknown_notices(number, named, "# looplint: noqa")
            continue
        looplint_comment = _LOOPLINT_COMMENT.search(line)
        if looplint_comment is not None:
            notices.append(
                Notice(
                    number,
                    "malformed `# looplint: noqa` comment; write `# looplint: noqa` alone "
                    "on its line, or `# looplint: noqa: LL001, LL002`",
                )
            )
            continue
        without_colon = _NOQA_WITHOUT_COLON.search(line)
        if without_colon is not None and not _NOQA.search(line):
            listed = ", ".join(_codes(without_colon.group("codes")))
            notices.append(
                Notice(
                    number,
                    f"`# noqa {listed}` has no colon and suppresses nothing; "
                    f"write `# noqa: {listed}`",
                )
            )
            continue
        for match in _NOQA.finditer(line):
            notices += _unknown_notices(number, _codes(match.group("codes")), "# noqa")
    return FileDirectives(frozenset(codes), everything), notices


def _unknown_notices(line: int, codes: Collection[str], form: str) -> list[Notice]:
    return [
        Notice(line, f"unknown rule code `{code}` in `{form}` comment; `looplint rules` lists them")
        for code in _unknown(codes)
    ]
