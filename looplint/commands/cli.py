"""The `looplint` command line: `check`, `rules`, `rule`/`explain`, `objects`, `clean`, `server`."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from looplint import __version__
from looplint.commands.check_command import CheckRequest, run_check
from looplint.reporting.reporters import FORMATS
from looplint.settings.resolver import Overrides, SettingsResolver

EXIT_CLEAN, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


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
@click.option("--ignore", multiple=True, help="Rules to disable (LL000 included).")
@click.option(
    "--output-format",
    "--format",
    "output_format",
    type=click.Choice(FORMATS),
    default=None,
    help="How to show findings [default: full on a terminal, concise otherwise; text is concise].",
)
@click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Colour the terminal output (auto: only on a terminal and without NO_COLOR).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print findings and errors, nothing else.")
@click.option("--output-file", type=click.Path(dir_okay=False), help="Write the report here.")
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
    help="Read settings from this TOML file for every checked file.",
)
@click.option("--exclude", multiple=True, help="Patterns to exclude, replacing the defaults.")
@click.option("--extend-exclude", multiple=True, help="Patterns to exclude, besides the others.")
@click.option(
    "--force-exclude", is_flag=True, help="Apply exclusions to files named on the command line too."
)
@click.option(
    "--stdin-filename", help="Check source read from standard input, reported under this name."
)
@click.option(
    "--fix",
    is_flag=True,
    help="Apply the safe automatic fixes, then report what remains (with --stdin-filename: "
    "write the fixed source to standard output).",
)
@click.option("--diff", is_flag=True, help="Show the fixes as a unified diff; change nothing.")
@click.option("--add-noqa", is_flag=True, help="Add `# noqa: CODE` to every line with a finding.")
@click.option(
    "--show-settings", is_flag=True, help="Show the settings that apply to the first PATH."
)
@click.option("--show-files", is_flag=True, help="List the files that would be checked.")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the result cache.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where to keep the result cache [default: .looplint_cache in each project's root].",
)
@click.option("--debug", is_flag=True, help="Show tracebacks of internal errors.")
def check(
    paths: tuple[str, ...],
    select: tuple[str, ...],
    extend_select: tuple[str, ...],
    ignore: tuple[str, ...],
    output_format: str | None,
    color: str,
    quiet: bool,
    output_file: str | None,
    exit_zero: bool,
    statistics: bool,
    jobs: int | None,
    config_path: Path | None,
    exclude: tuple[str, ...],
    extend_exclude: tuple[str, ...],
    force_exclude: bool,
    stdin_filename: str | None,
    fix: bool,
    diff: bool,
    add_noqa: bool,
    show_settings: bool,
    show_files: bool,
    no_cache: bool,
    cache_dir: Path | None,
    debug: bool,
) -> None:
    """Check Python files and notebooks under PATHS (default: the current folder)."""
    if add_noqa and (fix or diff):
        _fail("--add-noqa cannot be combined with --fix or --diff")
    if add_noqa and (stdin_filename is not None or paths == ("-",)):
        _fail("--add-noqa edits files; it cannot read standard input")
    request = CheckRequest(
        paths=paths,
        overrides=Overrides(
            select=_split(select),
            extend_select=_split(extend_select) or (),
            ignore=_split(ignore) or (),
            exclude=_split(exclude),
            extend_exclude=_split(extend_exclude) or (),
        ),
        config_path=config_path,
        output_format=output_format,
        color=color,
        quiet=quiet,
        output_file=output_file,
        exit_zero=exit_zero,
        statistics=statistics,
        jobs=jobs,
        force_exclude=force_exclude,
        stdin_filename=stdin_filename if stdin_filename is not None else (
            "<stdin>" if paths == ("-",) else None
        ),
        fix=fix,
        diff=diff,
        add_noqa=add_noqa,
        show_settings=show_settings,
        show_files=show_files,
        no_cache=no_cache,
        cache_dir=cache_dir,
        debug=debug,
    )  # fmt: skip
    sys.exit(run_check(request))


@main.command()
@click.argument("rule", required=False)
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
)
def rules(rule: str | None, output_format: str) -> None:
    """List every code (LL000 and the rules): code, name and summary; with RULE, show
    that rule's documentation (as `looplint explain RULE`)."""
    from looplint.reporting.docs import rules_markdown
    from looplint.settings.resolver import SHIPPED

    if rule is not None:
        _explain(rule, output_format)
        return
    if output_format == "markdown":
        click.echo(rules_markdown(), nl=False)
        return
    if output_format == "json":
        payload = [
            {"code": identity.code, "name": identity.name, "summary": identity.summary}
            for identity in SHIPPED
        ]
        click.echo(json.dumps(payload, indent=2))
        return
    width = max(len(identity.name) for identity in SHIPPED)
    for identity in SHIPPED:
        click.echo(f"{identity.code}  {identity.name:<{width}}  {identity.summary}")


