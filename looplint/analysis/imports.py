"""Qualified names from a module's own import statements.

Resolving `from torch.optim import AdamW as W; W(...)` to `torch.optim.AdamW` is
what makes the rules robust to import style. LibCST's QualifiedNameProvider does
this with full scope analysis, at several times the cost of parsing; import
aliases are all the rules need, so they are read straight from the statements.
"""

from __future__ import annotations

import libcst as cst

from looplint.analysis.syntax import dotted_name


class ImportTable:
    """Maps the names a module binds by importing to the dotted names they stand for."""

    __slots__ = ("_aliases", "_relative")

    def __init__(self) -> None:
        self._aliases: dict[str, str] = {}
        self._relative: dict[str, str] = {}

    def add(self, statement: cst.Import | cst.ImportFrom) -> None:
        """Record the names bound by one import statement."""
        if isinstance(statement, cst.Import):
            for alias in statement.names:
                full = dotted_name(alias.name)
                if full is None:
                    continue
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    self._aliases[alias.asname.name.value] = full
                else:
                    head = full.split(".", 1)[0]
                    self._aliases.setdefault(head, head)
            return
        if isinstance(statement.names, cst.ImportStar):
            return
        module = dotted_name(statement.module) if statement.module is not None else ""
        if module is None:
            return
        dots = "." * len(statement.relative)
        for alias in statement.names:
            if not isinstance(alias.name, cst.Name):
                continue
            bound = alias.name.value
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                bound = alias.asname.name.value
            if dots:
                # `from .engine import f` → `.engine.f`, resolved against the package later.
                self._relative[bound] = dots + ".".join(filter(None, (module, alias.name.value)))
            else:
                self._aliases[bound] = f"{module}.{alias.name.value}"

    def qualify(self, node: cst.BaseExpression) -> str | None:
        """The imported dotted name `node` refers to, or None if it is not imported."""
        name = dotted_name(node)
        if name is None:
            return None
        return self.qualify_name(name)

    def qualify_name(self, name: str) -> str | None:
        """`qualify` for a dotted name already written out (`optim.Optimizer`)."""
        head, _, rest = name.partition(".")
        target = self._aliases.get(head)
        if target is None:
            return None
        return f"{target}.{rest}" if rest else target

    def target(self, node: cst.BaseExpression) -> str | None:
        """Like `qualify`, but relative imports included, as written: `.engine.train`.

        Cross-module analysis resolves these against the package layout; library
        lookups keep using `qualify`, which never sees a relative name.
        """
        root = node
        while isinstance(root, cst.Attribute):
            root = root.value
        if not isinstance(root, cst.Name) or not (
            root.value in self._relative or root.value in self._aliases
        ):
            return None  # the common case, decided without building the dotted name
        name = dotted_name(node)
        return None if name is None else self.target_name(name)

    def target_name(self, name: str) -> str | None:
        """`target` for a dotted name already written out (a class's base)."""
        head, _, rest = name.partition(".")
        target = self._relative.get(head)
        if target is None:
            return self.qualify_name(name)
        return f"{target}.{rest}" if rest else target

    def roots(self) -> set[str]:
        """The top-level packages the module imports from (`torch`, `mxnet`, ...)."""
        return {target.split(".", 1)[0] for target in self._aliases.values()}

    def binds(self, name: str) -> bool:
        """Whether `name` was bound by an import."""
        return name in self._aliases
