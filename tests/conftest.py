"""Shared test plumbing: run the real `looplint` console script in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"


def looplint_command() -> list[str]:
    """The installed console script, as users run it (falls back to `python -m looplint`)."""
    script = shutil.which("looplint", path=os.path.dirname(sys.executable)) or shutil.which(
        "looplint"
    )
    return [script] if script else [sys.executable, "-m", "looplint"]


RunLooplint = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_looplint() -> RunLooplint:
    """Run `looplint ARGS...` in `cwd` and capture its output."""

    def run(
        *args: str, cwd: Path | str = REPO, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*looplint_command(), *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return run
