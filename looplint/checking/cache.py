"""Per-file results kept between runs, so an unchanged codebase is checked in moments.

One JSON file per *fingerprint* (looplint and LibCST versions, enabled rules) under
`.looplint_cache/` in the project root. Entries are keyed by absolute path and
validated by content hash; size and modification time are only a shortcut that
spares re-reading files nobody touched. An entry also records every other module
its findings were drawn from (cross-module analysis) and what other files passed
in: a change to any of them invalidates it. Writes are atomic (`os.replace` of a
temporary file), so concurrent runs never leave a torn file; a corrupt or foreign
cache file is ignored and rewritten.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from looplint import __version__
from looplint.files.source import FileStamp, content_digest
from looplint.finding import Finding

if TYPE_CHECKING:
    from looplint.checking.result import FileResult

CACHE_DIR_NAME = ".looplint_cache"
_FORMAT = 4
_IGNORE_NOTE = "# Created by looplint: the cache is not for version control.\n*\n"
_NOT_SEARCHED = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", "site-packages"})


def _implementation_digest() -> str:
    """A hash of looplint's own source: an edited (editable) install never reads stale results."""
    digest = hashlib.blake2b(digest_size=8)
    folders: list[Path] = []
    for package in ("looplint", "looplint.rules"):  # the whole engine, and `rules/`
        spec = importlib.util.find_spec(package)
        if spec is not None and spec.submodule_search_locations:
            folders += [Path(p) for p in spec.submodule_search_locations]
    for folder in folders:
        for source in sorted(folder.rglob("*.py")):
            try:
                digest.update(source.read_bytes())
            except OSError:
                continue
    return digest.hexdigest()


def _libcst_version() -> str:
    """What identifies the installed LibCST: its generated `_version.py`, read without
    importing LibCST or `importlib.metadata` (together a tenth of a warm run); the
    distribution's metadata when that file is missing."""
    spec = importlib.util.find_spec("libcst")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        try:
            return (Path(folder) / "_version.py").read_text(encoding="utf-8")
        except OSError:
            continue
    from importlib import metadata  # pragma: no cover - only without `_version.py`

    try:  # pragma: no cover
        return metadata.version("libcst")
    except metadata.PackageNotFoundError:  # pragma: no cover - libcst is a dependency
        return ""


def fingerprint(codes: Iterable[str]) -> str:
    """What, besides a file's content, its findings depend on."""
    key = json.dumps([__version__, _implementation_digest(), _libcst_version(), sorted(codes)])
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


