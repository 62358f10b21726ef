"""Autofixes: each rule's before/after pairs, and `--fix`/`--diff` on real files."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from looplint.checking.checker import check_source
from looplint.files.source import SourceFile
from looplint.registry import rule_classes
from looplint.rule import Rule
from tests.conftest import RunLooplint

FIXABLE = [rule for rule in rule_classes() if rule.FIXES]
PAIRS = [
    pytest.param(rule, before, after, id=f"{rule.identity.code}-{i}")
    for rule in FIXABLE
    for i, (before, after) in enumerate(rule.FIXES)
]


def test_fixable_rules_document_their_fix_safety() -> None:
    assert {rule.identity.code for rule in FIXABLE} >= {"LL004", "LL006", "LL009"}
    for rule in rule_classes():
        assert bool(rule.FIXES) == bool(rule.fix_safety), rule.identity.code
        if rule.FIXES:
            assert "## Fix safety" in rule.documentation()


@pytest.mark.parametrize(("rule", "before", "after"), PAIRS)
def test_fix_pair(rule: type[Rule], before: str, after: str) -> None:
    before_text = inspect.cleandoc(before) + "\n"
    after_text = inspect.cleandoc(after) + "\n"
    every_rule = [r() for r in rule_classes()]
    found = check_source(SourceFile("t.py", before_text), every_rule)
    assert rule.identity.code in {f.code for f in found.findings}
    fixed = check_source(SourceFile("t.py", before_text), every_rule, fix=True)
    assert fixed.fixed_source == after_text
    assert fixed.findings == []  # the fixed file is re-checked and clean
    assert check_source(SourceFile("t.py", after_text), every_rule).findings == []


def test_fix_and_diff_on_disk(run_looplint: RunLooplint, tmp_path: Path) -> None:
    rule = next(r for r in FIXABLE if r.identity.code == "LL004")
    before = inspect.cleandoc(rule.FIXES[0][0]) + "\n"
    after = inspect.cleandoc(rule.FIXES[0][1]) + "\n"
    target = tmp_path / "train.py"
    target.write_text(before)
    diff = run_looplint("check", "train.py", "--diff", cwd=tmp_path)
    assert diff.returncode == 1
    assert "--- a/train.py" in diff.stdout and "+    scheduler.step()" in diff.stdout
    assert target.read_text() == before  # --diff changes nothing
    fixed = run_looplint("check", "train.py", "--fix", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout
    assert target.read_text() == after
    assert "applied 1 fix" in fixed.stderr
    assert run_looplint("check", "train.py", "--diff", cwd=tmp_path).returncode == 0


def test_no_fix_where_it_is_not_safe(tmp_path: Path) -> None:
    # The optimizer steps in an inner loop: moving the scheduler could change its cadence.
    source = inspect.cleandoc(
        """
        import torch

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 10)
        for epoch in range(10):
            scheduler.step()
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """
    )
    every_rule = [r() for r in rule_classes()]
    result = check_source(SourceFile("t.py", source + "\n"), every_rule, fix=True)
    assert result.fixed_source is None and [f.code for f in result.findings] == ["LL004"]
