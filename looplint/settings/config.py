"""Settings files: `.looplint.toml`, `looplint.toml` or `[tool.looplint]` in `pyproject.toml`,
found upward from each checked file, validated strictly.

As with ruff's `.ruff.toml` / `ruff.toml` / `pyproject.toml`, a folder's `.looplint.toml`
wins over its `looplint.toml`, which wins over its `pyproject.toml`; the first two hold
the settings at their top level (no `[tool.looplint]` header).

Every value is checked for its type and every rule selector against the shipped
codes when the file is read, so a mistake is one line naming the file and the key.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from looplint.errors import ConfigError
from looplint.identity import ALL_IDENTITIES
from looplint.settings.selection import expand

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

_SELECTOR_KEYS = ("select", "ignore", "extend-select")
_PATTERN_KEYS = ("exclude", "extend-exclude")
KNOWN_KEYS = frozenset({*_SELECTOR_KEYS, *_PATTERN_KEYS, "per-file-ignores", "cache-dir"})
_LOOPLINT_TABLE = re.compile(r"^\s*\[tool\.looplint", re.M)
CONFIG_FILE_NAMES = (".looplint.toml", "looplint.toml", "pyproject.toml")
"""The settings files looked for in each folder, the first found winning."""
DEDICATED_FILE_NAMES = CONFIG_FILE_NAMES[:2]
"""Files that hold looplint's settings only, at their top level."""


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


def has_looplint_table(path: Path) -> bool:
    """Whether a `pyproject.toml` mentions `[tool.looplint]` (an unreadable one counts)."""
    try:
        return _LOOPLINT_TABLE.search(path.read_text(encoding="utf-8")) is not None
    except (OSError, UnicodeDecodeError):
        return True


def _where(path: Path) -> str:
    """How messages name the settings' table: `[tool.looplint] ` inside a pyproject.toml,
    nothing in a file of looplint's own."""
    return "" if path.name in DEDICATED_FILE_NAMES else "[tool.looplint] "


def _string_list(value: Any, key: str, path: Path) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        found = type(value).__name__
        raise ConfigError(
            f"{path}: {_where(path)}`{key}` must be a list of strings, not {found} "
            f"(write {key} = [{_example(value)}])"
        )
    return tuple(value)


def _example(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else '"..."'


def _selectors(value: Any, key: str, path: Path) -> tuple[str, ...]:
    """A list of rule selectors, each checked against the shipped codes."""
    selectors = _string_list(value, key, path)
    for selector in selectors:
        try:
            expand(selector, ALL_IDENTITIES)
        except ConfigError as error:
            raise ConfigError(f"{path}: {_where(path)}`{key}`: {error}") from None
    return selectors


def read_table(path: Path) -> dict[str, Any]:
    """looplint's settings in `path`: `[tool.looplint]` of a pyproject.toml, the whole of a
    `looplint.toml`, either in another file named with `--config`."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read: {error}") from None
    tool = data.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: `tool` must be a table")
    if path.name == "pyproject.toml":
        table = tool.get("looplint", {})
    elif path.name in DEDICATED_FILE_NAMES:
        if "tool" in data:
            raise ConfigError(
                f"{path}: settings go at the top level of {path.name}, without a "
                "[tool.looplint] header (that header belongs in pyproject.toml)"
            )
        table = data
    else:  # a file named with --config: either form
        table = tool.get("looplint", data)
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.looplint] must be a table")
    return table


def settings_from_file(path: Path) -> Settings:
    """Read and validate the settings of one configuration file; raises `ConfigError`."""
    table = read_table(path)
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: unknown key `{unknown[0]}` in {_where(path) or path.name + ' '}"
            f"(known: {', '.join(sorted(KNOWN_KEYS))})"
        )
    selectors = {key: _selectors(table[key], key, path) for key in _SELECTOR_KEYS if key in table}
    patterns = {key: _string_list(table[key], key, path) for key in _PATTERN_KEYS if key in table}
    per_file: dict[str, tuple[str, ...]] = {}
    raw_per_file = table.get("per-file-ignores", {})
    if not isinstance(raw_per_file, dict):
        raise ConfigError(
            f"{path}: {_where(path)}`per-file-ignores` must be a table of "
            f"pattern = [codes], not {type(raw_per_file).__name__}"
        )
    for pattern, codes in raw_per_file.items():
        per_file[pattern] = _selectors(codes, f'per-file-ignores."{pattern}"', path)
    cache_dir = table.get("cache-dir")
    if cache_dir is not None and not isinstance(cache_dir, str):
        raise ConfigError(
            f"{path}: {_where(path)}`cache-dir` must be a string, not {type(cache_dir).__name__}"
        )
    return Settings(
        root=Path(os.path.abspath(path.parent)),
        config_path=path,
        select=selectors.get("select"),
        ignore=selectors.get("ignore", ()),
        extend_select=selectors.get("extend-select", ()),
        exclude=patterns.get("exclude", ()),
        extend_exclude=patterns.get("extend-exclude", ()),
        per_file_ignores=per_file,
        cache_dir=cache_dir,
    )
