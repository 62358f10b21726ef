"""The GitHub Action: `action.yml`'s own shell steps, run here the way a runner runs them.

Each `run:` step is taken from the parsed YAML, its `${{ inputs.* }}` and
`${{ github.action_path }}` filled in, and run by bash as GitHub does
(`bash --noprofile --norc -eo pipefail`), with `GITHUB_PATH`, `GITHUB_OUTPUT` and
`RUNNER_TEMP` files and folders, from a copy of this repository as the action's path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from tests.test_cli import BUGGY, FIXED, STEP_LINE

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")

ACTION = yaml.safe_load((REPO / "action.yml").read_text())
_EXPRESSION = re.compile(r"\$\{\{\s*([^}]*?)\s*\}\}")


@dataclass(frozen=True)
class StepRun:
    """What one step of the action did."""

    name: str
    returncode: int
    output: str


@dataclass(frozen=True)
class ActionRun:
    """A whole run of the action: its steps, and what they left for later steps."""

    steps: list[StepRun]
    outputs: dict[str, str]

    @property
    def returncode(self) -> int:
        return self.steps[-1].returncode

    def output(self, name: str) -> str:
        return next(step.output for step in self.steps if step.name == name)


def _fill(text: str, inputs: dict[str, str], action_path: Path) -> str:
    def value(match: re.Match[str]) -> str:
        expression = match.group(1)
        if expression == "github.action_path":
            return str(action_path)
        if expression.startswith("inputs."):
            return inputs[expression.removeprefix("inputs.")]
        raise AssertionError(f"the test runner does not know `{expression}`")

    return _EXPRESSION.sub(value, text)


class Runner:
    """A runner's own files and folders, kept between the runs of one test: a later run
    may start after the install step, as a second use of the action in one job would."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir()
        self.folder = folder
        self.github_path = folder / "path"
        self.github_path.touch()

    def run(
        self,
        workspace: Path,
        action_path: Path,
        given: dict[str, str],
        skip: int = 0,
        extra_env: dict[str, str] | None = None,
    ) -> ActionRun:
        """Run the action's steps (after the first `skip`) in `workspace`, stopping at the
        first that fails."""
        declared: dict[str, Any] = ACTION["inputs"]
        assert set(given) <= set(declared), "an input the action does not declare"
        inputs = {
            name: given.get(name, str(spec.get("default", ""))) for name, spec in declared.items()
        }
        github_output = self.folder / "output"
        steps: list[StepRun] = []
        outputs: dict[str, str] = {}
        for index, step in enumerate(ACTION["runs"]["steps"]):
            assert "uses" not in step and step["shell"] == "bash", step
            if index < skip:
                continue
            added = [line for line in self.github_path.read_text().splitlines() if line]
            github_output.write_text("")
            step_env = step.get("env", {})
            env = {
                **os.environ,
                **{key: _fill(str(v), inputs, action_path) for key, v in step_env.items()},
                "PATH": os.pathsep.join([*reversed(added), os.environ["PATH"]]),
                "GITHUB_PATH": str(self.github_path),
                "GITHUB_OUTPUT": str(github_output),
                "RUNNER_TEMP": str(self.folder),
                "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                **(extra_env or {}),
            }
            script = self.folder / f"step{index}.sh"
            script.write_text(_fill(step["run"], inputs, action_path))
            done = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
                cwd=workspace,
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            steps.append(StepRun(step["name"], done.returncode, done.stdout + done.stderr))
            if step.get("id"):
                for line in github_output.read_text().splitlines():
                    key, _, value = line.partition("=")
                    outputs[f"{step['id']}.{key}"] = value
            if done.returncode:
                break
        return ActionRun(steps, outputs)


def _action_copy(folder: Path) -> Path:
    """What a runner checks out as the action: the repository, less tests and docs."""
    shutil.copytree(
        REPO,
        folder,
        ignore=shutil.ignore_patterns(
            ".*", "*.egg-info", "__pycache__", "build", "dist", "venv", "tests", "fixtures",
            "benchmarks", "docs",
        ),
    )  # fmt: skip
    return folder


@dataclass(frozen=True)
class Installed:
    """The action, run once from the start over a repository with a bug in `src/train.py`."""

    run: ActionRun
    workspace: Path
    runner: Runner
    action_path: Path


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("action")
    workspace = root / "workspace"
    (workspace / "src").mkdir(parents=True)
    (workspace / "src" / "train.py").write_text(BUGGY)
    (workspace / "src" / "other.py").write_text(BUGGY)
    given = {
        "paths": "src/train.py",
        "args": "--select LL001",
        "sarif-file": "reports/looplint.sarif",
    }
    runner, action_path = Runner(root / "runner"), _action_copy(root / "action")
    return Installed(runner.run(workspace, action_path, given), workspace, runner, action_path)


