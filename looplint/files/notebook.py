"""Notebooks as one Python program, with a map back to cells.

Code cells run top to bottom in one namespace, so they are checked as one module.
IPython magics and shell escapes are not Python: they are replaced by `pass` at the
same indentation so line numbers (and the blocks around them) stay intact. IPython
recognises them only where a statement starts, so a line inside open brackets, a
triple-quoted string or after a `\\` continuation is Python however it begins
(`print("%d done"\n      % n)` is a `%` operator, not a line magic).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from looplint.errors import NotebookError

_CELL_MAGIC = re.compile(r"^\s*%%(\w+)")
_PYTHON_CELL_MAGICS = frozenset({"time", "timeit", "capture", "prun", "debug", "autoreload"})
_LINE_MAGIC = re.compile(r"^(\s*)(?:[%!]|\?\?|\?)")
_ASSIGNED_MAGIC = re.compile(r"^(\s*[\w.\[\], ]+?=\s*)[%!]")
_HELP_SUFFIX = re.compile(r"^(\s*)[\w.]+\?\??\s*$")


@dataclass(frozen=True, slots=True)
class NotebookProgram:
    """The code cells joined into one program; `cells[i]`/`lines[i]` locate program line i+1."""

    source: str
    cells: tuple[int, ...]
    lines: tuple[int, ...]
    document: str = ""
    """The notebook's JSON text, as read (what a fix is written back into)."""

    def without_cells(self, source: str, numbers: set[int]) -> str:
        """`source` (this program's text) with the lines of cells `numbers` commented
        out, line numbers kept: the rest of the notebook can still be checked."""
        out = [
            f"# {line}" if self.cells[index] in numbers else line
            for index, line in enumerate(source.splitlines())
        ]
        return "\n".join(out) + "\n"

    def cell_sources(self, source: str) -> dict[int, str]:
        """Each code cell's program text, by cell number."""
        found: dict[int, list[str]] = {}
        for index, line in enumerate(source.splitlines()):
            found.setdefault(self.cells[index], []).append(line)
        return {number: "\n".join(lines) + "\n" for number, lines in found.items()}

    def locate(self, line: int) -> tuple[int, int]:
        """(cell number, line within the cell) of a 1-based program line."""
        index = min(max(line - 1, 0), len(self.cells) - 1)
        return self.cells[index], self.lines[index]


def _cell_source(cell: dict[str, object], number: int) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        if not all(isinstance(part, str) for part in source):
            raise NotebookError(f"cell {number}: `source` is not a list of strings")
        return "".join(source)
    if isinstance(source, str):
        return source
    raise NotebookError(f"cell {number}: `source` is neither a string nor a list of strings")


class _StatementTracker:
    """Whether the next line of a cell starts a statement: not inside open brackets,
    a triple-quoted string, or after a line ending in `\\`."""

    def __init__(self) -> None:
        self._depth = 0
        self._open_quote = ""
        self._continued = False

    def at_statement_start(self) -> bool:
        return self._depth == 0 and not self._open_quote and not self._continued

    def feed(self, line: str) -> None:
        """Advance over one line of Python (a neutralised magic is a comment)."""
        index = 0
        quote = self._open_quote
        commented = False
        while index < len(line):
            char = line[index]
            if quote:
                if char == "\\":
                    index += 2
                    continue
                if line.startswith(quote, index):
                    index += len(quote)
                    quote = ""
                    continue
            elif char == "#":
                commented = True
                break
            elif char in "\"'":
                quote = line[index : index + 3] if line.startswith(char * 3, index) else char
                index += len(quote)
                continue
            elif char in "([{":
                self._depth += 1
            elif char in ")]}":
                self._depth = max(self._depth - 1, 0)
            index += 1
        # A one-quote string cannot span lines; only a triple quote stays open.
        self._open_quote = quote if len(quote) == 3 else ""
        self._continued = not quote and not commented and line.rstrip().endswith("\\")


def _without_leading_indent(lines: list[str]) -> list[str]:
    """IPython removes the indentation of a cell's first non-blank line from every line
    that has it (`leading_indent`), so an indented cell runs; it must parse here too."""
    first = next((line for line in lines if line.strip()), "")
    indent = first[: len(first) - len(first.lstrip())]
    if not indent:
        return lines
    return [line[len(indent) :] if line.startswith(indent) else line for line in lines]


def _neutralise(line: str) -> str:
    if _ASSIGNED_MAGIC.match(line):
        return _ASSIGNED_MAGIC.sub(r"\1None  # ", line, count=1)
    match = _LINE_MAGIC.match(line) or _HELP_SUFFIX.match(line)
    if match:
        return f"{match.group(1)}pass  # {line.strip()}"
    return line


