"""The parse without validation builds the very tree LibCST's own parse builds, and nodes
built afterwards (by fixes) are still validated."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from looplint.files.cst_parse import parse_module
from tests.conftest import REPO

SOURCES = sorted((REPO / "fixtures").rglob("*.py"))[:40]


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_the_tree_is_the_one_libcst_builds(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    trusted = parse_module(text)
    assert trusted.code == text
    assert trusted.deep_equals(cst.parse_module(text))


def test_nodes_built_after_a_parse_are_still_validated() -> None:
    parse_module("x = (1 + 2)\n")
    with pytest.raises(cst.CSTValidationError):
        cst.Name("")


def test_a_syntax_error_is_still_the_parser_s_error() -> None:
    with pytest.raises(cst.ParserSyntaxError):
        parse_module("def broken(:\n")
    with pytest.raises(cst.CSTValidationError):
        cst.Name("")
