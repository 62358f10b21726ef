"""Which files a run checks: `.py` and `.ipynb` under the given paths, minus the noise.

Skipped while walking: hidden folders, virtual environments, build output,
`__pycache__`, `node_modules`, `site-packages`, what `.gitignore` files ignore, and
the configured `exclude`/`extend-exclude` patterns. A file named on the command line
is always checked, unless `--force-exclude` (for pre-commit, which names files).
A folder named on the command line is walked even when an outer `.gitignore` or an
exclusion covers it: exclusions apply to what lies below the paths you name.

`.gitignore` rules are collected as the walk goes down, so each file costs a few
string operations and pattern matches: this is on the path of every warm run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence

import pathspec

from looplint.errors import ConfigError

SOURCE_SUFFIXES = (".py", ".ipynb")
DEFAULT_EXCLUDE = (
    ".*",
    "__pycache__",
    "build",
    "dist",
    "node_modules",
    "site-packages",
    "venv",
    "*.egg-info",
)

_IgnoreRules = tuple[tuple[str, pathspec.GitIgnoreSpec], ...]
"""(folder, spec) pairs of the `.gitignore` files that apply below a folder."""


def _spec(patterns: Sequence[str]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(patterns)


_NAMED_GROUP = re.compile(r"\(\?P<\w+>")


class _Matcher:
    """A gitignore-style pattern set; one combined regex when no pattern negates."""

    __slots__ = ("_regex", "_spec")

    def __init__(self, patterns: Sequence[str]) -> None:
        self._spec = _spec(patterns)
        self._regex: re.Pattern[str] | None = None
        compiled = [getattr(p, "regex", None) for p in self._spec.patterns]
        includes = [p.include for p in self._spec.patterns]
        if compiled and all(r is not None for r in compiled) and all(includes):
            # pathspec names a group in each pattern; names may not repeat in one regex.
            alternatives = (_NAMED_GROUP.sub("(?:", r.pattern) for r in compiled if r)
            self._regex = re.compile("|".join(f"(?:{a})" for a in alternatives))

    def __bool__(self) -> bool:
        return bool(self._spec.patterns)

    def matches(self, path: str) -> bool:
        if self._regex is not None:
            return self._regex.match(path) is not None
        return self._spec.match_file(path)


class Exclusions:
    """One project's exclusion patterns, matched relative to its root."""

    __slots__ = ("_anchored", "_by_name", "root")

    def __init__(
        self,
        root: os.PathLike[str] | str,
        exclude: Sequence[str] | None = None,
        extend_exclude: Sequence[str] = (),
    ) -> None:
        self.root = os.path.abspath(root)
        patterns = list(DEFAULT_EXCLUDE if exclude is None else exclude) + list(extend_exclude)
        # Unanchored patterns (`build`, `.*`) match a file or folder by its name;
        # anchored ones (`src/gen/`) match its path relative to the project root.
        self._by_name = _Matcher([p for p in patterns if "/" not in p.rstrip("/")])
        self._anchored = _Matcher([p for p in patterns if "/" in p.rstrip("/")])

    def matches(self, path: str, name: str, is_dir: bool) -> bool:
        """Whether the absolute `path` (named `name`) is excluded by these patterns."""
        slash = "/" if is_dir else ""
        if self._by_name.matches(name + slash):
            return True
        if self._anchored and path.startswith(self.root + os.sep):
            return self._anchored.matches(path[len(self.root) + 1 :] + slash)
        return False


