"""What checking one file produced, as plain data: built by the checker, kept by the cache.

Apart from the checker so that a warm run, which only reads results back from the cache,
never imports LibCST.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from looplint.analysis.binding import Binding
from looplint.files.source import FileStamp
from looplint.finding import Finding
from looplint.identity import PARSE_ERROR
from looplint.settings.suppression import Notice

if TYPE_CHECKING:
    from looplint.analysis.project import Dependency


@dataclass(slots=True)
class FileResult:
    """What checking one file produced: findings, and tracebacks kept for `--debug`."""

    path: str
    findings: list[Finding] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    stamp: FileStamp | None = None
    """How the file looked when read; None when it could not be read (never cached)."""
    fixed_source: str | None = None
    """With `fix=True`: the file's text after the fixes, when any was applied."""
    fixes: int = 0
    bindings: list[Binding] = field(default_factory=list)
    """What the file passes to functions of other modules (see `Binding`)."""
    dependencies: dict[str, Dependency] = field(default_factory=dict)
    """Other files whose content the findings depend on, as they were read."""
    incoming: tuple[Binding, ...] = ()
    """The bindings from other files it was checked with."""
    notices: list[Notice] = field(default_factory=list)
    """Suppression comments that misfire (`# noqa LL001` without its colon, unknown codes)."""


def error_finding(path: str, message: str, line: int = 1, column: int = 1) -> Finding:
    """An `LL000` finding: the file could not be checked, and why."""
    return Finding(
        path=path,
        cell=None,
        line=line,
        column=column,
        code=PARSE_ERROR.code,
        name=PARSE_ERROR.name,
        message=message,
        end_line=line,
        end_column=column,
    )
