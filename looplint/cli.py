"""The `looplint` command line: `check`, `rules`, `explain`."""

from __future__ import annotations

import difflib
import json
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import click
import pathspec

from looplint import __version__
from looplint.cache import CACHE_DIR_NAME, ResultCache
from looplint.config import Settings, load_settings
from looplint.discovery import FileFinder
from looplint.errors import ConfigError, SourceError
from looplint.finding import Finding
from looplint.identity import ALL_IDENTITIES, BY_CODE
from looplint.registry import RULES
from looplint.reporters import FORMATS, REPORTERS, statistics_report
from looplint.runner import RunResult, rules_for, run
from looplint.selection import expand, selected_codes
from looplint.source import source_from_bytes

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2
_SHIPPED = [BY_CODE["LL000"], *(entry.identity for entry in RULES)]


def _split(values: Sequence[str]) -> tuple[str, ...] | None:
    if not values:
        return None
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())


def _fail(message: str) -> None:
    click.echo(f"looplint: error: {message}", err=True)
    sys.exit(EXIT_ERROR)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="looplint")
def main() -> None:
    """Find the silent bugs of PyTorch training loops."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@click.option(
    "--select",
    multiple=True,
    help="Rules to enable: codes, prefixes, names or ALL (comma-separated).",
)
@click.option("--extend-select", multiple=True, help="Rules to enable on top of `select`.")
@click.option("--ignore", multiple=True, help="Rules to disable.")
@click.option(
    "--format", "output_format", type=click.Choice(FORMATS), default="text", show_default=True
)
@click.option(
    "--output-file", type=click.Path(dir_okay=False, writable=True), help="Write the report here."
)
@click.option("--exit-zero", is_flag=True, help="Exit 0 even when there are findings.")
@click.option("--statistics", is_flag=True, help="Show counts per rule instead of each finding.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Processes to use [default: all cores].",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Read settings from this TOML file.",
)
@click.option(
    "--force-exclude", is_flag=True, help="Apply exclusions to files named on the command line too."
)
@click.option(
    "--stdin-filename", help="Check source read from standard input, reported under this name."
)
@click.option(
    "--fix", is_flag=True, help="Apply the safe automatic fixes, then report what remains."
)
@click.option("--diff", is_flag=True, help="Show the fixes as a unified diff; change nothing.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to keep the result cache [default: .looplint_cache in the project root].",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def check(
    paths: tuple[str, ...],
    select: tuple[str, ...],
    extend_select: tuple[str, ...],
    ignore: tuple[str, ...],
    output_format: str,
    output_file: str | None,
    exit_zero: bool,
    statistics: bool,
    jobs: int | None,
    config_path: Path | None,
    force_exclude: bool,
    stdin_filename: str | None,
    fix: bool,
    diff: bool,
    no_cache: bool,
    cache_dir: Path | None,
    debug: bool,
) -> None:
    """Check Python files and notebooks under PATHS (default: the current folder)."""
    try:
        settings = load_settings(config_path, Path.cwd())
        codes = selected_codes(
            _SHIPPED,
            _split(select) or settings.select,
            (*settings.extend_select, *(_split(extend_select) or ())),
            (*settings.ignore, *(_split(ignore) or ())),
        )
        if stdin_filename is not None or paths == ("-",):
            result = _check_stdin(stdin_filename or "<stdin>", codes)
        else:
            finder = FileFinder(settings.root, settings.exclude or None, settings.extend_exclude)
            files = list(finder.files(list(paths) or ["."], force_exclude))
            cache = None
            if not no_cache:
                directory = cache_dir or settings.root / (settings.cache_dir or CACHE_DIR_NAME)
                cache = ResultCache(directory, codes)
            result = run(files, codes, jobs, cache, fix=fix or diff)
        findings = _apply_per_file_ignores(result.findings, settings)
    except ConfigError as error:
        _fail(str(error))
        return
    except Exception as error:
        if debug:
            traceback.print_exc()
        _fail(f"internal error: {type(error).__name__}: {error}")
        return
    if diff:
        _show_diffs(result.fixed)
        for path, _ in result.tracebacks:
            click.echo(f"looplint: internal error while checking {path}", err=True)
        sys.exit(EXIT_ERROR if result.tracebacks else EXIT_FINDINGS if result.fixed else EXIT_CLEAN)
    if fix:
        _write_fixes(result.fixed)
        if result.fixes:
            noun = "fix" if result.fixes == 1 else "fixes"
            click.echo(
                f"looplint: applied {result.fixes} {noun} to {len(result.fixed)} file(s)", err=True
            )
    report = statistics_report(findings) if statistics else REPORTERS[output_format](findings)
    if output_file:
        Path(output_file).write_text(report, encoding="utf-8")
    else:
        click.echo(report, nl=False)
    for path, tb in result.tracebacks:
        click.echo(
            f"looplint: internal error while checking {path} (a bug in looplint; please report it)",
            err=True,
        )
        if debug:
            click.echo(tb, err=True)
    if result.tracebacks:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_FINDINGS if findings and not exit_zero else EXIT_CLEAN)


def _show_diffs(fixed: list[tuple[str, str]]) -> None:
    for path, text in sorted(fixed):
        original = Path(path).read_text(encoding="utf-8")
        lines = difflib.unified_diff(
            original.splitlines(keepends=True),
            text.splitlines(keepends=True),
            fromfile=f"a/{path}",
            tofile=f"b/{path}",
        )
        click.echo("".join(lines), nl=False)


def _write_fixes(fixed: list[tuple[str, str]]) -> None:
    for path, text in fixed:
        with open(path, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)


def _check_stdin(filename: str, codes: frozenset[str]) -> RunResult:
    from looplint.checker import check_source, error_finding

    data = sys.stdin.buffer.read()
    outcome = RunResult(files=1)
    try:
        source = source_from_bytes(filename, data)
    except SourceError as error:
        outcome.findings.append(error_finding(filename, str(error)))
        return outcome
    from looplint.analysis.project import Project

    # Editors pipe the buffer in under its real name: its imports resolve from there.
    result = check_source(source, rules_for(codes), project=Project())
    outcome.findings = sorted(result.findings, key=Finding.sort_key)
    outcome.tracebacks = [(filename, tb) for tb in result.tracebacks]
    return outcome


def _apply_per_file_ignores(findings: list[Finding], settings: Settings) -> list[Finding]:
    if not settings.per_file_ignores:
        return findings
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


@main.command()
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
)
def rules(output_format: str) -> None:
    """List every rule: code, name and summary."""
    from looplint.docs import rules_markdown

    if output_format == "markdown":
        click.echo(rules_markdown(), nl=False)
        return
    if output_format == "json":
        payload = [
            {"code": r.identity.code, "name": r.identity.name, "summary": r.identity.summary}
            for r in RULES
        ]
        click.echo(json.dumps(payload, indent=2))
        return
    width = max(len(entry.identity.name) for entry in RULES)
    for rule in RULES:
        click.echo(f"{rule.identity.code}  {rule.identity.name:<{width}}  {rule.identity.summary}")


@main.command()
@click.argument("rule")
def explain(rule: str) -> None:
    """Show the full documentation of RULE (a code such as LL001, or a name)."""
    from looplint.docs import find_rule

    found = find_rule(rule)
    if found is None:
        _fail(f"unknown rule `{rule}`; `looplint rules` lists them")
        return
    click.echo(found.documentation(), nl=False)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
def objects(paths: tuple[str, ...]) -> None:
    """Show what looplint takes each optimizer, scheduler and scaler for, and why."""
    from looplint.analysis.project import Project
    from looplint.objects_view import recognised_objects

    try:
        settings = load_settings(None, Path.cwd())
        finder = FileFinder(settings.root, settings.exclude or None, settings.extend_exclude)
        files = list(finder.files(list(paths) or ["."], False))
    except ConfigError as error:
        _fail(str(error))
        return
    project = Project()
    failed = False
    for path in files:
        try:
            found = recognised_objects(path, project)
        except SourceError as error:
            click.echo(f"{path}: error: {error}", err=True)
            failed = True
            continue
        if found:
            click.echo(path)
            for recognised in found:
                click.echo(recognised.render())
    if failed:
        raise SystemExit(2)


@main.command()
def server() -> None:
    """Run the Language Server for editors on standard input/output (`lsp` extra)."""
    try:
        from looplint.server import serve
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in {"pygls", "lsprotocol"}:
            raise
        _fail("`looplint server` needs pygls 2 (the `lsp` extra): pip install 'pygls>=2,<3'")
        return
    serve()
