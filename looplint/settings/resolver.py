"""Which settings apply to a file: the nearest settings file above it, as ruff does
(`.looplint.toml`, `looplint.toml`, or a `pyproject.toml` with `[tool.looplint]`).

`looplint check project/src` run from a parent folder uses `project/pyproject.toml`;
a monorepo whose sub-projects carry their own tables checks each file with its own
project's rules, exclusions and cache. `--config FILE` makes one file apply to all.
Command-line flags are laid over whichever file applies.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from looplint.errors import ConfigError
from looplint.files.discovery import Exclusions
from looplint.identity import PARSE_ERROR, RuleIdentity
from looplint.registry import RULES
from looplint.settings.config import (
    CONFIG_FILE_NAMES,
    DEDICATED_FILE_NAMES,
    Settings,
    has_looplint_table,
    settings_from_file,
)
from looplint.settings.selection import selected_codes

SHIPPED: tuple[RuleIdentity, ...] = (PARSE_ERROR, *(entry.identity for entry in RULES))
"""Every code a run can report: `LL000` and the rules."""


@dataclass(frozen=True, slots=True)
class Overrides:
    """Settings given on the command line; `None` leaves the file's value."""

    select: tuple[str, ...] | None = None
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] | None = None
    extend_exclude: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ProjectSettings:
    """What checking a file of one project needs: its settings, codes and exclusions."""

    settings: Settings
    codes: frozenset[str]
    exclusions: Exclusions

    @property
    def root(self) -> Path:
        """The project's folder: where the configuration (or `pyproject.toml`) lies."""
        return self.settings.root


def rebase_pattern(pattern: str, cwd: Path, root: Path) -> str | None:
    """A command-line exclusion (relative to `cwd`) as a pattern relative to `root`.

    Name patterns (`build`, `legacy/`) and `**/` patterns hold anywhere; a path
    pattern that points outside the project is None (it excludes nothing there).
    """
    bare = pattern.rstrip("/")
    if "/" not in bare or pattern.startswith("**"):
        return pattern
    target = os.path.normpath(os.path.join(cwd, bare.lstrip("/")))
    relative = os.path.relpath(target, root)
    if relative == ".." or relative.startswith(".." + os.sep):
        return None
    return Path(relative).as_posix() + ("/" if pattern.endswith("/") else "")


class SettingsResolver:
    """Finds, loads and caches the settings of each folder's project."""

    def __init__(self, config: Path | None, overrides: Overrides, cwd: Path) -> None:
        self._overrides = overrides
        self._cwd = cwd
        self._by_config: dict[Path | None, ProjectSettings] = {}
        self._nearest: dict[str, tuple[Path | None, Path | None]] = {}
        self._fixed: ProjectSettings | None = None
        if config is not None:
            if not config.is_file():
                raise ConfigError(f"{config}: configuration file does not exist")
            self._fixed = self._project(settings_from_file(config))

    def for_folder(self, folder: str) -> ProjectSettings:
        """The settings of the project `folder` (absolute) belongs to."""
        if self._fixed is not None:
            return self._fixed
        config, nearest = self._lookup(folder)
        if config in self._by_config:
            return self._by_config[config]
        if config is not None:
            settings = settings_from_file(config)
        else:
            root = nearest.parent if nearest is not None else self._cwd
            settings = Settings(root=Path(os.path.abspath(root)))
        resolved = self._project(settings)
        self._by_config[config] = resolved
        return resolved

    def for_path(self, path: str) -> ProjectSettings:
        """The settings of the project a file (or, if it is one, a folder) belongs to."""
        absolute = os.path.abspath(path)
        folder = absolute if os.path.isdir(absolute) else os.path.dirname(absolute)
        return self.for_folder(folder)

    def project_root(self, folder: str) -> Path:
        """The root of the project `folder` belongs to, without reading its configuration."""
        if self._fixed is not None:
            return self._fixed.root
        config, nearest = self._lookup(folder)
        found = config or nearest
        return Path(os.path.abspath(found.parent if found is not None else self._cwd))

    def exclusions_for(self, folder: str) -> Exclusions:
        """The exclusions that apply to the entries of `folder` (for `FileFinder`)."""
        return self.for_folder(folder).exclusions

    def _lookup(self, folder: str) -> tuple[Path | None, Path | None]:
        """(nearest settings file, nearest project file at all): in each folder, a
        `.looplint.toml` or `looplint.toml` always holds settings, a `pyproject.toml` only
        with a `[tool.looplint]` table (else it still marks the project's root)."""
        found = self._nearest.get(folder)
        if found is not None:
            return found
        parent = os.path.dirname(folder)
        above = self._lookup(parent) if parent != folder else (None, None)
        found = above
        for name in CONFIG_FILE_NAMES:
            candidate = Path(folder) / name
            if not candidate.is_file():
                continue
            if name in DEDICATED_FILE_NAMES or has_looplint_table(candidate):
                found = (candidate, candidate)
                break
            found = (above[0], candidate)
        self._nearest[folder] = found
        return found

    def _rebased(self, patterns: tuple[str, ...], root: Path) -> tuple[str, ...]:
        found = (rebase_pattern(pattern, self._cwd, root) for pattern in patterns)
        return tuple(pattern for pattern in found if pattern is not None)

    def _project(self, settings: Settings) -> ProjectSettings:
        cli = self._overrides
        extend_exclude = self._rebased(cli.extend_exclude, settings.root)
        exclude = settings.exclude
        if cli.exclude is not None:
            exclude = self._rebased(cli.exclude, settings.root)
        effective = replace(
            settings,
            select=cli.select if cli.select is not None else settings.select,
            extend_select=(*settings.extend_select, *cli.extend_select),
            ignore=(*settings.ignore, *cli.ignore),
            exclude=exclude,
            extend_exclude=(*settings.extend_exclude, *extend_exclude),
        )
        codes = selected_codes(SHIPPED, effective.select, effective.extend_select, effective.ignore)
        exclusions = Exclusions(
            effective.root,
            effective.exclude if cli.exclude is not None or effective.exclude else None,
            effective.extend_exclude,
        )
        return ProjectSettings(effective, codes, exclusions)
