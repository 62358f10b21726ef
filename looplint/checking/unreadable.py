"""`LL000`: the engine's own finding, documented and selected like any rule."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar

from looplint.analysis.facts import ModuleFacts
from looplint.identity import PARSE_ERROR, RuleIdentity
from looplint.rule import Rule, Violation


class UnreadableFile(Rule):
    """
    ## What it does
    Reports a file that looplint could not check: a syntax error, bytes that do not
    decode (no UTF-8 and no coding declaration), a binary file named `.py`, invalid
    notebook JSON, something that is not a regular file, a file over 1 MB (generated
    code), or an expression nested or chained too deeply for the parser. The message
    names the cause and, for syntax errors, the line Python itself would report.

    ## Why is this bad?
    A file that is not checked can hide every bug the other rules look for, so
    looplint says so instead of passing it in silence. It is reported whatever
    `select` says; only `ignore`, `per-file-ignores` or a file-level
    `# looplint: noqa: LL000` turn it off (for a file that is meant to be invalid,
    such as a parser test case).

    ## References
    - [Python's grammar](https://docs.python.org/3/reference/grammar.html)
    - [nbformat](https://nbformat.readthedocs.io/en/latest/format_description.html)
    """

    identity: ClassVar[RuleIdentity] = PARSE_ERROR
    VALID = (
        """
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
        """,
    )
    INVALID = (
        """
        for x, y in loader  # expect: LL000
            optimizer.zero_grad()
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        """Nothing to query: the engine reports `LL000` when reading or parsing fails."""
        return iter(())
