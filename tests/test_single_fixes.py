"""Each finding's own fix (what editors offer as a quick fix) is the `--fix` fix."""

from __future__ import annotations

import inspect

import pytest

from looplint.checking.checker import check_source, single_fixes
from looplint.files.source import SourceFile
from looplint.registry import rule_classes
from looplint.rule import Rule

PAIRS = [
    pytest.param(rule, before, after, id=f"{rule.identity.code}-{i}")
    for rule in rule_classes()
    for i, (before, after) in enumerate(rule.FIXES)
]


@pytest.mark.parametrize(("rule", "before", "after"), PAIRS)
def test_the_single_fix_of_a_documented_pair_is_its_after(
    rule: type[Rule], before: str, after: str
) -> None:
    before_text = inspect.cleandoc(before) + "\n"
    every_rule = [r() for r in rule_classes()]
    [fix] = single_fixes(SourceFile("t.py", before_text), every_rule)
    assert fix.finding.code == rule.identity.code
    assert fix.fixed_text == inspect.cleandoc(after) + "\n"
    assert fix.finding in check_source(SourceFile("t.py", before_text), every_rule).findings


def test_fixes_are_offered_for_wanted_findings_only_and_never_for_suppressed_ones() -> None:
    source = inspect.cleandoc(
        """
        import torch

        total, losses = 0.0, []
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss
            losses.append(loss)
            total += loss * 2  # noqa: LL006
        """
    )
    every_rule = [r() for r in rule_classes()]
    found = single_fixes(SourceFile("t.py", source + "\n"), every_rule)
    assert [fix.finding.line for fix in found] == [9, 10]
    assert "losses.append(loss.item())" in found[1].fixed_text
    assert "total += loss\n" in found[1].fixed_text  # each fix alone
    only = single_fixes(SourceFile("t.py", source + "\n"), every_rule, None, lambda f: f.line == 10)
    assert [fix.finding.line for fix in only] == [10]
    notebook_like = SourceFile("t.py", source + "\n", fixable=False)
    assert single_fixes(notebook_like, every_rule) == []
