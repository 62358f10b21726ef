"""`looplint objects`: what looplint takes each training object for, and why.

Rules fire on what the analysis recognised; when a finding surprises a user (or a
bug goes unreported), the first question is "what did looplint think `opt` was?".
This view answers it for every file: each optimizer, scheduler and scaler found,
where it is built when that is known, and the evidence it was recognised by.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import display_name
from looplint.analysis.program import compile_module
from looplint.analysis.project import Project
from looplint.errors import SourceError
from looplint.files.cst_parse import parse_module
from looplint.files.parse_guard import refusal
from looplint.files.source import read_bytes, source_from_bytes


@dataclass(frozen=True, slots=True)
class RecognisedObject:
    """One identity the analysis holds a tracked object for."""

    kind: str
    name: str
    scope: str
    line: int | None
    """Where it is built (the program line; None when it is not built in this file)."""
    where: str
    """The same place as a reader finds it: `12`, or `cell 3:4` in a notebook."""
    evidence: str

    def render(self, width: int = 10) -> str:
        """One line of the terminal view, the location right-aligned in `width` columns."""
        where = f"{self.where:>{width}}"
        return f"{where}  {self.kind:<9}  `{self.name}` ({self.scope}): {self.evidence}"


def render_objects(found: list[RecognisedObject]) -> list[str]:
    """The lines of one file's view, columns aligned however long its locations are
    (`cell 12:140` in a notebook is longer than a line number)."""
    width = max([10, *(len(recognised.where) for recognised in found)])
    return [recognised.render(width) for recognised in found]


def _scope_of(identity: str) -> str:
    if ":" in identity:
        scope = identity.split(":", 1)[0]
        return "module" if scope == "<module>" else scope
    if ".self" in identity:
        return identity.split(".self", 1)[0] + " instances"
    return "summary"


def recognised_objects(path: str, project: Project | None = None) -> list[RecognisedObject]:
    """Every object recognised in the file at `path`; raises `SourceError` when it
    cannot be read or parsed."""
    data, _ = read_bytes(path)
    source = source_from_bytes(path, data)
    refused = refusal(source.text)
    if refused is not None:
        raise SourceError(refused.message)
    try:
        module = parse_module(source.text)
    except cst.ParserSyntaxError as error:
        raise SourceError(f"syntax error: {str(error.message).strip()}") from None
    facts = ModuleFacts(compile_module(module), project, path)
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    found: list[RecognisedObject] = []
    for identity, infos in facts.objects.items():
        if identity.endswith("[]"):
            continue
        for info in infos:
            line = None
            where = "-"
            if info.call is not None and info.call in positions:
                line = positions[info.call].start.line
                where = str(line)
                if source.notebook is not None:
                    cell, cell_line = source.notebook.locate(line)
                    where = f"cell {cell}:{cell_line}"
            found.append(
                RecognisedObject(
                    info.kind.value,
                    display_name(identity),
                    _scope_of(identity),
                    line,
                    where,
                    info.evidence or info.qualified,
                )
            )
    return sorted(found, key=lambda o: (o.line if o.line is not None else 0, o.name, o.kind))
