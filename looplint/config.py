"""`[tool.looplint]` in pyproject.toml: found upward from the current folder, validated strictly."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from looplint.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_LIST_KEYS = ("select", "ignore", "extend-select", "exclude", "extend-exclude")
KNOWN_KEYS = frozenset({*_LIST_KEYS, "per-file-ignores", "cache-dir"})


@dataclass(frozen=True, slots=True)
class Settings:
    """Effective settings: file values, with command-line flags laid over them."""

    root: Path
    config_path: Path | None = None
    select: tuple[str, ...] | None = None
    ignore: tuple[str, ...] = ()
    extend_select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    extend_exclude: tuple[str, ...] = ()
    per_file_ignores: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    cache_dir: str | None = None


def find_pyproject(start: Path) -> Path | None:
    """The nearest `pyproject.toml` at or above `start` that has a `[tool.looplint]` table.

    Falls back to the nearest `pyproject.toml` at all, so a project root is still found.
    """
    nearest: Path | None = None
    for folder in (start, *start.parents):
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            nearest = nearest or candidate
            try:
                text = candidate.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError):
                return candidate
            if re.search(r"^\s*\[tool\.looplint", text, re.M):
                return candidate
    return nearest


def _string_list(value: Any, key: str, path: Path) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{path}: [tool.looplint] `{key}` must be a list of strings")
    return tuple(value)


def load_settings(path: Path | None, start: Path) -> Settings:
    """Read settings from `path` (or discover them from `start`); raises `ConfigError`."""
    if path is None:
        path = find_pyproject(start)
        if path is None:
            return Settings(root=start)
    elif not path.is_file():
        raise ConfigError(f"{path}: configuration file does not exist")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    if path.name == "pyproject.toml":
        table = data.get("tool", {}).get("looplint", {})
    else:
        table = data.get("tool", {}).get("looplint", data)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.looplint] must be a table")
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key `{unknown[0]}` in [tool.looplint] "
            f"(known: {', '.join(sorted(KNOWN_KEYS))})"
        )
    values = {key: _string_list(table[key], key, path) for key in _LIST_KEYS if key in table}
    per_file: dict[str, tuple[str, ...]] = {}
    raw_per_file = table.get("per-file-ignores", {})
    if not isinstance(raw_per_file, dict):
        raise ConfigError(f"{path}: [tool.looplint] `per-file-ignores` must be a table")
    for pattern, codes in raw_per_file.items():
        per_file[pattern] = _string_list(codes, f"per-file-ignores.{pattern}", path)
    cache_dir = table.get("cache-dir")
    if cache_dir is not None and not isinstance(cache_dir, str):
        raise ConfigError(f"{path}: [tool.looplint] `cache-dir` must be a string")
    return Settings(
        root=Path(os.path.abspath(path.parent)),
        config_path=path,
        select=values.get("select"),
        ignore=values.get("ignore", ()),
        extend_select=values.get("extend-select", ()),
        exclude=values.get("exclude", ()),
        extend_exclude=values.get("extend-exclude", ()),
        per_file_ignores=per_file,
        cache_dir=cache_dir,
    )
