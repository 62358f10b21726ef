"""The first hour: what a new user copies from the README and the repository must hold."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

README = (REPO / "README.md").read_text(encoding="utf-8")
TEST_COMMAND = 'pip install -e ".[dev,runtime]" && python -m pytest'
CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


def test_cpu_torch_comes_before_the_test_command() -> None:
    assert CPU_TORCH in README and TEST_COMMAND in README
    assert README.index(CPU_TORCH) < README.index(TEST_COMMAND)


def test_ci_runs_the_readme_test_command_then_the_crawl() -> None:
    lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = next(i for i, line in enumerate(lines) if line.endswith(TEST_COMMAND))
    assert lines[command] == f"python -m {TEST_COMMAND}"
    assert "python -m pytest --run-crawl -m crawl" in lines[command + 1 :]


def test_license_matches_pyproject() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["license"] == {"text": "MIT"}
    assert (REPO / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")


def test_precommit_hook_runs_all_files_in_one_process() -> None:
    (hook,) = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["require_serial"] is True
    assert hook["entry"] == "looplint check --force-exclude"


def test_precommit_snippet_pins_a_commit_that_exists() -> None:
    (rev,) = re.findall(r"^\s+rev: (\S+)", README, re.M)
    assert re.fullmatch(r"[0-9a-f]{40}", rev), "pin a full commit hash (or an existing tag)"
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    shallow = subprocess.run(
        ["git", "rev-parse", "--is-shallow-repository"], cwd=REPO, capture_output=True, text=True
    )
    if shallow.stdout.strip() == "true":
        pytest.skip("shallow clone: history not available")
    found = subprocess.run(["git", "cat-file", "-e", f"{rev}^{{commit}}"], cwd=REPO)
    assert found.returncode == 0, f"{rev} is not a commit of this repository"