def test_the_action_installs_itself_and_annotates_the_finding(installed: Installed) -> None:
    run = installed.run
    assert [step.name for step in run.steps] == ["Install looplint", "Check"]
    assert run.steps[0].returncode == 0, run.steps[0].output
    assert "looplint, version" in run.output("Install looplint")
    assert run.returncode == 1  # the job fails on findings
    annotations = [
        _annotation(line) for line in run.output("Check").splitlines() if line.startswith("::")
    ]
    assert len(annotations) == 1, run.output("Check")  # only the path given, only LL001
    [(command, properties, message)] = annotations
    assert command == "error"
    assert properties["file"] in ("src/train.py", "./src/train.py")
    assert (properties["line"], properties["col"]) == (str(STEP_LINE), "5")
    assert "LL001" in properties["title"] and "optimizer.zero_grad()" in message


def _annotation(line: str) -> tuple[str, dict[str, str], str]:
    """`::error file=a.py,line=3::message` as ("error", {"file": "a.py", ...}, "message")."""
    head, _, message = line[2:].partition("::")
    command, _, listed = head.partition(" ")
    properties = dict(item.split("=", 1) for item in listed.split(",") if item)
    return command, properties, message


def test_the_action_writes_sarif_for_upload(installed: Installed) -> None:
    assert installed.run.outputs["check.sarif-file"] == "reports/looplint.sarif"
    report = json.loads((installed.workspace / "reports" / "looplint.sarif").read_text())
    assert report["version"] == "2.1.0"
    [result] = report["runs"][0]["results"]
    assert result["ruleId"] == "LL001"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"].endswith("src/train.py")
    assert location["region"]["startLine"] == STEP_LINE


def test_a_clean_repository_passes_with_the_default_inputs(installed: Installed) -> None:
    workspace = installed.workspace.parent / "clean"
    workspace.mkdir()
    (workspace / "train.py").write_text(FIXED)
    run = installed.runner.run(workspace, installed.action_path, {}, skip=1)
    assert [step.name for step in run.steps] == ["Check"]
    assert run.returncode == 0, run.output("Check")
    assert "::error" not in run.output("Check")
    assert run.outputs["check.sarif-file"] == ""


def test_a_bad_argument_fails_the_step_even_with_sarif(installed: Installed) -> None:
    given = {"args": "--select LL999", "sarif-file": "out.sarif"}
    run = installed.runner.run(installed.workspace, installed.action_path, given, skip=1)
    assert run.returncode == 2
    assert "LL999" in run.output("Check")


def test_a_version_input_installs_that_release_from_the_index(installed: Installed) -> None:
    run = installed.runner.run(
        installed.workspace,
        installed.action_path.parent / "not-the-action-path",
        {"version": "0.0.0.dev0"},
        extra_env={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(installed.workspace)},
    )
    [install] = run.steps  # the venv of the first run is reused, the package is not found
    assert install.returncode != 0
    assert "looplint==0.0.0.dev0" in install.output


def test_the_readme_workflow_passes_only_declared_inputs() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## GitHub Action", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```yaml\n(.*?)```", section, re.S)
    steps = yaml.safe_load(block)["jobs"]["looplint"]["steps"]
    [ours] = [step for step in steps if step["uses"].startswith("looplint/looplint@")]
    assert set(ours["with"]) <= set(ACTION["inputs"])
    [upload] = [step for step in steps if "upload-sarif" in step["uses"]]
    assert upload["with"]["sarif_file"] == ours["with"]["sarif-file"]


def test_the_readme_names_a_commit_of_this_repository_that_installs_its_own_code() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## GitHub Action", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"```yaml\n(.*?)```", section, re.S)
    [ours] = [s for s in yaml.safe_load(block)["jobs"]["looplint"]["steps"]
              if s["uses"].startswith("looplint/looplint@")]  # fmt: skip
    ref = ours["uses"].split("@", 1)[1]
    # No release tag exists: the README pins a full commit hash, and says so.
    assert re.fullmatch(r"[0-9a-f]{40}", ref), ref
    assert "pin the action to a commit" in section
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the commit cannot be looked up")
    shallow = subprocess.run(
        ["git", "rev-parse", "--is-shallow-repository"], cwd=REPO, capture_output=True, text=True
    )
    if shallow.stdout.strip() == "true":
        pytest.skip("shallow clone: history not available")
    shown = subprocess.run(
        ["git", "show", f"{ref}:action.yml"], cwd=REPO, capture_output=True, text=True
    )
    assert shown.returncode == 0, f"{ref} is not a commit of this repository: {shown.stderr}"
    # The action at that commit installs the code it ships, not a package from an index.
    pinned = yaml.safe_load(shown.stdout)
    install = pinned["runs"]["steps"][0]
    assert "${{ github.action_path }}" in install["env"].values()
    assert "pip install" in install["run"]
