"""The two ways a runtime finding reaches a user: an assertion or a warning.

`LoopLintRuntimeError` subclasses `AssertionError` so that pytest shows a watched
test whose training loop is wrong as *failed* (a broken assertion about the
code under test), not as *errored*. `LoopLintRuntimeWarning` subclasses
`UserWarning` so the usual `-W` / `filterwarnings` machinery can silence or
escalate it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .finding import Finding


class LoopLintRuntimeError(AssertionError):
    """Raised when a watched block ends with findings (`mode="raise"`).

    The message lists every finding with its `LL` code and the user's file and
    line, so a failing test report or a traceback is enough to fix the loop; its
    first line starts with the codes (pytest's short summary shows that line).
    `.findings` keeps them as objects; `.unchecked` says what could not be judged.
    """

    def __init__(self, findings: Sequence[Finding], unchecked: Sequence[str] = ()) -> None:
        self.findings: tuple[Finding, ...] = tuple(findings)
        self.unchecked: tuple[str, ...] = tuple(unchecked)
        count = len(self.findings)
        noun = "bug" if count == 1 else "bugs"
        codes = ", ".join(dict.fromkeys(f"{f.code} {f.name}" for f in self.findings))
        lines = [f"{codes}: looplint found {count} training-loop {noun} while the code ran:"]
        lines.extend(str(finding) for finding in self.findings)
        if self.unchecked:
            lines.append("\n".join(f"not checked: {line}" for line in self.unchecked))
        super().__init__("\n\n".join(lines))


class LoopLintRuntimeWarning(UserWarning):
    """Emitted once per distinct finding in `mode="warn"`, and when checking is inactive.

    One warning per distinct finding (not per step) keeps a long training run's
    log readable.
    """
