"""`looplint check`: resolve settings per file, run, fix, report; returns the exit code.

The command-line layer (`cli.py`) only parses options into a `CheckRequest`; this
module decides what happens. Files are grouped by the project whose settings apply
to them (the nearest `[tool.looplint]`), and each group runs with its own rules,
per-file ignores and cache; the report covers every group at once.
"""

from __future__ import annotations

import difflib
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click
import pathspec

from looplint.checking.cache import CACHE_DIR_NAME, ResultCache
from looplint.checking.runner import RunResult, rules_for, run
from looplint.errors import ConfigError, SourceError
from looplint.files.discovery import FileFinder
from looplint.files.notebook import changed_cells
from looplint.finding import Finding
from looplint.identity import ALL_IDENTITIES
from looplint.reporting.report_context import ReportContext, repository_root
from looplint.reporting.reporters import REPORTERS, TERMINAL_FORMATS, statistics_json
from looplint.reporting.settings_report import settings_report
from looplint.reporting.terminal import statistics_report
from looplint.settings.config import Settings
from looplint.settings.resolver import Overrides, ProjectSettings, SettingsResolver
from looplint.settings.selection import expand

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


@dataclass(frozen=True, slots=True)
class CheckRequest:
    """Everything `looplint check` was asked to do."""

    paths: tuple[str, ...]
    overrides: Overrides
    config_path: Path | None = None
    output_format: str | None = None
    color: str = "auto"
    quiet: bool = False
    output_file: str | None = None
    exit_zero: bool = False
    statistics: bool = False
    jobs: int | None = None
    force_exclude: bool = False
    stdin_filename: str | None = None
    fix: bool = False
    diff: bool = False
    add_noqa: bool = False
    show_settings: bool = False
    show_files: bool = False
    no_cache: bool = False
    cache_dir: Path | None = None
    debug: bool = False


def _error(message: str) -> int:
    click.echo(f"looplint: error: {message}", err=True)
    return EXIT_ERROR


def _warn(request: CheckRequest, message: str) -> None:
    if not request.quiet:
        click.echo(f"looplint: warning: {message}", err=True)


def run_check(request: CheckRequest) -> int:
    """Carry out `request`; never raises for bad input (exit code 2 instead)."""
    cwd = Path.cwd()
    try:
        resolver = SettingsResolver(request.config_path, request.overrides, cwd)
        if request.show_settings:
            target = request.stdin_filename or (request.paths[0] if request.paths else ".")
            click.echo(settings_report(target, resolver.for_path(target)), nl=False)
            return EXIT_CLEAN
        if request.stdin_filename is not None:
            return _check_stdin(request, resolver, cwd)
        finder = FileFinder(cwd, exclusions_for=resolver.exclusions_for)
        files = list(finder.files(list(request.paths) or ["."], request.force_exclude))
        if request.show_files:
            click.echo("".join(f"{path}\n" for path in sorted(files)), nl=False)
            return EXIT_CLEAN
        result, findings = _check_files(request, resolver, files)
        base = repository_root(cwd, resolver.project_root(str(cwd)))
    except ConfigError as error:
        return _error(str(error))
    except Exception as error:
        if request.debug:
            traceback.print_exc()
        return _error(f"internal error: {type(error).__name__}: {error}")
    if not files:
        _warn(request, f"no Python files found under {', '.join(request.paths) or '.'}")
    _show_notices(request, result)
    if request.diff:
        _show_diffs(result.fixed)
        _show_tracebacks(request, result)
        if result.tracebacks:
            return EXIT_ERROR
        return EXIT_FINDINGS if result.fixed else EXIT_CLEAN
    if request.add_noqa:
        return _add_noqa(request, result, findings)
    if request.fix:
        _write_fixes(result.fixed)
        _tell_fixes(request, result)
    status = _report(request, findings, ReportContext(base, _colour(request), None,
                                                      not request.quiet))  # fmt: skip
    if status is not None:
        return status
    _show_tracebacks(request, result)
    if result.tracebacks:
        return EXIT_ERROR
    return EXIT_FINDINGS if findings and not request.exit_zero else EXIT_CLEAN


