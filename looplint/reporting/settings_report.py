"""`looplint check --show-settings PATH`: which configuration applies to a file, and its values."""

from __future__ import annotations

import json

from looplint.checking.cache import CACHE_DIR_NAME
from looplint.files.discovery import DEFAULT_EXCLUDE
from looplint.settings.resolver import ProjectSettings


def _toml(value: object) -> str:
    return json.dumps(value)


def settings_report(target: str, project: ProjectSettings) -> str:
    """The effective settings for `target`, as TOML-like `key = value` lines."""
    settings = project.settings
    source = str(settings.config_path) if settings.config_path else "none (defaults)"
    exclude = list(settings.exclude) if settings.exclude else list(DEFAULT_EXCLUDE)
    lines = [
        f"# Settings for {target}",
        f"# configuration: {source}",
        f"root = {_toml(str(settings.root))}",
        f"cache-dir = {_toml(str(settings.root / (settings.cache_dir or CACHE_DIR_NAME)))}",
        f"select = {_toml(list(settings.select) if settings.select is not None else ['ALL'])}",
        f"extend-select = {_toml(list(settings.extend_select))}",
        f"ignore = {_toml(list(settings.ignore))}",
        f"enabled = {_toml(sorted(project.codes))}",
        f"exclude = {_toml(exclude)}",
        f"extend-exclude = {_toml(list(settings.extend_exclude))}",
        "",
        "[per-file-ignores]",
        *(f"{_toml(k)} = {_toml(list(v))}" for k, v in settings.per_file_ignores.items()),
    ]
    return "\n".join(lines) + "\n"
