"""Checking an editor's buffer (unsaved text) as the file it will be saved as.

This is all the Language Server asks of the engine, and it is the path
`looplint check --stdin-filename F -` takes: the settings of the nearest
`pyproject.toml` above the file, the same rule selection, per-file ignores and
exclusions (as with `--force-exclude`), and other modules of the codebase read from
disk for cross-module facts. Nothing here
knows about the editor protocol.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from looplint.analysis.project import Project
from looplint.checking.checker import SingleFix, check_source, single_fixes
from looplint.checking.runner import rules_for
from looplint.commands.check_command import kept_findings
from looplint.files.discovery import FileFinder
from looplint.files.source import SourceFile
from looplint.finding import Finding
from looplint.rule import Rule
from looplint.settings.resolver import SHIPPED, Overrides, SettingsResolver

BUFFER_SUFFIXES = (".py",)
"""Buffers checked as Python text (an `.ipynb` opened as text is JSON, not a program)."""


@dataclass(frozen=True, slots=True)
class BufferCheck:
    """What checking a buffer found; `tracebacks` of internal errors, for the server's log."""

    findings: tuple[Finding, ...]
    tracebacks: tuple[str, ...] = ()


def is_checkable(path: str) -> bool:
    """Whether a buffer saved as `path` is a Python file looplint checks."""
    return path.endswith(BUFFER_SUFFIXES)


def resolver_for(path: str) -> SettingsResolver:
    """The settings resolution `looplint check` would use for the file at `path`: each
    file gets `[tool.looplint]` of the nearest `pyproject.toml` above it."""
    return SettingsResolver(None, Overrides(), Path(path).absolute().parent)


@dataclass(frozen=True, slots=True)
class _Plan:
    """How one file is checked: the rules that run on it, the codes its per-file ignores
    silence, and whether the project's exclusions leave it out altogether."""

    rules: list[Rule]
    ignored: frozenset[str]
    excluded: bool


def _plan(path: str) -> _Plan:
    resolver = resolver_for(path)
    project = resolver.for_path(path)
    # Ask the CLI's own filter which codes it would keep for this path.
    probes = [
        Finding(
            path=path, cell=None, line=1, column=1, code=identity.code, name=identity.name,
            message="", end_line=1, end_column=1,
        )
        for identity in SHIPPED
    ]  # fmt: skip
    shown = frozenset(finding.code for finding in kept_findings(probes, project))
    ignored = frozenset(identity.code for identity in SHIPPED) - shown
    return _Plan(rules_for(shown), ignored, _excluded(path, resolver))


def _excluded(path: str, resolver: SettingsResolver) -> bool:
    """Whether `looplint check --force-exclude PATH` (what pre-commit runs) skips the
    file: excluded by the settings or a `.gitignore`, or inside a virtual environment."""
    if not os.path.isfile(path):
        return False  # a buffer not saved yet: nothing to match against
    finder = FileFinder(Path(path).absolute().parent, exclusions_for=resolver.exclusions_for)
    return not list(finder.files([path], force_exclude=True))


def _source(path: str, text: str) -> SourceFile:
    # The buffer is already text: no decoding, and fixed text goes straight back into it.
    return SourceFile(path, text.removeprefix("\ufeff"))


def check_buffer(path: str, text: str) -> BufferCheck:
    """The findings in `text` if it were saved as `path`; raises `ConfigError`."""
    plan = _plan(path)
    if plan.excluded:
        return BufferCheck(())
    result = check_source(_source(path, text), plan.rules, project=Project())
    findings = sorted(
        (finding for finding in result.findings if finding.code not in plan.ignored),
        key=Finding.sort_key,
    )
    return BufferCheck(tuple(findings), tuple(result.tracebacks))


def buffer_fixes(
    path: str, text: str, wanted: Callable[[Finding], bool] | None = None
) -> list[SingleFix]:
    """The fix of each reported finding in `text` that has one (and that `wanted`
    accepts), each applied alone; raises `ConfigError`."""
    plan = _plan(path)
    if plan.excluded:
        return []
    return single_fixes(_source(path, text), plan.rules, Project(), wanted)


def fix_buffer(path: str, text: str) -> str | None:
    """`text` after every safe fix of a reported finding, as `--fix` would write it
    (None: nothing to fix); raises `ConfigError`."""
    plan = _plan(path)
    if plan.excluded:
        return None
    result = check_source(_source(path, text), plan.rules, fix=True, project=Project())
    return result.fixed_source