def _check_files(
    request: CheckRequest, resolver: SettingsResolver, files: Sequence[str]
) -> tuple[RunResult, list[Finding]]:
    """Run each project's files with its settings; the merged result and kept findings."""
    groups: dict[int, tuple[ProjectSettings, list[str]]] = {}
    by_folder: dict[str, ProjectSettings] = {}
    for path in files:
        folder = os.path.dirname(path)
        project = by_folder.get(folder)
        if project is None:
            project = by_folder[folder] = resolver.for_folder(os.path.abspath(folder or "."))
        groups.setdefault(id(project), (project, []))[1].append(path)
    merged = RunResult()
    findings: list[Finding] = []
    for project, paths in groups.values():
        cache = None
        if not request.no_cache:
            settings = project.settings
            directory = request.cache_dir or settings.root / (settings.cache_dir or CACHE_DIR_NAME)
            cache = ResultCache(directory, project.codes)
        result = run(paths, project.codes, request.jobs, cache, fix=request.fix or request.diff)
        merged.files += result.files
        merged.cached += result.cached
        merged.fixed += result.fixed
        merged.fixes += result.fixes
        merged.tracebacks += result.tracebacks
        merged.notices += result.notices
        findings += kept_findings(result.findings, project)
    findings.sort(key=Finding.sort_key)
    return merged, findings


def kept_findings(findings: Sequence[Finding], project: ProjectSettings) -> list[Finding]:
    """Findings of enabled codes that no per-file ignore of the project removes."""
    enabled = [f for f in findings if f.code in project.codes]
    return apply_per_file_ignores(enabled, project.settings)


def apply_per_file_ignores(findings: Sequence[Finding], settings: Settings) -> list[Finding]:
    """Drop findings whose path (relative to the project root) matches an ignore pattern."""
    if not settings.per_file_ignores:
        return list(findings)
    specs = [
        (
            pathspec.GitIgnoreSpec.from_lines([pattern]),
            {c for s in selectors for c in expand(s, ALL_IDENTITIES)},
        )
        for pattern, selectors in settings.per_file_ignores.items()
    ]
    kept = []
    for finding in findings:
        path = Path(finding.path)
        try:
            relative = Path(os.path.abspath(path)).relative_to(settings.root).as_posix()
        except ValueError:
            relative = path.as_posix()
        if any(finding.code in codes and spec.match_file(relative) for spec, codes in specs):
            continue
        kept.append(finding)
    return kept


def _check_stdin(request: CheckRequest, resolver: SettingsResolver, cwd: Path) -> int:
    """Check (and with `--fix`/`--diff`, fix) a buffer piped in under a file's name."""
    from looplint.analysis.project import Project
    from looplint.checking.checker import check_source
    from looplint.checking.result import error_finding
    from looplint.files.source import source_from_bytes

    filename = request.stdin_filename or "<stdin>"
    project = resolver.for_path(filename)
    data = sys.stdin.buffer.read()
    finder = FileFinder(cwd, exclusions_for=resolver.exclusions_for)
    if request.force_exclude and finder.excluded_when_named(filename):
        # An editor may send any buffer; an excluded one is passed through untouched.
        if request.fix:
            sys.stdout.buffer.write(data)
        return EXIT_CLEAN
    fixing = request.fix or request.diff
    fixed_text: str | None = None
    tracebacks: list[str] = []
    try:
        source = source_from_bytes(filename, data)
    except SourceError as error:
        raw = [error_finding(filename, str(error))]
        original = data.decode("utf-8", errors="surrogateescape")
    else:
        original = source.text if source.notebook is None else data.decode("utf-8-sig")
        # Editors pipe the buffer in under its real name: its imports resolve from there.
        result = check_source(source, rules_for(project.codes), fix=fixing, project=Project())
        raw, tracebacks, fixed_text = result.findings, result.tracebacks, result.fixed_source
        for notice in result.notices:
            _warn(request, f"{notice.location(filename)}: {notice.message}")
    findings = sorted(kept_findings(raw, project), key=Finding.sort_key)
    for _ in tracebacks:
        click.echo(f"looplint: internal error while checking {filename}", err=True)
    if request.diff:
        if fixed_text is not None:
            _echo_diff(filename, original, fixed_text)
        return EXIT_ERROR if tracebacks else EXIT_FINDINGS if fixed_text else EXIT_CLEAN
    base = repository_root(cwd, resolver.project_root(str(cwd)))
    shown = fixed_text if fixed_text is not None else original
    context = ReportContext(base, _colour(request, stream=sys.stderr if request.fix else None),
                            {filename: shown}, not request.quiet)  # fmt: skip
    if request.fix:
        # Unfixed input goes back byte for byte: an editor replaces its buffer with this.
        sys.stdout.buffer.write(fixed_text.encode("utf-8") if fixed_text is not None else data)
        sys.stdout.buffer.flush()
        if fixed_text is not None and not request.quiet:
            click.echo(f"looplint: applied fixes to {filename}", err=True)
    status = _report(request, findings, context, to_stderr=request.fix)
    if status is not None:
        return status
    if tracebacks:
        return EXIT_ERROR
    return EXIT_FINDINGS if findings and not request.exit_zero else EXIT_CLEAN


