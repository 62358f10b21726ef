"""Documentation is generated from the rule classes; a drifted copy fails here."""

from __future__ import annotations

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

