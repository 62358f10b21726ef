"""Reading the `# expect: LL001` comments that fixtures carry on the lines to be flagged."""

from __future__ import annotations

import json
import re
from pathlib import Path

EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>[A-Z]{2}\d{3}(?:\s*,\s*[A-Z]{2}\d{3})*)")

Expectation = tuple[int | None, int, str]
"""(cell or None, line, code)."""


def _from_lines(lines: list[str], cell: int | None) -> set[Expectation]:
    found: set[Expectation] = set()
    for number, line in enumerate(lines, start=1):
        for match in EXPECT.finditer(line):
            for code in re.split(r"\s*,\s*", match.group("codes")):
                found.add((cell, number, code))
    return found


def expected_findings(path: Path) -> set[Expectation]:
    """Every (cell, line, code) a fixture says must be reported."""
    if path.suffix == ".ipynb":
        notebook = json.loads(path.read_text(encoding="utf-8"))
        found: set[Expectation] = set()
        for number, cell in enumerate(notebook["cells"], start=1):
            source = cell.get("source", "")
            text = "".join(source) if isinstance(source, list) else source
            found |= _from_lines(text.splitlines(), number)
        return found
    return _from_lines(path.read_text(encoding="utf-8").splitlines(), None)
