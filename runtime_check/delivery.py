"""How a finished block's findings reach the user: a raised error or warnings at their lines.

`mode="raise"` raises one `LoopLintRuntimeError` listing every finding (or adds
it as a note to the exception the block already raised); `mode="warn"` emits one
`LoopLintRuntimeWarning` per finding, attributed to the user's file and line so
Python's warning filters and pytest's summary show the line to fix.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

from .call_site import CallSite, user_call_site
from .errors import LoopLintRuntimeError, LoopLintRuntimeWarning
from .report import Report

Mode = Literal["raise", "warn"]


def warn_at(warning: Warning, site: CallSite | None) -> None:
    """Emit `warning` attributed to the user's line (not to looplint's own file)."""
    if site is None:
        warnings.warn(warning, stacklevel=4)
        return
    module = Path(site.file).stem
    warnings.warn_explicit(warning, type(warning), site.file, site.line, module=module)


def deliver(report: Report, mode: Mode, exc: BaseException | None) -> None:
    """Raise or warn about a closed report's findings, and warn when checking was inactive."""
    __tracebackhide__ = True
    findings = report.findings
    exit_site = user_call_site() if findings or report.inactive else None
    for reason in report.inactive:
        warn_at(LoopLintRuntimeWarning(reason), exit_site)
    if not findings:
        return
    if mode == "warn":
        for finding in findings:
            site = CallSite(finding.file, finding.line or 0) if finding.file else exit_site
            warn_at(LoopLintRuntimeWarning(str(finding)), site)
        return
    error = LoopLintRuntimeError(findings, unchecked=report.unchecked)
    if exc is None:
        raise error
    if not isinstance(exc, LoopLintRuntimeError) and hasattr(exc, "add_note"):
        exc.add_note(str(error))
