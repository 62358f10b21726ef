"""Typed errors: each failure kind has one, with a one-line message naming its cause."""

from __future__ import annotations


class LoopLintError(Exception):
    """Base class of looplint's own errors."""


class ConfigError(LoopLintError):
    """The configuration or command line is wrong (exit code 2)."""


class SourceError(LoopLintError):
    """A file could not be read or decoded; reported as an `LL000` finding."""


class NotebookError(SourceError):
    """A notebook is not valid nbformat JSON."""
