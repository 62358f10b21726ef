"""The pre-commit hook, run by real `pre-commit` against a throwaway git repository.

The hook repository is a snapshot of this working tree (tracked and untracked files,
as `pre-commit try-repo` would take them) committed once, and the project's
`.pre-commit-config.yaml` pins it by its full commit hash, as the README shows; the
hook's environment is then built once and reused by the second run.
"""

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


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout


def _new_repository(folder: Path) -> None:
    folder.mkdir()
    _git(folder, "init", "-q")
    _git(folder, "config", "user.email", "dev@example.com")
    _git(folder, "config", "user.name", "dev")


def _snapshot_of_this_tree(folder: Path) -> str:
    """Commit this working tree's files into a new repository; its commit hash."""
    _new_repository(folder)
    listed = _git(REPO, "ls-files", "--cached", "--others", "--exclude-standard", "-z")
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = folder / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", "snapshot")
    return _git(folder, "rev-parse", "HEAD").strip()


def test_hook_checks_the_commit_in_one_run_then_passes_after_the_fix(tmp_path: Path) -> None:
    hook_repo = tmp_path / "looplint"
    rev = _snapshot_of_this_tree(hook_repo)
    project = tmp_path / "project"
    _new_repository(project)
    (project / ".pre-commit-config.yaml").write_text(
        f"repos:\n  - repo: {hook_repo}\n    rev: {rev}\n    hooks:\n      - id: looplint\n"
    )
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
    command = [sys.executable, "-m", "pre_commit", "run", "--all-files"]

    failing = subprocess.run(
        command, cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert failing.returncode == 1, failing.stdout + failing.stderr
    # pre-commit shows the concise format (its output is not a terminal), and all the
    # files reach one looplint run (`require_serial`): one summary for the whole commit
    assert "train.py:8:5: LL001" in failing.stdout
    assert "pkg/loop8.py:8:5: LL001" in failing.stdout and "^^^" not in failing.stdout
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
