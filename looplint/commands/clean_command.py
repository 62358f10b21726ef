"""`looplint clean`: remove the result caches, as `ruff clean` does.

Every `.looplint_cache` under the current folder goes (a monorepo has one per project),
and so does the folder the settings' `cache-dir` (or `--cache-dir`) names. Only folders
that are looplint's own caches are removed: a mistaken `cache-dir = "."` must never
delete a project.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from looplint.checking.cache import CACHE_DIR_NAME, caches_under, is_cache_folder
from looplint.errors import ConfigError
from looplint.settings.resolver import Overrides, SettingsResolver

EXIT_CLEAN, EXIT_ERROR = 0, 2


def run_clean(cwd: Path, cache_dir: Path | None, quiet: bool) -> int:
    """Remove the caches; the exit code."""
    wanted = caches_under(cwd)
    try:
        settings = SettingsResolver(None, Overrides(), cwd).for_folder(str(cwd)).settings
    except ConfigError as error:
        click.echo(f"looplint: error: {error}", err=True)
        return EXIT_ERROR
    named = [settings.root / (settings.cache_dir or CACHE_DIR_NAME)]
    if cache_dir is not None:
        named.append(cache_dir)
    for folder in named:
        if not folder.is_dir():
            continue
        if not is_cache_folder(folder):
            click.echo(f"looplint: warning: {folder} is not a looplint cache; left alone", err=True)
        elif all(not folder.samefile(other) for other in wanted):
            wanted.append(folder)
    for folder in wanted:
        shutil.rmtree(folder, ignore_errors=True)
        if not quiet:
            click.echo(f"Removed {_shown(folder, cwd)}")
    if not wanted and not quiet:
        click.echo("No looplint cache found.")
    return EXIT_CLEAN


def _shown(folder: Path, cwd: Path) -> str:
    """`folder` relative to `cwd` when it lies below it."""
    try:
        return str(folder.absolute().relative_to(cwd))
    except ValueError:
        return str(folder)
