"""What a rule is: a self-documenting, self-testing query over module facts."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import ClassVar

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.training_screen import TRAINING_CODE
from looplint.files.screening import Screen
from looplint.identity import RuleIdentity

EXPECT_MARKER = re.compile(r"\s*#\s*expect:\s*[A-Z]{2}\d{3}(?:\s*,\s*[A-Z]{2}\d{3})*")


@dataclass(frozen=True, slots=True)
class Fix:
    """Replace each old node (by identity) with the new one; LibCST keeps the formatting."""

    replacements: tuple[tuple[cst.CSTNode, cst.CSTNode], ...]

    def apply(self, module: cst.Module) -> cst.Module:
        """The module with every replacement made."""
        for old, new in self.replacements:
            replaced = module.deep_replace(old, new)
            assert isinstance(replaced, cst.Module)
            module = replaced
        return module


@dataclass(frozen=True, slots=True)
class Violation:
    """A rule's verdict about one node, before it has a position.

    `fix` builds the fix on demand (only `--fix`/`--diff` pay for it).
    """

    node: cst.CSTNode
    message: str
    fix: Callable[[], Fix | None] | None = None


class Rule:
    """Base class of looplint rules.

    A subclass sets `identity`, writes its documentation as the class docstring
    (Markdown with the sections *What it does*, *Why is this bad?* and
    *References*; *Example* and *Use instead* are rendered from `INVALID[0]` and
    `VALID[0]`, so they are always real, tested code), and implements `check`.
    `INVALID` examples mark each line that must be flagged with `# expect: CODE`.
    """

    identity: ClassVar[RuleIdentity]
    VALID: ClassVar[tuple[str, ...]] = ()
    INVALID: ClassVar[tuple[str, ...]] = ()
    FIXES: ClassVar[tuple[tuple[str, str], ...]] = ()
    """(before, after) examples of the autofix; a rule with fixes documents `fix_safety`."""
    fix_safety: ClassVar[str | None] = None
    screen: ClassVar[Screen] = TRAINING_CODE
    """What a file must show, in its text and then its `ast` tree, before this rule is worth
    a LibCST parse (`looplint.files.screening`). Training-loop rules need an optimizer,
    scheduler or scaler; a rule about something else declares its own `Screen`."""

    @property
    def code(self) -> str:
        """The rule's code, e.g. `LL001`."""
        return self.identity.code

    @property
    def name(self) -> str:
        """The rule's kebab-case name, e.g. `missing-zero-grad`."""
        return self.identity.name

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        """Yield a violation for each occurrence of the bug in one module."""
        raise NotImplementedError

    @classmethod
    def documentation(cls) -> str:
        """The full Markdown documentation, examples included."""
        doc = inspect.cleandoc(cls.__doc__ or "")
        sections = [f"# {cls.identity.name} ({cls.identity.code})", "", doc]
        if cls.INVALID:
            sections += [
                "",
                "## Example",
                "",
                "```python",
                strip_expectations(cls.INVALID[0]),
                "```",
            ]
        if cls.VALID:
            sections += [
                "",
                "## Use instead",
                "",
                "```python",
                strip_expectations(cls.VALID[0]),
                "```",
            ]
        if cls.fix_safety:
            sections += ["", "## Fix safety", "", inspect.cleandoc(cls.fix_safety)]
        return "\n".join(sections).rstrip() + "\n"


def strip_expectations(source: str) -> str:
    """Example source as a reader should see it, without test markers."""
    lines = [EXPECT_MARKER.sub("", line) for line in inspect.cleandoc(source).splitlines()]
    return "\n".join(lines)