def _explain(rule: str, output_format: str = "text") -> None:
    """Print one rule's documentation (Markdown; with `json`, an object like ruff's)."""
    from looplint.reporting.docs import find_rule

    found = find_rule(rule)
    if found is None:
        _fail(f"unknown rule `{rule}`; `looplint rules` lists them")
        return
    if output_format == "json":
        identity = found.identity
        payload = {
            "code": identity.code,
            "name": identity.name,
            "summary": identity.summary,
            "fixable": bool(found.FIXES),
            "explanation": found.documentation(),
        }
        click.echo(json.dumps(payload, indent=2))
        return
    click.echo(found.documentation(), nl=False)


@main.command()
@click.argument("rule")
def explain(rule: str) -> None:
    """Show the full documentation of RULE (a code such as LL001, or a name)."""
    _explain(rule)


@main.command("rule")
@click.argument("rule_selector", metavar="RULE")
@click.option(
    "--output-format",
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
def rule_command(rule_selector: str, output_format: str) -> None:
    """Show the documentation of RULE, as `ruff rule` does (same as `looplint explain`)."""
    _explain(rule_selector, output_format)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
def objects(paths: tuple[str, ...]) -> None:
    """Show what looplint takes each optimizer, scheduler and scaler for, and why."""
    from looplint.analysis.project import Project
    from looplint.errors import ConfigError, SourceError
    from looplint.files.discovery import FileFinder
    from looplint.reporting.objects_view import recognised_objects, render_objects

    cwd = Path.cwd()
    try:
        resolver = SettingsResolver(None, Overrides(), cwd)
        finder = FileFinder(cwd, exclusions_for=resolver.exclusions_for)
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
            for line in render_objects(found):
                click.echo(line)
    if failed:
        raise SystemExit(2)


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.option(
    "--steps",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many optimizer steps (default: run to the end).",
)
@click.option(
    "--mode",
    type=click.Choice(["warn", "raise"]),
    default="warn",
    show_default=True,
    help="warn: report at the end; raise: stop at the first step with a finding.",
)
@click.option("-m", "as_module", is_flag=True, help="Run a module, as `python -m` does.")
@click.argument("script")
@click.argument("arguments", nargs=-1, type=click.UNPROCESSED)
def run(
    steps: int | None, mode: str, as_module: bool, script: str, arguments: tuple[str, ...]
) -> None:
    """Run a training script unmodified under the runtime checks and report what they find.

    `looplint run train.py --lr 0.1` or `looplint run -m package.train`: exit 0 clean,
    1 with findings, 2 when the script cannot start.
    """
    from looplint.runtime_check.script_run import Target, run_script

    target = Target(script, arguments, is_module=as_module)
    sys.exit(
        run_script(target, steps=steps, mode="raise" if mode == "raise" else "warn", out=sys.stdout)
    )


@main.command()
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also remove this cache (one named with `check --cache-dir`).",
)
@click.option("-q", "--quiet", is_flag=True, help="Print nothing but errors.")
def clean(cache_dir: Path | None, quiet: bool) -> None:
    """Remove the result caches under the current folder (as `ruff clean` does), and the
    one `cache-dir` of its settings names."""
    from looplint.commands.clean_command import run_clean

    sys.exit(run_clean(Path.cwd(), cache_dir, quiet))


@main.command()
def server() -> None:
    """Run the Language Server for editors on standard input/output (`lsp` extra)."""
    try:
        from looplint.commands.server import serve
    except ModuleNotFoundError as error:
        if (error.name or "").partition(".")[0] not in {"pygls", "lsprotocol"}:
            raise
        _fail("`looplint server` needs pygls 2 (the `lsp` extra): pip install 'pygls>=2,<3'")
        return
    serve()
