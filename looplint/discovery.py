"""Which files a run checks: `.py` and `.ipynb` under the given paths, minus the noise.

Skipped while walking: hidden folders, virtual environments, build output,
`__pycache__`, `node_modules`, `site-packages`, what `.gitignore` files ignore, and
the configured `exclude`/`extend-exclude` patterns. A file named on the command line
is always checked, unless `--force-exclude` (for pre-commit, which names files).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

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


def _spec(patterns: Sequence[str]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(patterns)


class FileFinder:
    """Walks paths and decides, for each file and folder, whether it is checked."""

    def __init__(
        self,
        root: Path,
        exclude: Sequence[str] | None = None,
        extend_exclude: Sequence[str] = (),
        respect_gitignore: bool = True,
    ) -> None:
        self.root = Path(os.path.abspath(root))
        patterns = list(DEFAULT_EXCLUDE if exclude is None else exclude) + list(extend_exclude)
        # Unanchored patterns (`build`, `.*`) match a file or folder by name as the walk
        # reaches it, so they never exclude the folders above a path given explicitly.
        self._by_name = _spec([p for p in patterns if "/" not in p.rstrip("/")])
        self._anchored = _spec([p for p in patterns if "/" in p.rstrip("/")])
        self._respect_gitignore = respect_gitignore
        self._gitignores: dict[Path, pathspec.GitIgnoreSpec | None] = {}

    def _relative(self, path: Path) -> str | None:
        try:
            return Path(os.path.abspath(path)).relative_to(self.root).as_posix()
        except ValueError:
            return None

    def _gitignore(self, folder: Path) -> pathspec.GitIgnoreSpec | None:
        if folder not in self._gitignores:
            spec = None
            ignore_file = folder / ".gitignore"
            if self._respect_gitignore and ignore_file.is_file():
                try:
                    spec = _spec(
                        ignore_file.read_text(encoding="utf-8", errors="replace").splitlines()
                    )
                except OSError:
                    spec = None
            self._gitignores[folder] = spec
        return self._gitignores[folder]

    def is_excluded(self, path: Path, is_dir: bool, floor: Path | None = None) -> bool:
        """Whether a configured or default exclusion, or a `.gitignore`, covers `path`.

        `.gitignore` files above `floor` are not consulted (an explicitly given
        folder is checked even when an outer `.gitignore` ignores it).
        """
        slash = "/" if is_dir else ""
        if self._by_name.match_file(path.name + slash):
            return True
        relative = self._relative(path)
        if relative is not None and relative != "." and self._anchored.match_file(relative + slash):
            return True
        if is_dir and (path / "pyvenv.cfg").is_file():
            return True
        folder = path.absolute().parent
        for ancestor in (folder, *folder.parents):
            spec = self._gitignore(ancestor)
            if spec is not None:
                try:
                    local = path.absolute().relative_to(ancestor.absolute()).as_posix()
                except ValueError:
                    local = None
                if local and spec.match_file(local + ("/" if is_dir else "")):
                    return True
            if (ancestor / ".git").exists() or ancestor == self.root or ancestor == floor:
                break
        return False

    def files(self, paths: Sequence[str], force_exclude: bool = False) -> Iterator[str]:
        """Every file to check under `paths`; a missing path is a `ConfigError`."""
        for raw in paths:
            path = Path(raw)
            if not os.path.lexists(raw):
                raise ConfigError(f"{raw}: no such file or directory")
            if path.is_dir():
                yield from self._walk(path)
            elif not (force_exclude and self._excluded_with_parents(path)):
                yield raw

    def _excluded_with_parents(self, path: Path) -> bool:
        """`--force-exclude`: the file, or a folder above it up to the root, is excluded."""
        if path.suffix not in SOURCE_SUFFIXES or self.is_excluded(path, False):
            return True
        for parent in path.absolute().parents:
            if parent == self.root or parent == Path.cwd() or parent.parent == parent:
                return False
            if self.is_excluded(parent, True):
                return True
        return False

    def _walk(self, top: Path) -> Iterator[str]:
        floor = top.absolute()
        for folder, dirs, files in os.walk(top, followlinks=False):
            base = Path(folder)
            dirs[:] = sorted(d for d in dirs if not self.is_excluded(base / d, True, floor))
            for name in sorted(files):
                if name.endswith(SOURCE_SUFFIXES) and not self.is_excluded(
                    base / name, False, floor
                ):
                    yield os.path.join(folder, name)
