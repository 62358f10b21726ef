"""The single replacement between two texts that quick fixes send to editors."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from looplint.text_edit import (
    Replacement,
    TextPosition,
    position_at,
    replacement_between,
    split_lines,
)


def _offset(text: str, position: TextPosition) -> int:
    starts = [0, *(m.end() for m in re.finditer(r"\r\n|\r|\n", text))]
    return starts[position.line] + position.column


def _apply(text: str, replacement: Replacement) -> str:
    start, end = _offset(text, replacement.start), _offset(text, replacement.end)
    return text[:start] + replacement.text + text[end:]


def test_one_changed_expression_is_one_small_replacement() -> None:
    before = "for x in loader:\n    total += loss * x\n    step()\n"
    after = before.replace("loss *", "loss.item() *")
    assert replacement_between(before, after) == Replacement(
        TextPosition(1, 17), TextPosition(1, 17), ".item()"
    )
    assert replacement_between(before, before) is None


def test_a_crlf_pair_is_never_split() -> None:
    found = replacement_between("a\r\nb", "a\nb")
    assert found == Replacement(TextPosition(0, 1), TextPosition(1, 0), "\n")


def test_columns_count_code_points_and_lines_break_like_an_editor() -> None:
    assert position_at('x = "😋"; y', 9) == TextPosition(0, 9)
    assert position_at("a\r\nb\rc\nd", 7) == TextPosition(3, 0)
    assert split_lines("a\r\nb\rc\n") == ["a", "b", "c", ""]


@given(
    st.text(alphabet="ab\r\n😋 ", max_size=30),
    st.text(alphabet="ab\r\n😋 ", max_size=30),
)
def test_applying_the_replacement_gives_the_new_text(before: str, after: str) -> None:
    found = replacement_between(before, after)
    assert (found is None) == (before == after)
    if found is not None:
        assert found.start <= found.end
        assert _apply(before, found) == after
