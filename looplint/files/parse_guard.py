"""Inputs that would hang or crash LibCST, recognised before it sees them.

LibCST's native parser aborts the whole process (a stack overflow in Rust) on
brackets nested a few thousand deep, takes quadratic time on long operator
chains (20,000 terms: minutes), and needs ~250 MB per MB of source. A linter must
never be the thing that breaks the build, so such files get one clear `LL000`
finding instead. The checks are text scans at C speed; only a suspicious file
pays for CPython's own parser, which rejects what Python itself rejects.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from itertools import accumulate

MAX_ANALYSED_BYTES = 1_000_000
MAX_BRACKET_DEPTH = 150
MAX_LINE_LENGTH = 4_000
MAX_CONTINUED_OPERATORS = 500
MAX_SYNTAX_DEPTH = 1_000

_NOT_BRACKETS = re.compile(r"[^()\[\]{}]+")
_DEPTH_STEP = {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}
_CONTINUED_OPERATOR = re.compile(r"[-+*/|&^%]\s*\n|\n\s*(?:[-+*/|&^%](?!=)|and\b|or\b)")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a file is not handed to LibCST, and where."""

    message: str
    line: int = 1
    column: int = 1


def _bracket_depth(text: str) -> int:
    brackets = _NOT_BRACKETS.sub("", text)
    if not brackets:
        return 0
    return max(accumulate(_DEPTH_STEP[c] for c in brackets))


def _syntax_depth(tree: ast.AST) -> int:
    deepest = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > deepest:
            deepest = depth
            if deepest > MAX_SYNTAX_DEPTH:
                return deepest
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return deepest


def _suspicious(text: str) -> bool:
    if _bracket_depth(text) > MAX_BRACKET_DEPTH:
        return True
    if len(text) > MAX_LINE_LENGTH:
        if max(map(len, text.splitlines()), default=0) > MAX_LINE_LENGTH:
            return True
    return len(_CONTINUED_OPERATOR.findall(text)) > MAX_CONTINUED_OPERATORS


def refusal(text: str) -> Refusal | None:
    """Why `text` must not be parsed with LibCST, or None when it is safe."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_ANALYSED_BYTES:
        return Refusal(
            f"file too large to analyse ({size / 1e6:.1f} MB > {MAX_ANALYSED_BYTES / 1e6:.0f} MB); "
            "generated code is not checked"
        )
    if not _suspicious(text):
        return None
    try:
        tree = ast.parse(text)
    except SyntaxError as error:
        return Refusal(f"syntax error: {error.msg}", error.lineno or 1, max(error.offset or 1, 1))
    except (RecursionError, MemoryError, ValueError):
        return Refusal("expression nested or chained too deeply to analyse")
    if _syntax_depth(tree) > MAX_SYNTAX_DEPTH:
        return Refusal(
            f"expression nested or chained more than {MAX_SYNTAX_DEPTH} levels deep; "
            "too complex to analyse"
        )
    return None
