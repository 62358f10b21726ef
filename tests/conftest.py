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


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--run-crawl`: also run the slow crawl over the standard library and site-packages."""
    parser.addoption(
        "--run-crawl",
        action="store_true",
        help="run tests marked `crawl` (minutes; `.ci/run` runs them after the suite)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip `crawl` tests unless `--run-crawl` is given, so the default run stays quick."""
    if config.getoption("--run-crawl"):
        return
    skip = pytest.mark.skip(reason="slow crawl; run with `python -m pytest --run-crawl -m crawl`")
    for item in items:
        if "crawl" in item.keywords:
            item.add_marker(skip)


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
