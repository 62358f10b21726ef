"""Where each cell line of a notebook lies in the raw `.ipynb` JSON file.

Code scanning and pull-request annotations show the raw file, so a finding at
"cell 3, line 2" must point at the JSON line that holds that source line. The
positions come from a small JSON scanner that records where each string of each
cell's `source` starts; the standard `json` module keeps no positions.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable

_WHITESPACE = re.compile(r"[ \t\n\r]*")
_SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?|true|false|null")
_scan_string: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


class _Malformed(Exception):
    """The text is not the JSON it should be; no positions are known."""


class _Scanner:
    """Just enough of a JSON parser to find the strings of `cells[i].source`."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def skip(self) -> None:
        match = _WHITESPACE.match(self.text, self.at)
        self.at = match.end() if match else self.at

    def expect(self, char: str) -> None:
        self.skip()
        if not self.text.startswith(char, self.at):
            raise _Malformed
        self.at += 1

    def peek(self) -> str:
        self.skip()
        return self.text[self.at : self.at + 1]

    def string(self) -> tuple[str, int]:
        """A string's value and the offset of its opening quote."""
        self.expect('"')
        start = self.at - 1
        try:
            value, self.at = _scan_string(self.text, self.at)
        except ValueError:
            raise _Malformed from None
        return value, start

    def skip_value(self) -> None:
        char = self.peek()
        if char == "{":
            self.members(lambda key: self.skip_value())
        elif char == "[":
            self.elements(self.skip_value)
        elif char == '"':
            self.string()
        else:
            match = _SCALAR.match(self.text, self.at)
            if match is None:
                raise _Malformed
            self.at = match.end()

    def members(self, on_key: Callable[[str], None]) -> None:
        self.expect("{")
        if self.peek() == "}":
            self.at += 1
            return
        while True:
            key, _ = self.string()
            self.expect(":")
            on_key(key)
            if self.peek() == ",":
                self.at += 1
                continue
            self.expect("}")
            return

    def elements(self, on_element: Callable[[], None]) -> None:
        self.expect("[")
        if self.peek() == "]":
            self.at += 1
            return
        while True:
            on_element()
            if self.peek() == ",":
                self.at += 1
                continue
            self.expect("]")
            return


def cell_line_offsets(text: str) -> dict[int, list[int]]:
    """For each cell (1-based over all cells), the offset in `text` of each source line.

    Empty when `text` is not a notebook this scanner understands.
    """
    scanner = _Scanner(text)
    cells: dict[int, list[int]] = {}

    def source() -> list[int]:
        offsets: list[int] = []
        line_open = False  # the previous string ended without a newline

        def part() -> None:
            nonlocal line_open
            value, start = scanner.string()
            pieces = value.split("\n")
            for index in range(len(pieces)):
                last = index == len(pieces) - 1
                if last and pieces[index] == "":
                    break
                if not (index == 0 and line_open):
                    offsets.append(start)
            if value:
                line_open = not value.endswith("\n")

        if scanner.peek() == "[":
            scanner.elements(part)
        else:
            part()
        return offsets

    def cell() -> None:
        number = len(cells) + 1
        cells[number] = []

        def on_key(key: str) -> None:
            if key == "source":
                cells[number] = source()
            else:
                scanner.skip_value()

        scanner.members(on_key)

    def top(key: str) -> None:
        if key == "cells":
            scanner.elements(cell)
        else:
            scanner.skip_value()

    try:
        scanner.members(top)
    except (_Malformed, IndexError, RecursionError):
        return {}
    return cells


class NotebookLines:
    """Maps (cell, line within the cell) to the 1-based line of the raw notebook file."""

    def __init__(self, text: str) -> None:
        self._offsets = cell_line_offsets(text)
        self._newlines = [match.start() for match in re.finditer("\n", text)]

    def raw_line(self, cell: int, line: int) -> int | None:
        """The raw file line holding `line` of `cell`, or None when it is unknown."""
        offsets = self._offsets.get(cell)
        if not offsets:
            return None
        offset = offsets[min(max(line, 1), len(offsets)) - 1]
        return bisect.bisect_left(self._newlines, offset) + 1
