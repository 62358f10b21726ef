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


def _readme_commands() -> list[str]:
    """The shell commands of the README's Quick start, in order, one per line."""
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip()]


def test_the_readme_setup_installs_a_cpu_torch_and_keeps_it() -> None:
    commands = _readme_commands()
    [torch_install] = [c for c in commands if "download.pytorch.org" in c]
    # torch and torchvision from the same CPU index in one command
    assert torch_install.split("--index-url")[0].split()[2:] == ["torch", "torchvision"]
    assert torch_install.endswith("--index-url https://download.pytorch.org/whl/cpu")
    [dev_install] = [c for c in commands if "[dev,runtime]" in c]
    [pin] = [c for c in commands if "constraints" in c and c.startswith("pip freeze")]
    # the constraint is written before the development install, which uses it
    assert commands.index(torch_install) < commands.index(pin) < commands.index(dev_install)
    constraints_file = pin.rsplit(">", 1)[1].strip()
    assert dev_install.startswith(f"PIP_CONSTRAINT={constraints_file} ")
    [test] = [c for c in commands if "pytest" in c]
    assert commands.index(dev_install) < commands.index(test)
    assert test.startswith('CUDA_VISIBLE_DEVICES="" ')


def test_ci_runs_the_readme_test_command_under_its_constraints() -> None:
    script = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    [test] = [c for c in _readme_commands() if "pytest" in c]
    lines = [line.strip() for line in script.splitlines()]
    assert test in lines
    # then the slow crawl, also on the CPU
    assert f"{test} --run-crawl -m crawl" in lines[lines.index(test) + 1 :]
    install = next(line for line in lines if "pip install" in line and "torch" in line)
    assert install.split()[-2:] == ["torch", "torchvision"]  # together, one command
    assert lines.index('export PIP_CONSTRAINT="$PWD/.ci/constraints.txt"') < lines.index(install)
    pinned = (REPO / ".ci" / "constraints.txt").read_text(encoding="utf-8").split()
    assert any(p.startswith("torch==") for p in pinned)
    assert any(p.startswith("torchvision") for p in pinned)


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
