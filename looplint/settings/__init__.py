"""Settings: what the user asked for — `pyproject.toml` / `looplint.toml` configuration, rule
selection, per-file ignores and `# noqa` suppression — resolved per file.

It sits above the rules registry (a selection names rules) and below checking.
"""
