"""What one module passes to a function of another: plain data, free of LibCST.

Bindings travel between worker processes and live in the result cache, so reading a
cached result (a warm run) must not pay for importing the parser: only `info`, which the
analysis calls, reaches for the analysis's own types.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from looplint.analysis.catalog import ObjectKind

if TYPE_CHECKING:
    from looplint.analysis.recognition import ObjectInfo


@dataclass(frozen=True, slots=True)
class Binding:
    """An object another module passes to one of this module's functions.

    `train_one_epoch(model, opt, loader)` in `train.py`, with `opt` an AdamW, tells
    `engine.py` that `train_one_epoch`'s `optimizer` parameter holds an optimizer.
    Plain data, so it can travel between processes and into the cache.
    """

    path: str
    """The file of the function that receives the object."""
    function: str
    """Its qualified name in that file (`train_one_epoch`, `Trainer.__init__`)."""
    param: str
    kind: str
    qualified: str
    parameter_sources: tuple[str, ...] = ()
    """For an optimizer: what it updates, as identities of the receiving function."""

    def to_json(self) -> list[object]:
        """A compact JSON form, for the cache."""
        return [self.path, self.function, self.param, self.kind, self.qualified,
                list(self.parameter_sources)]  # fmt: skip

    @classmethod
    def from_json(cls, data: list[object]) -> Binding:
        """Inverse of `to_json`."""
        path, function, param, kind, qualified, sources = data
        assert isinstance(sources, list)
        return cls(str(path), str(function), str(param), str(kind), str(qualified),
                   tuple(str(s) for s in sources))  # fmt: skip

    def info(self) -> ObjectInfo:
        """What the receiving module records for its parameter."""
        from looplint.analysis.recognition import Basis, ObjectInfo

        # What the caller knew travels as its `qualified`: `<named optimizer>` when the
        # caller itself only went by the name, `<used as optimizer>` by its use.
        basis = Basis.CALLER
        if self.qualified.startswith("<named "):
            basis = Basis.NAME
        elif self.qualified.startswith("<used as "):
            basis = Basis.ROLE
        return ObjectInfo(
            ObjectKind(self.kind),
            self.qualified,
            None,
            parameter_sources=frozenset(self.parameter_sources),
            evidence=f"passed in as `{self.param}` by another module (`{self.qualified}`)",
            basis=basis,
        )
