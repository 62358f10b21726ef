"""The pre-commit hook, run by real `pre-commit` against a throwaway git repository."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.test_cli import BUGGY, FIXED

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_hook_checks_the_commit_in_one_run_then_passes_after_the_fix(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "-q")
    _git(project, "config", "user.email", "dev@example.com")
    _git(project, "config", "user.name", "dev")
    (project / "train.py").write_text(BUGGY)
    (project / "pkg").mkdir()
    # pre-commit splits more than 4 files into batches over the CPUs unless the hook
    # asks for one run: 10 files show whether it does
    for number in range(9):
        (project / "pkg" / f"loop{number}.py").write_text(BUGGY)
    (project / "README.md").write_text("not python\n")
    _git(project, "add", ".")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    command = [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), "looplint", "--all-files"]

    failing = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert failing.returncode == 1, failing.stdout + failing.stderr
    # pre-commit shows the concise format (its output is not a terminal), and all the
    # files reach one looplint run (`require_serial`): one summary for the whole commit
    assert "train.py:8:5: LL001" in failing.stdout
    assert "pkg/loop8.py:8:5: LL001" in failing.stdout
    summaries = [line for line in failing.stdout.splitlines() if line.startswith("Found ")]
    assert summaries == ["Found 10 findings."], failing.stdout

    (project / "train.py").write_text(FIXED)
    for number in range(9):
        (project / "pkg" / f"loop{number}.py").write_text(FIXED)
    _git(project, "add", ".")
    passing = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert passing.returncode == 0, passing.stdout + passing.stderr
    assert "looplint" in passing.stdout and "Passed" in passing.stdout
