"""Two-stage screening: deciding, before paying for a LibCST parse, whether a file can matter.

Parsing with LibCST and building the analysis cost about as much again as each other, and
most files of a codebase hold no training code. Each rule therefore declares a `Screen`:
what it cannot fire without, checked in two stages an order of magnitude cheaper than the
parse it spares.

1. `words`: a regular expression over the raw text. Most files fail it for every rule and
   are never parsed at all.
2. `syntax` (optional): a predicate over the standard library's `ast` tree (a `Glance`),
   which is built in C and thrown away at once. It tells code from prose (an `optimizer`
   in a docstring or a log message) and can ask for structure (a construction, an
   annotation, a `step()` call). Only a file that passes stage 1 is `ast`-parsed, and its
   nodes are listed only once, however many screens look at them.

A file passes when any enabled rule's screen passes it, and only the rules whose screens
pass it are run on it. Files the standard parser cannot read are always passed on: LibCST
must report (or parse) them itself.

Across modules, what another file passes in (an optimizer handed to `train(model, opt)`)
can make any file matter; the runner checks such a file again with those bindings, and no
screen is asked then. `LOOPLINT_NO_SCREEN=1` in the environment turns screening off (every
file is parsed), so that a run with and without it can be compared: they must agree.
"""

from __future__ import annotations

import ast
import os
import re
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

DISABLE_VARIABLE = "LOOPLINT_NO_SCREEN"


class TextTest(Protocol):
    """Stage 1 of a screen: a compiled regular expression, or anything searched like one."""

    def search(self, string: str) -> object | None:
        """A match somewhere in `string`, or None."""


@dataclass(frozen=True, slots=True)
class Screen:
    """What one rule needs to see in a file's text, then in its syntax, to be worth running."""

    words: TextTest
    """Text without which the rule cannot fire (stage 1)."""
    syntax: Callable[[Glance], bool] | None = None
    """A sharper look at the standard library's tree, for files that pass `words` (stage 2);
    None when the words alone decide."""


class Glance:
    """A module's stdlib `ast` tree, with its nodes listed by type once for every screen."""

    def __init__(self, tree: ast.Module) -> None:
        self.tree = tree
        self._by_type: dict[type[ast.AST], list[ast.AST]] | None = None

    def nodes(self, kind: type[AstNode]) -> list[AstNode]:
        """Every node of type `kind` (exactly), in no particular order (no expression
        contexts: `Load`, `Store`)."""
        if self._by_type is None:
            self._by_type = _nodes_by_type(self.tree)
        return self._by_type.get(kind, [])  # type: ignore[return-value]


AstNode = TypeVar("AstNode", bound=ast.AST)


_NOT_NODES = frozenset(
    {"ctx", "id", "attr", "arg", "name", "module", "asname", "level", "kind", "type_comment",
     "conversion", "is_async", "simple", "lineno", "tag"}
)  # fmt: skip
"""Fields that hold a string, a number or an expression context (`Load`, `Store`): never a
node a screen asks for, so the walk does not even look at them."""
_CHILD_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {}


def _nodes_by_type(tree: ast.AST) -> dict[type[ast.AST], list[ast.AST]]:
    """All nodes of `tree` grouped by exact type (expression contexts left out): one walk,
    over only the fields that can hold nodes; half the cost of a plain `ast.walk`."""
    grouped: dict[type[ast.AST], list[ast.AST]] = {}
    pending: list[ast.AST] = [tree]
    pop, push = pending.pop, pending.append
    node_type = ast.AST
    while pending:
        node = pop()
        kind = node.__class__
        bucket = grouped.get(kind)
        if bucket is None:
            bucket = grouped[kind] = []
        bucket.append(node)
        fields = _CHILD_FIELDS.get(kind)
        if fields is None:
            fields = _CHILD_FIELDS[kind] = tuple(
                name
                for name in kind._fields
                if name not in _NOT_NODES and not (kind is ast.Constant and name == "value")
            )
        for name in fields:
            value = getattr(node, name, None)
            if value.__class__ is list:
                for item in value:
                    if isinstance(item, node_type):
                        push(item)
            elif isinstance(value, node_type):
                push(value)
    return grouped


def dotted_names(node: ast.expr) -> list[str] | None:
    """For syntax tests: the names of a chain of attributes on a name, in source order
    (`["torch", "optim", "Adam"]` for `torch.optim.Adam`); None for any other expression."""
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    names.append(node.id)
    names.reverse()
    return names


def screening_enabled() -> bool:
    """False when `LOOPLINT_NO_SCREEN` asks for every file to be parsed (for comparisons)."""
    return os.environ.get(DISABLE_VARIABLE, "") in ("", "0")


def passes(text: str, screens: Iterable[Screen]) -> bool:
    """Whether any of `screens` lets `text` through to the full analysis."""
    return bool(passing(text, screens, first_only=True))


def passing(text: str, screens: Iterable[Screen], first_only: bool = False) -> set[Screen]:
    """The `screens` that let `text` through: the rules worth running on it (with
    `first_only`, stop at the first, for callers that only ask whether any does)."""
    through: set[Screen] = set()
    sharper: list[Screen] = []
    for screen in screens:
        if screen.words.search(text) is None:
            continue
        if screen.syntax is None:
            through.add(screen)
            if first_only:
                return through
        else:
            sharper.append(screen)
    if not sharper:
        return through
    tree = _standard_tree(text)
    if tree is None:
        return through.union(sharper)  # LibCST must report (or parse) it itself
    glance = Glance(tree)
    for screen in sharper:
        if screen.syntax is not None and screen.syntax(glance):
            through.add(screen)
            if first_only:
                return through
    return through


def _standard_tree(text: str) -> ast.Module | None:
    """The stdlib tree of `text`, or None when the standard parser cannot build it."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes in old code: not ours to report
            return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


_TOKENS = re.compile(r"#[^\n]*|\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|[()\[\]{}]")
"""Comments, one-line strings and brackets: what `bracketed` reads."""


def bracketed(string: str, opened: int, limit: int = 5_000) -> tuple[str, int] | None:
    """For text tests: what the bracket at `opened` holds, without its strings and
    comments, and the index of the bracket that closes it (None when it does not close
    within `limit` characters, which a sound test treats as "may be")."""
    depth = 0
    pieces: list[str] = []
    last = opened + 1
    for token in _TOKENS.finditer(string, opened, min(len(string), opened + limit)):
        text = token.group()
        if text[0] in "#'\"":
            pieces.append(string[last : token.start()])
            last = token.end()
        elif text in "([{":
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                pieces.append(string[last : token.start()])
                return "".join(pieces), token.start()
    return None


_INNERMOST = re.compile(r"\([^()]*\)|\[[^\[\]]*\]|\{[^{}]*\}")


def flattened(text: str) -> str:
    """For text tests: `text` with every bracketed part removed, innermost first, so that
    what is left is its top level (`x, p=f(a, b)` becomes `x, p=f`)."""
    previous = None
    while text != previous:
        text, previous = _INNERMOST.sub("", text), text
    return text
