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
    from .findings import Finding


class LoopLintRuntimeError(AssertionError):
    """Raised when a watched block ends with findings (`mode="raise"`).

    The message lists every finding with its `LL` code, so a failing test report
    or a traceback is enough to fix the loop; `.findings` keeps them as objects.
    """

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings: tuple[Finding, ...] = tuple(findings)
        count = len(self.findings)
        noun = "bug" if count == 1 else "bugs"
        lines = [f"looplint found {count} training-loop {noun} while the code ran:"]
        lines.extend(str(finding) for finding in self.findings)
        super().__init__("\n\n".join(lines))


class LoopLintRuntimeWarning(UserWarning):
    """Emitted once per distinct finding in `mode="warn"`, and when checking is inactive.

    One warning per distinct finding (not per step) keeps a long training run's
    log readable.
    """
