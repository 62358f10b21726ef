"""A reported finding, as every reporter and the cache see it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True, order=True)
class Finding:
    """One bug at one place: what users read, filter and suppress.

    For notebooks, `cell` is the 1-based index of the cell among all cells and
    `line`/`end_line` count within that cell.
    """

    path: str
    cell: int | None
    line: int
    column: int
    code: str
    name: str
    message: str
    end_line: int
    end_column: int
    fixable: bool = False
    """Whether `--fix` has a safe fix for it (shown as `[*]`)."""

    def sort_key(self) -> tuple[str, int, int, int, str, str]:
        """Stable order: by path, cell, line, column, then code."""
        return (self.path, self.cell or 0, self.line, self.column, self.code, self.message)

    def location(self) -> str:
        """`path:line:col`, or `nb.ipynb:cell 3:4:9` for notebooks."""
        if self.cell is not None:
            return f"{self.path}:cell {self.cell}:{self.line}:{self.column}"
        return f"{self.path}:{self.line}:{self.column}"

    def to_json(self) -> dict[str, Any]:
        """The JSON object of `--format json` (`cell` only for notebooks)."""
        data = asdict(self)
        if self.cell is None:
            del data["cell"]
        return {key: data[key] for key in _JSON_ORDER if key in data}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Finding:
        """Rebuild a finding from `to_json` output (used by the result cache)."""
        return cls(
            path=data["path"],
            cell=data.get("cell"),
            line=data["line"],
            column=data["column"],
            code=data["code"],
            name=data["name"],
            message=data["message"],
            end_line=data["end_line"],
            end_column=data["end_column"],
            fixable=bool(data.get("fixable", False)),
        )


_JSON_ORDER = (
    "code",
    "name",
    "path",
    "cell",
    "line",
    "column",
    "end_line",
    "end_column",
    "message",
    "fixable",
)
