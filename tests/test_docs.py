"""Documentation is generated from the rule classes; a drifted copy fails here."""

from __future__ import annotations

import re

from looplint.reporting.docs import (
    README_TABLE_END,
    README_TABLE_START,
    replace_table,
    rules_markdown,
)
from tests.conftest import REPO


def test_readme_rule_table_is_generated() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert README_TABLE_START in readme and README_TABLE_END in readme
    assert replace_table(readme) == readme, (
        "README rule table drifted: run `python -m looplint.reporting.docs` to regenerate it"
    )


def test_rules_reference_is_generated() -> None:
    committed = (REPO / "docs" / "rules.md").read_text(encoding="utf-8")
    drifted = "docs/rules.md drifted: run `python -m looplint.reporting.docs`"
    assert committed == rules_markdown(), drifted


def _readme_commands() -> list[str]:
    """The shell commands of the README's Quick start, in order, one per line."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
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
    install = next(line for line in lines if "pip install" in line and "torch" in line)
    assert install.split()[-2:] == ["torch", "torchvision"]  # together, one command
    assert lines.index('export PIP_CONSTRAINT="$PWD/.ci/constraints.txt"') < lines.index(install)
    pinned = (REPO / ".ci" / "constraints.txt").read_text(encoding="utf-8").split()
    assert any(p.startswith("torch==") for p in pinned)
    assert any(p.startswith("torchvision") for p in pinned)