def notebook_program(text: str) -> NotebookProgram:
    """Parse nbformat JSON into one program; raises `NotebookError` naming the problem."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise NotebookError(
            f"invalid notebook JSON: {error.msg} (line {error.lineno}, column {error.colno})"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError("not a notebook: no `cells` list")
    program: list[str] = []
    cells: list[int] = []
    lines: list[int] = []
    for number, cell in enumerate(data["cells"], start=1):
        if not isinstance(cell, dict):
            raise NotebookError(f"cell {number} is not an object")
        if cell.get("cell_type") != "code":
            continue
        cell_lines = _without_leading_indent(_cell_source(cell, number).splitlines())
        skip_cell = False
        if cell_lines:
            magic = _CELL_MAGIC.match(cell_lines[0])
            if magic is not None:
                skip_cell = magic.group(1) not in _PYTHON_CELL_MAGICS
                cell_lines[0] = f"pass  # {cell_lines[0].strip()}"
        continued = False
        statements = _StatementTracker()
        for index, line in enumerate(cell_lines, start=1):
            if (skip_cell and index > 1) or continued:
                # A shell escape continued with `\` (`!pip install -q \` then package
                # names) goes on over the following lines: none of them is Python.
                neutral = f"# {line}"
            elif statements.at_statement_start():
                neutral = _neutralise(line)
            else:
                neutral = line
            continued = neutral != line and line.rstrip().endswith("\\")
            statements.feed(neutral)
            program.append(neutral)
            cells.append(number)
            lines.append(index)
    if not program:
        return NotebookProgram("", (1,), (1,), text)
    return NotebookProgram("\n".join(program) + "\n", tuple(cells), tuple(lines), text)


class UnmappableFix(Exception):
    """A fix of the program that cannot be written back into the notebook's cells;
    `line` is the first program line it changes."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


def fixed_notebook(program: NotebookProgram, fixed_source: str) -> str:
    """The notebook's JSON text with `fixed_source` (this program after fixes) written
    back into its cells; every other byte of each cell, and every other cell, as it was.

    Fixes change lines in place or move them within a block, so the fixed program has
    the same lines as the original, some of them different. A change that adds or
    removes lines, or falls on a line that is not the cell's own text (a magic replaced
    by `pass`), raises `UnmappableFix` naming why.
    """
    old = program.source.splitlines()
    new = fixed_source.splitlines()
    pairs = enumerate(zip(old, new, strict=False))
    first = next((index for index, (a, b) in pairs if a != b), min(len(old), len(new))) + 1
    if len(old) != len(new):
        raise UnmappableFix("it adds or removes lines, which cannot be split into cells", first)
    data = json.loads(program.document)
    cells = data["cells"]
    changed: dict[int, dict[int, tuple[int, str]]] = {}
    for index, (before, after) in enumerate(zip(old, new, strict=True)):
        if before != after:
            cell_lines = changed.setdefault(program.cells[index], {})
            cell_lines[program.lines[index]] = (index + 1, after)
    for number, lines in changed.items():
        cell = cells[number - 1]
        raw = _cell_source(cell, number).splitlines(keepends=True)
        for line, (program_line, text) in lines.items():
            kept = raw[line - 1]
            body = kept.rstrip("\r\n")
            if _neutralise(body) != body or (line == 1 and _CELL_MAGIC.match(body)):
                raise UnmappableFix("it would change a line of IPython magic", program_line)
            raw[line - 1] = text + kept[len(body) :]
        joined = "".join(raw)
        cell["source"] = raw if isinstance(cell.get("source"), list) else joined
    return _dumped_like(data, program.document)


def _dumped_like(data: object, original: str) -> str:
    """`data` as JSON in the original's layout: its indent (nbformat writes one space),
    non-ASCII characters as they were, and its final newline."""
    indent_match = re.search(r"\n([ \t]+)\S", original)
    indent: int | str | None = None
    if indent_match is not None:
        found = indent_match.group(1)
        indent = len(found) if set(found) == {" "} else found
    ascii_only = original.isascii() and "\\u" in original
    text = json.dumps(data, indent=indent, ensure_ascii=ascii_only)
    return text + "\n" if original.endswith("\n") else text


def changed_cells(before: str, after: str) -> list[tuple[int, str, str]]:
    """(cell number, source before, source after) for each cell whose source differs
    between two versions of a notebook's JSON text (what a fix changed)."""
    old_cells = json.loads(before)["cells"]
    new_cells = json.loads(after)["cells"]
    changes = []
    for number, (old, new) in enumerate(zip(old_cells, new_cells, strict=False), start=1):
        old_source, new_source = _cell_source(old, number), _cell_source(new, number)
        if old_source != new_source:
            changes.append((number, old_source, new_source))
    return changes
