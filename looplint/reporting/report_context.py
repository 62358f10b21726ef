"""What reporters need besides the findings: where paths are relative to, and the source.

CI systems attach results to paths relative to the repository root (GitHub drops an
annotation on `./src/x.py`), so CI formats name files relative to the git root
(else the project root). The terminal's full format shows the source line under
each finding, and notebook results in CI must point at lines of the raw `.ipynb`.
Files are read only when a report asks, once each.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from looplint.files.notebook_positions import NotebookLines
from looplint.finding import Finding


def repository_root(start: Path, project_root: Path | None = None) -> Path:
    """The git repository root above `start`, else `project_root`, else `start`."""
    absolute = Path(os.path.abspath(start))
    for folder in (absolute, *absolute.parents):
        if (folder / ".git").exists():
            return folder
    return Path(os.path.abspath(project_root)) if project_root is not None else absolute


class ReportContext:
    """The base folder of relative paths, colour, and lazy access to checked sources."""

    def __init__(
        self,
        base: Path,
        color: bool = False,
        buffers: Mapping[str, str] | None = None,
        show_summary: bool = True,
    ) -> None:
        self.base = Path(os.path.abspath(base))
        self.color = color
        self.show_summary = show_summary
        """False with `-q`: terminal formats print the findings and nothing else."""
        self._buffers = dict(buffers or {})
        self._texts: dict[str, str | None] = {}
        self._notebooks: dict[str, NotebookLines | None] = {}
        self._cells: dict[str, dict[int, list[str]] | None] = {}

    def relative(self, path: str) -> str:
        """`path` relative to the base, with `/` separators and no `./`; else absolute."""
        absolute = os.path.abspath(path)
        try:
            return Path(absolute).relative_to(self.base).as_posix()
        except ValueError:
            return Path(absolute).as_posix()

    def uri(self, path: str) -> str:
        """A SARIF artifact URI: relative to `%SRCROOT%` when the file lies below it."""
        relative = self.relative(path)
        if os.path.isabs(relative):
            return Path(relative).as_uri()
        return "/".join(_quote(part) for part in relative.split("/"))

    def text(self, path: str) -> str | None:
        """The raw text of a checked file (a stdin buffer, or read from disk)."""
        if path in self._buffers:
            return self._buffers[path]
        if path not in self._texts:
            try:
                data = Path(path).read_bytes()
            except OSError:
                self._texts[path] = None
            else:
                self._texts[path] = _decode(path, data)
        return self._texts[path]

    def raw_lines(self, finding: Finding) -> tuple[int, int]:
        """(start, end) line of a finding in the raw file; notebook cells mapped to JSON."""
        if finding.cell is None:
            return finding.line, max(finding.end_line, finding.line)
        if finding.path not in self._notebooks:
            text = self.text(finding.path)
            self._notebooks[finding.path] = NotebookLines(text) if text is not None else None
        lines = self._notebooks[finding.path]
        start = lines.raw_line(finding.cell, finding.line) if lines is not None else None
        end = lines.raw_line(finding.cell, finding.end_line) if lines is not None else None
        if start is None:
            return 1, 1
        return start, max(end or start, start)

    def source_line(self, finding: Finding) -> str | None:
        """The source line a finding starts on (within its cell for notebooks)."""
        if finding.cell is not None:
            cells = self._cell_lines(finding.path)
            lines = cells.get(finding.cell, []) if cells is not None else []
        else:
            text = self.text(finding.path)
            lines = text.splitlines() if text is not None else []
        return lines[finding.line - 1] if 0 < finding.line <= len(lines) else None

    def _cell_lines(self, path: str) -> dict[int, list[str]] | None:
        if path not in self._cells:
            import json

            text = self.text(path)
            found: dict[int, list[str]] | None = None
            try:
                data = json.loads(text) if text is not None else None
                cells = data.get("cells") if isinstance(data, dict) else None
                if isinstance(cells, list):
                    found = {}
                    for number, cell in enumerate(cells, start=1):
                        source = cell.get("source", "") if isinstance(cell, dict) else ""
                        joined = "".join(source) if isinstance(source, list) else str(source)
                        found[number] = joined.splitlines()
            except (ValueError, TypeError):
                found = None
            self._cells[path] = found
        return self._cells[path]


def _decode(path: str, data: bytes) -> str | None:
    from looplint.errors import SourceError
    from looplint.files.source import decode_python

    if path.endswith(".ipynb"):
        return data.decode("utf-8-sig", errors="replace")
    try:
        return decode_python(data)
    except SourceError:
        return None


def _quote(part: str) -> str:
    from urllib.parse import quote

    return quote(part)
