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


def test_definition_rules_bring_in_model_files_by_their_own_markers() -> None:
    """A model file without any optimizer is parsed only when a network-definition rule's
    bug could be written in it."""
    markers = [r.markers for r in ALL_RULES if r.markers is not None]
    typo = "for p in net.parameters():\n    p.require_grad = False\n"
    moved = "self.w = nn.Parameter(torch.zeros(3, 4)).cuda()\n"
    listed = "self.layers = [nn.Linear(4, 4) for _ in range(3)]\n"
    dropout = "return F.dropout(x, 0.1)\n"
    for text in (typo, moved, listed, dropout):
        assert not is_candidate(text)
        assert is_candidate(text, markers), text
    clean_model = "self.fc = nn.Linear(4, 4)\nreturn F.dropout(x, 0.1, training=self.training)\n"
    assert not is_candidate(clean_model, [m for m in markers if "dropout" not in m.pattern])