class FileFinder:
    """Walks paths and decides, for each file and folder, whether it is checked.

    `exclusions_for(folder)` gives the exclusions of the project a folder belongs to
    (the nearest configuration above it); without it, one set applies everywhere.
    """

    def __init__(
        self,
        root: os.PathLike[str] | str,
        exclude: Sequence[str] | None = None,
        extend_exclude: Sequence[str] = (),
        respect_gitignore: bool = True,
        exclusions_for: Callable[[str], Exclusions] | None = None,
    ) -> None:
        self.root = os.path.abspath(root)
        default = Exclusions(self.root, exclude, extend_exclude)
        self._exclusions_for = exclusions_for or (lambda folder: default)
        self._respect_gitignore = respect_gitignore

    def _own_rules(self, folder: str) -> pathspec.GitIgnoreSpec | None:
        if not self._respect_gitignore:
            return None
        try:
            with open(os.path.join(folder, ".gitignore"), encoding="utf-8", errors="replace") as f:
                return _spec(f.read().splitlines())
        except OSError:
            return None

    def _inherited_rules(self, folder: str) -> _IgnoreRules:
        """`.gitignore` files of the folders above `folder`, up to its repository's root."""
        found: list[tuple[str, pathspec.GitIgnoreSpec]] = []
        current = os.path.dirname(folder)
        while True:
            spec = self._own_rules(current)
            if spec is not None:
                found.append((current, spec))
            if os.path.exists(os.path.join(current, ".git")) or current == self.root:
                break
            parent = os.path.dirname(current)
            if parent == current:
                break
            current = parent
        return tuple(reversed(found))

    def _excluded(self, path: str, name: str, is_dir: bool, rules: _IgnoreRules) -> bool:
        slash = "/" if is_dir else ""
        if self._exclusions_for(os.path.dirname(path)).matches(path, name, is_dir):
            return True
        if is_dir and os.path.isfile(os.path.join(path, "pyvenv.cfg")):
            return True
        for base, spec in rules:
            if path.startswith(base + os.sep):
                relative = path[len(base) + 1 :]
            else:
                relative = os.path.relpath(path, base)
            if spec.match_file(relative + slash):
                return True
        return False

    def files(self, paths: Sequence[str], force_exclude: bool = False) -> Iterator[str]:
        """Every file to check under `paths`; a missing path is a `ConfigError`."""
        for raw in paths:
            if not os.path.lexists(raw):
                raise ConfigError(f"{raw}: no such file or directory")
            if os.path.isdir(raw):
                yield from self._walk(raw)
            elif not (force_exclude and self.excluded_when_named(raw)):
                yield raw

    def is_excluded(self, path: str, is_dir: bool) -> bool:
        """Whether exclusions or `.gitignore` files cover `path` (ignoring its parents)."""
        absolute = os.path.abspath(path)
        rules = self._inherited_rules(absolute)
        return self._excluded(absolute, os.path.basename(absolute), is_dir, rules)

    def excluded_when_named(self, path: str) -> bool:
        """`--force-exclude`: the file, or a folder above it up to the root, is excluded."""
        if not path.endswith(SOURCE_SUFFIXES) or self.is_excluded(path, False):
            return True
        current = os.path.dirname(os.path.abspath(path))
        root = self._exclusions_for(current).root
        while current not in (root, os.getcwd()) and os.path.dirname(current) != current:
            if self.is_excluded(current, True):
                return True
            current = os.path.dirname(current)
        return False

    def _walk(self, top: str) -> Iterator[str]:
        absolute_top = os.path.abspath(top)
        rules_below: dict[str, _IgnoreRules] = {}
        inherited = self._inherited_rules(absolute_top)
        if self._excluded(absolute_top, os.path.basename(absolute_top), True, inherited):
            # The folder was named explicitly although an outer `.gitignore` ignores
            # it: the user's word wins, for everything below it too.
            inherited = ()
        for folder, dirs, files in os.walk(top, followlinks=False):
            absolute = os.path.abspath(folder)
            rules = rules_below.pop(absolute, inherited if absolute == absolute_top else ())
            own = self._own_rules(absolute)
            if own is not None:
                rules = (*rules, (absolute, own))
            kept_dirs = []
            for name in sorted(dirs):
                child = os.path.join(absolute, name)
                if not self._excluded(child, name, True, rules):
                    kept_dirs.append(name)
                    rules_below[child] = rules
            dirs[:] = kept_dirs
            for name in sorted(files):
                if name.endswith(SOURCE_SUFFIXES) and not self._excluded(
                    os.path.join(absolute, name), name, False, rules
                ):
                    yield os.path.normpath(os.path.join(folder, name))
