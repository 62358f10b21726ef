"""The text prefilter may skip files only when no rule could fire on them."""

from __future__ import annotations

from pathlib import Path

from looplint.checking.checker import check_file
from looplint.files.prefilter import is_candidate
from looplint.registry import rule_classes
from tests.conftest import FIXTURES

ALL_RULES = rule_classes()


def test_prefilter_loses_no_finding_on_fixtures() -> None:
    rules = [rule() for rule in ALL_RULES]
    for path in sorted(FIXTURES.rglob("*.py")):
        with_filter = check_file(str(path), rules, use_prefilter=True).findings
        without = check_file(str(path), rules, use_prefilter=False).findings
        assert with_filter == without, path


def test_prefilter_skips_unrelated_code() -> None:
    assert not is_candidate("import numpy as np\nfor x in range(3):\n    env.step(x)\n")
    assert is_candidate("from torch import optim\n")
    assert is_candidate("scaler.step(o)\n")
    assert is_candidate(Path(__file__).read_text())
