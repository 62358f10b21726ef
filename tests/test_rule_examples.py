"""Each rule's own VALID/INVALID examples, through the real checking pipeline."""

from __future__ import annotations

import inspect

import pytest

from looplint.checking.checker import check_source
from looplint.files.source import SourceFile
from looplint.registry import RULES, rule_classes
from looplint.rule import Rule
from tests.expectations import _from_lines

ALL_RULES = rule_classes()

EXAMPLES = [
    pytest.param(
        rule, source, valid, id=f"{rule.identity.code}-{'valid' if valid else 'invalid'}-{i}"
    )
    for rule in ALL_RULES
    for valid, examples in ((True, rule.VALID), (False, rule.INVALID))
    for i, source in enumerate(examples)
]


@pytest.mark.parametrize(("rule", "source", "valid"), EXAMPLES)
def test_example(rule: type[Rule], source: str, valid: bool) -> None:
    text = inspect.cleandoc(source) + "\n"
    result = check_source(SourceFile("example.py", text), [rule()])
    assert not result.tracebacks
    found = {(f.line, f.code) for f in result.findings}
    expected = {(line, code) for _, line, code in _from_lines(text.splitlines(), None)}
    if valid:
        assert not expected, "VALID examples carry no expectations"
        assert found == set()
    else:
        assert expected, "INVALID examples mark their flagged lines"
        assert found == expected


@pytest.mark.parametrize("rule", ALL_RULES, ids=lambda r: r.identity.code)
def test_rule_carries_its_documentation(rule: type[Rule]) -> None:
    assert rule.VALID and rule.INVALID
    doc = rule.documentation()
    for section in (
        "## What it does",
        "## Why is this bad?",
        "## Example",
        "## Use instead",
        "## References",
    ):
        assert section in doc, section
    assert "# expect" not in doc


def test_registry_identities_are_the_classes_own() -> None:
    assert [entry.identity for entry in RULES] == [rule.identity for rule in ALL_RULES]
    assert all(entry.load().identity is entry.identity for entry in RULES)


def test_codes_and_names_are_unique_and_ordered() -> None:
    codes = [rule.identity.code for rule in ALL_RULES]
    names = [rule.identity.name for rule in ALL_RULES]
    assert (
        codes == sorted(codes) and len(set(codes)) == len(codes) and len(set(names)) == len(names)
    )