class ResultCache:
    """Findings of unchanged files, loaded once per run and saved once at its end."""

    def __init__(self, directory: Path, codes: Iterable[str]) -> None:
        self.directory = directory
        self.file = directory / f"results-{fingerprint(codes)}.json"
        self._entries: dict[str, dict[str, Any]] = self._load()
        self._dirty = False

    def _load(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            return {}
        entries = data.get("entries")
        return entries if isinstance(entries, dict) else {}

    def _unchanged(self, path: str, stamp: dict[str, Any] | None) -> bool:
        """Whether `path` still reads as `stamp` (None: it could not be read)."""
        try:
            info = os.stat(path)
        except OSError:
            return stamp is None
        if stamp is None or info.st_size != stamp["size"]:
            return False
        if info.st_mtime_ns != stamp["mtime_ns"]:
            try:
                with open(path, "rb") as handle:
                    if content_digest(handle.read()) != stamp["digest"]:
                        return False
            except OSError:
                return False
            stamp["mtime_ns"] = info.st_mtime_ns
            self._dirty = True
        return True

    def _still_irrelevant(self, path: str, stamp: dict[str, Any] | None) -> bool:
        """A changed file that was depended on only for definitions that mention nothing a
        rule tracks still holds if those definitions still do not."""
        names = stamp.get("irrelevant") if stamp is not None else None
        if not isinstance(names, list):
            return False
        from looplint.analysis.project import still_irrelevant
        from looplint.errors import SourceError
        from looplint.files.source import read_bytes, source_from_bytes

        try:
            data, info = read_bytes(path)
            if not still_irrelevant(source_from_bytes(path, data).text, tuple(names)):
                return False
        except SourceError:
            return False
        assert stamp is not None
        stamp.update(size=info.st_size, mtime_ns=info.st_mtime_ns, digest=content_digest(data))
        self._dirty = True
        return True

    def lookup(self, path: str) -> FileResult | None:
        """The cached result of `path` if neither it nor any module its findings were
        drawn from has changed, else None."""
        from looplint.analysis.binding import Binding
        from looplint.checking.result import FileResult
        from looplint.settings.suppression import Notice

        entry = self._entries.get(os.path.abspath(path))
        if not isinstance(entry, dict):
            return None
        try:
            if not self._unchanged(path, entry):
                return None
            for dependency, stamp in entry["dependencies"].items():
                if not self._unchanged(dependency, stamp) and not self._still_irrelevant(
                    dependency, stamp
                ):
                    return None
            return FileResult(
                path,
                [Finding.from_json({**item, "path": path}) for item in entry["findings"]],
                stamp=FileStamp(entry["size"], entry["mtime_ns"], entry["digest"]),
                bindings=[Binding.from_json(item) for item in entry["bindings"]],
                incoming=tuple(Binding.from_json(item) for item in entry["incoming"]),
                notices=[
                    Notice(item["line"], item["message"], item.get("cell"))
                    for item in entry["notices"]
                ],
            )
        except (KeyError, TypeError, ValueError, AttributeError, AssertionError):
            return None

    def store(self, result: FileResult) -> None:
        """Remember a file's result, with the modules it depends on as they were read."""
        stamp = result.stamp
        if stamp is None:
            return
        self._entries[os.path.abspath(result.path)] = {
            "size": stamp.size,
            "mtime_ns": stamp.mtime_ns,
            "digest": stamp.digest,
            "findings": [f.to_json() for f in result.findings],
            "bindings": [b.to_json() for b in result.bindings],
            "incoming": [b.to_json() for b in result.incoming],
            "notices": [
                {"line": n.line, "message": n.message, "cell": n.cell} for n in result.notices
            ],
            "dependencies": {
                path: None if dep.stamp is None else {
                    "size": dep.stamp.size, "mtime_ns": dep.stamp.mtime_ns,
                    "digest": dep.stamp.digest,
                    **({"irrelevant": list(dep.names)} if dep.names is not None else {}),
                }
                for path, dep in result.dependencies.items()
            },
        }  # fmt: skip
        self._dirty = True

    def save(self) -> None:
        """Write the cache atomically; a failure to write only costs speed next time."""
        if not self._dirty:
            return
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            ignore = self.directory / ".gitignore"
            if not ignore.exists():
                ignore.write_text(_IGNORE_NOTE)
            payload = json.dumps(
                {"format": _FORMAT, "entries": self._entries}, separators=(",", ":")
            )
            import tempfile  # only when saving: a warm run that changes nothing never does

            handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(handle, "w", encoding="utf-8") as out:
                    out.write(payload)
                os.replace(temporary, self.file)
            except BaseException:
                os.unlink(temporary)
                raise
        except OSError:
            return


def is_cache_folder(folder: Path) -> bool:
    """Whether `folder` is a result cache looplint wrote (its own `.gitignore` note, or
    nothing but cache files), so that `looplint clean` never removes anything else."""
    try:
        names = os.listdir(folder)
        if (folder / ".gitignore").read_text(encoding="utf-8") == _IGNORE_NOTE:
            return True
    except (OSError, UnicodeDecodeError):
        return False
    return bool(names) and all(
        name.startswith(("results-", ".tmp-")) and name.endswith(".json") for name in names
    )


def caches_under(root: Path) -> list[Path]:
    """Every `.looplint_cache` folder under `root` (itself included), not descending into
    version-control folders, `node_modules` or installed packages."""
    found = []
    for folder, subfolders, _ in os.walk(root):
        if CACHE_DIR_NAME in subfolders and is_cache_folder(Path(folder) / CACHE_DIR_NAME):
            found.append(Path(folder) / CACHE_DIR_NAME)
        subfolders[:] = [
            name for name in subfolders if name not in _NOT_SEARCHED and name != CACHE_DIR_NAME
        ]
    return found
