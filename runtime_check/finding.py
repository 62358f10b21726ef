"""A runtime finding: one distinct bug seen while training ran, as a plain value.

Findings are frozen values so that they can be compared in tests, stored, and
printed after the training objects they talk about are gone: they name
optimizers and parameters by label, never by reference. This module imports
nothing else of the checker but the call site, so the error type and the report
can both build on it without an import circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .call_site import CallSite

_SHOWN_PARAMETERS = 8


def describe_names(names: Sequence[str]) -> str:
    """Join parameter names for a message, eliding long lists so messages stay readable."""
    shown = ", ".join(f"`{name}`" for name in names[:_SHOWN_PARAMETERS])
    hidden = len(names) - _SHOWN_PARAMETERS
    return shown if hidden <= 0 else f"{shown} and {hidden} more"


@dataclass(frozen=True, slots=True)
class Finding:
    """One distinct bug seen while training ran.

    `code` and `name` are the same `LL` identity the static rules use, so a user
    reads one vocabulary; `check` says which runtime check fired (one rule may
    have several, e.g. LL001 `stale-gradient` and `accumulation-broken`).
    `step` is the 0-based index of the optimizer step where it was first seen
    (`None` for checks made when the block ends), and `occurrences` counts how
    many times it was seen, so repeated steps give one finding, not thousands.
    `file` and `line` locate the first offending call in the user's code (the
    `optimizer.step()` or `scheduler.step()` line; the `with watch(...)` line for
    checks made when the block ends); `location` joins them as `path:line`.
    """

    code: str
    name: str
    check: str
    message: str
    optimizer: str | None = None
    parameters: tuple[str, ...] = ()
    step: int | None = None
    occurrences: int = 1
    file: str | None = None
    line: int | None = None

    @property
    def location(self) -> str | None:
        """`path:line` of the first offending call in the user's code, when known."""
        if self.file is None:
            return None
        return str(CallSite(self.file, self.line or 0))

    def __str__(self) -> str:
        where = [part for part in (self.optimizer, self._step_text()) if part]
        context = f" [{', '.join(where)}]" if where else ""
        place = f"{self.location}: " if self.file is not None else ""
        text = f"{place}{self.code} {self.name} ({self.check}){context}: {self.message}"
        if self.parameters:
            text += f"\n    parameters: {describe_names(self.parameters)}"
        return text

    def _step_text(self) -> str:
        if self.step is None:
            return ""
        text = f"step {self.step}"
        if self.occurrences > 1:
            text += f", seen {self.occurrences} times"
        return text
