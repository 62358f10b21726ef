"""`--add-noqa`: adopt looplint on an existing codebase by silencing what it finds today.

Each finding's line gets `# noqa: CODE`; a line that already has a code-specific
`# noqa: ...` gets the code merged into it, and any other comment (a bare `# noqa`
written for another tool, `# type: ignore`) is kept with the new comment after it.
Only lines whose end lies outside a string or a backslash continuation can take a
comment: the file is tokenized first, and nothing else on a line is touched.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from looplint.errors import SourceError
from looplint.files.source import read_source
from looplint.finding import Finding
from looplint.settings.suppression import suppressed_codes

_CODING = re.compile(r"^[ \t\f]*#.*?coding[:=]")
"""PEP 263's encoding declaration (it must stay on the first or second line)."""
_NOQA_CODES = re.compile(r"(#\s*noqa\s*:\s*)([A-Za-z]+[0-9]+(?:[\s,]+[A-Za-z]+[0-9]+)*)", re.I)


@dataclass(frozen=True, slots=True)
class NoqaEdit:
    """What `--add-noqa` did to one file, or why it left it alone."""

    path: str
    added: int
    skipped: str | None = None


def _comment_lines(text: str) -> tuple[set[int], dict[int, tokenize.TokenInfo]]:
    """Lines that end outside strings (can take a comment), and each line's comment."""
    open_ends: set[int] = set()
    comments: dict[int, tokenize.TokenInfo] = {}
    tokens = tokenize.generate_tokens(io.StringIO(text).readline)
    for token in tokens:
        if token.type in (tokenize.NEWLINE, tokenize.NL):
            open_ends.add(token.start[0])
        elif token.type == tokenize.COMMENT:
            comments[token.start[0]] = token
    return open_ends, comments


def _merge(comment: str, codes: list[str]) -> str | None:
    """The comment with `codes` merged into its `# noqa: ...`, if it has one."""
    match = _NOQA_CODES.search(comment)
    if match is None:
        return None
    present = [c for c in re.split(r"[\s,]+", match.group(2)) if c]
    merged = ", ".join([*present, *(c for c in codes if c.upper() not in map(str.upper, present))])
    return comment[: match.start(2)] + merged + comment[match.end(2) :]


def with_noqa(text: str, wanted: Mapping[int, Sequence[str]]) -> tuple[str, int]:
    """`text` with `# noqa: CODE` added for each 1-based line in `wanted`, and how many
    codes were added (a line already silencing a code, or whose end lies inside a string,
    gets nothing). Raises `tokenize.TokenError` or `SyntaxError` for text it cannot read."""
    open_ends, comments = _comment_lines(text)
    lines = text.splitlines(keepends=True)
    added = 0
    for number, codes in sorted(wanted.items()):
        if number not in open_ends or not 0 < number <= len(lines):
            continue
        line = lines[number - 1]
        body = line.rstrip("\r\n")
        ending = line[len(body) :]
        missing = [code for code in codes if code not in suppressed_codes(body)]
        if not missing:
            continue
        comment = comments.get(number)
        merged = _merge(comment.string, missing) if comment is not None else None
        if comment is not None and merged is not None:
            start = comment.start[1]
            body = body[:start] + merged + body[start + len(comment.string) :]
        else:
            body = f"{body.rstrip()}  # noqa: {', '.join(missing)}"
        lines[number - 1] = body + ending
        added += len(missing)
    return "".join(lines), added


def add_noqa(path: str, findings: Iterable[Finding]) -> NoqaEdit:
    """Add `# noqa: CODE` for each finding (by its start line) to the file at `path`."""
    wanted: dict[int, list[str]] = {}
    findings = list(findings)
    if path.endswith(".ipynb") and findings:
        return NoqaEdit(path, 0, "notebooks are not rewritten")
    for finding in findings:
        if finding.code == "LL000":
            continue
        codes = wanted.setdefault(finding.line, [])
        if finding.code not in codes:
            codes.append(finding.code)
    if not wanted:
        return NoqaEdit(path, 0)
    try:
        source = read_source(path)
    except SourceError as error:
        return NoqaEdit(path, 0, str(error))
    if not source.fixable:
        return NoqaEdit(path, 0, "not plain UTF-8; not rewritten")
    try:
        text, added = with_noqa(source.text, wanted)
    except (tokenize.TokenError, SyntaxError) as error:
        return NoqaEdit(path, 0, f"cannot tokenize: {error}")
    if added:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
    return NoqaEdit(path, added)


def with_file_noqa(text: str, code: str) -> str:
    """`text` with a `# looplint: noqa: CODE` line of its own, after a shebang and an
    encoding declaration if the file starts with them (they must stay first)."""
    lines = text.splitlines(keepends=True)
    keep = 0
    while keep < min(len(lines), 2) and (
        (keep == 0 and lines[0].startswith("#!")) or _CODING.match(lines[keep])
    ):
        keep += 1
    ending = "\r\n" if lines and lines[0].endswith("\r\n") else "\n"
    if keep and not lines[keep - 1].endswith(("\n", "\r")):
        lines[keep - 1] += ending
    return "".join([*lines[:keep], f"# looplint: noqa: {code}{ending}", *lines[keep:]])