def _colour(request: CheckRequest, stream: object = None) -> bool:
    """Colour only on a terminal, unless `--color` says otherwise; `NO_COLOR` is honoured."""
    if request.color != "auto":
        return request.color == "always"
    if request.output_file or os.environ.get("NO_COLOR"):
        return False
    target = stream if stream is not None else sys.stdout
    isatty = getattr(target, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


def _format(request: CheckRequest, to_stderr: bool) -> str:
    if request.output_format is not None:
        return request.output_format
    if request.output_file:
        return "concise"
    stream = sys.stderr if to_stderr else sys.stdout
    return "full" if stream.isatty() else "concise"


def _report(
    request: CheckRequest,
    findings: Sequence[Finding],
    context: ReportContext,
    to_stderr: bool = False,
) -> int | None:
    """Write the report; an exit code if that failed, else None."""
    output_format = _format(request, to_stderr)
    if request.statistics:
        reporter = statistics_json if output_format == "json" else statistics_report
        report = reporter(findings, context)
    else:
        if output_format not in TERMINAL_FORMATS and output_format != "text":
            context.color = False
        report = REPORTERS[output_format](findings, context)
    if request.output_file:
        target = Path(request.output_file)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(report, encoding="utf-8")
        except OSError as error:
            return _error(f"{target}: cannot write the report: {error.strerror or error}")
    else:
        click.echo(report, nl=False, err=to_stderr, color=context.color)
    return None


def _show_notices(request: CheckRequest, result: RunResult) -> None:
    for path, notice in result.notices:
        _warn(request, f"{notice.location(path)}: {notice.message}")


def _show_tracebacks(request: CheckRequest, result: RunResult) -> None:
    for path, tb in result.tracebacks:
        click.echo(
            f"looplint: internal error while checking {path} (a bug in looplint; please report it)",
            err=True,
        )
        if request.debug:
            click.echo(tb, err=True)


def _tell_fixes(request: CheckRequest, result: RunResult) -> None:
    if result.fixes and not request.quiet:
        noun = "fix" if result.fixes == 1 else "fixes"
        click.echo(
            f"looplint: applied {result.fixes} {noun} to {len(result.fixed)} file(s)", err=True
        )


def _add_noqa(request: CheckRequest, result: RunResult, findings: Sequence[Finding]) -> int:
    from looplint.commands.add_noqa import add_noqa

    by_path: dict[str, list[Finding]] = {}
    for finding in findings:
        by_path.setdefault(finding.path, []).append(finding)
    added = 0
    for path, found in sorted(by_path.items()):
        edit = add_noqa(path, found)
        added += edit.added
        if edit.skipped is not None:
            _warn(request, f"{path}: no `# noqa` added: {edit.skipped}")
    if not request.quiet:
        noun = "directive" if added == 1 else "directives"
        click.echo(f"Added {added} noqa {noun}.", err=True)
    _show_tracebacks(request, result)
    return EXIT_ERROR if result.tracebacks else EXIT_CLEAN


def _echo_diff(path: str, original: str, fixed: str) -> None:
    """A unified diff; for a notebook, one per changed cell (`a/nb.ipynb:cell 3`), of the
    cell's code rather than of the JSON around it."""
    if path.endswith(".ipynb"):
        for cell, before, after in changed_cells(original, fixed):
            _echo_text_diff(f"{path}:cell {cell}", before, after)
        return
    _echo_text_diff(path, original, fixed)


def _echo_text_diff(name: str, original: str, fixed: str) -> None:
    def lines(text: str) -> list[str]:
        return (text if text.endswith("\n") or not text else text + "\n").splitlines(True)

    diff = difflib.unified_diff(
        lines(original), lines(fixed), fromfile=f"a/{name}", tofile=f"b/{name}"
    )
    click.echo("".join(diff), nl=False)


def _show_diffs(fixed: list[tuple[str, str]]) -> None:
    for path, text in sorted(fixed):
        _echo_diff(path, Path(path).read_text(encoding="utf-8"), text)


def _write_fixes(fixed: list[tuple[str, str]]) -> None:
    for path, text in fixed:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
