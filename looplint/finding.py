"""A reported finding, as every reporter and the cache see it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True, order=True)
class ObjectEvidence:
    """Why looplint takes an object a finding involves for what it is: so that a reader
    can see why `x` is thought to be an optimizer, and disagree."""

    name: str
    """As the code writes it: `optimizer`, `self.opt`."""
    kind: str
    """`optimizer`, `scheduler` or `scaler`."""
    basis: str
    """The kind of evidence: `construction`, `annotation`, `caller` (passed in by another
    module), `role` (its role in torch's APIs), `protocol` (the methods called on it) or
    `name` (its name, with the call shape that goes with it)."""
    evidence: str
    """The evidence itself, for a reader: "built by `torch.optim.AdamW`"."""

    INFERRED: ClassVar[frozenset[str]] = frozenset({"role", "protocol", "name"})
    """Bases weaker than what the code says outright (a construction, an annotation, a
    caller); the full output names them in a `note:` line."""

    @property
    def inferred(self) -> bool:
        """Whether the object was recognised by a weaker kind of evidence than its construction."""
        return self.basis in self.INFERRED

    def to_json(self) -> dict[str, str]:
        """`{"name", "kind", "recognised_by", "evidence"}`."""
        return {
            "name": self.name,
            "kind": self.kind,
            "recognised_by": self.basis,
            "evidence": self.evidence,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ObjectEvidence:
        """Inverse of `to_json`."""
        return cls(
            str(data["name"]), str(data["kind"]), str(data["recognised_by"]), str(data["evidence"])
        )


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
    evidence: tuple[ObjectEvidence, ...] = ()
    """The optimizers, schedulers and scalers it involves, and why each is taken for one."""

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
        data["evidence"] = [item.to_json() for item in self.evidence]
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
            evidence=tuple(ObjectEvidence.from_json(item) for item in data.get("evidence", ())),
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
    "evidence",
)
