"""Each finding carries why looplint took the objects it involves for what they are."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.conftest import RunLooplint

BY_NAME = textwrap.dedent(
    """\
    def train(policy, loader, loss_fn):
        for x, y in loader:
            loss_fn(policy(x), y).backward()
            policy.optimizer.step()
    """
)
BUILT = textwrap.dedent(
    """\
    import torch

    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.AdamW(model.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
    for epoch in range(10):
        scheduler.step()
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "by_name.py").write_text(BY_NAME)
    (tmp_path / "built.py").write_text(BUILT)
    return tmp_path


def _findings(run_looplint: RunLooplint, project: Path, *args: str) -> dict[str, dict[str, object]]:
    result = run_looplint("check", ".", "--output-format", "json", *args, cwd=project)
    assert result.returncode == 1, result.stderr
    return {finding["path"]: finding for finding in json.loads(result.stdout)}


def test_json_findings_carry_each_objects_evidence(
    run_looplint: RunLooplint, project: Path
) -> None:
    findings = _findings(run_looplint, project)
    assert findings["by_name.py"]["code"] == "LL001"
    assert findings["by_name.py"]["evidence"] == [
        {
            "name": "policy.optimizer",
            "kind": "optimizer",
            "recognised_by": "name",
            "evidence": "named like an optimizer and stepped after a backward pass",
        }
    ]
    # LL004 involves the scheduler stepped and the optimizer it runs ahead of
    assert findings["built.py"]["code"] == "LL004"
    assert findings["built.py"]["evidence"] == [
        {
            "name": "scheduler",
            "kind": "scheduler",
            "recognised_by": "construction",
            "evidence": "built by `torch.optim.lr_scheduler.StepLR`",
        },
        {
            "name": "optimizer",
            "kind": "optimizer",
            "recognised_by": "construction",
            "evidence": "built by `torch.optim.AdamW`",
        },
    ]
    # The cache keeps the evidence: a second run answers from it with the same report.
    assert _findings(run_looplint, project) == findings
    assert any((project / ".looplint_cache").glob("results-*.json"))


def test_the_full_output_notes_an_object_recognised_by_its_name_only(
    run_looplint: RunLooplint, project: Path
) -> None:
    result = run_looplint("check", ".", "--output-format", "full", "--no-cache", cwd=project)
    blocks = result.stdout.split("\n\n")
    [by_name] = [block for block in blocks if block.startswith("by_name.py")]
    assert by_name.splitlines()[-1] == (
        "  = note: `policy.optimizer` is taken for an optimizer (by name): "
        "named like an optimizer and stepped after a backward pass"
    )
    # Built by torch itself: nothing to explain.
    [built] = [block for block in blocks if block.startswith("built.py")]
    assert "note:" not in built
    # The one-line formats stay one line.
    concise = run_looplint("check", ".", "--no-cache", cwd=project).stdout
    assert "note:" not in concise and len(concise.splitlines()) == 3
