"""What each name is assigned from, module-wide: renamings, and values handed in.

Training code names one object several ways: `raw_model = model.module if ddp else model`,
`g_module = generator` on one branch and `generator.module` on the other, a trainer's
`self.optimizer = optimizer` stored from `__init__`. `Assignments` answers, for one module,
what an identity was assigned from (`assigned_from`), which other identities merely rename
it (`aliases`), and whether it holds something a function was handed (`handed_in`), so
rules can tell that the optimizer built over `raw_model` trains `model`.
"""

from __future__ import annotations

import libcst as cst

from looplint.analysis.catalog import PASS_THROUGH_METHODS
from looplint.analysis.parameters import maximal_chains
from looplint.analysis.program import AssignEvent, FunctionInfo, ModuleProgram, all_events
from looplint.analysis.scopes import Frame, Scopes
from looplint.analysis.syntax import descendants, dotted_name


class Assignments:
    """The assignments of one module, read lazily and once."""

    def __init__(self, program: ModuleProgram, scopes: Scopes) -> None:
        self.program = program
        self.scopes = scopes
        self._assigned: dict[str, frozenset[str]] | None = None
        self._plain: dict[str, frozenset[str]] | None = None
        self._by_name: dict[str, FunctionInfo] | None = None
        self._values: dict[str, list[cst.BaseExpression]] = {}

    def assigned_from(self, identity: str) -> frozenset[str]:
        """The identities read by the values assigned to `identity` anywhere in the module:
        `raw_model = model.module if ddp else model` gives `model.module`, `ddp`, `model`;
        `opt, sched = build(model, cfg)` gives `model` and `cfg` to both targets."""
        if self._assigned is None:
            self._assigned = self._assignments()
        return self._assigned.get(identity, frozenset())

    def values(self, identity: str) -> list[cst.BaseExpression]:
        """Every value assigned to `identity` as a whole anywhere in the module."""
        if self._assigned is None:
            self._assigned = self._assignments()
        return self._values.get(identity, [])

    def _assignments(self) -> dict[str, frozenset[str]]:
        found: dict[str, set[str]] = {}
        self._values = {}
        for function in self.program.functions:
            frame = Frame(function, {})
            for event in all_events(function.events):
                if not isinstance(event, AssignEvent) or event.value is None or event.augmented:
                    continue
                parts = _by_position(event.value, len(event.targets))
                for target, value in zip(event.targets, parts, strict=True):
                    identity = self.scopes.identity(target, frame)
                    if identity is None:
                        continue
                    keywords = _keywords(value)
                    found.setdefault(identity, set()).update(
                        read
                        for chain in maximal_chains(value)
                        if id(chain) not in keywords
                        and (read := self.scopes.identity(chain, frame)) is not None
                    )
                    self._values.setdefault(identity, []).append(value)
        return {identity: frozenset(read) for identity, read in found.items()}

    def aliases(self, identity: str, depth: int = 3) -> frozenset[str]:
        """`identity` and what it was assigned from by plain renaming, a few steps back:
        `raw_model` → `model.module`, `model` (one assignment of names and attributes only,
        so `out = model(x)` makes no alias of `model`)."""
        found = {identity}
        frontier = {identity}
        for _ in range(depth):
            frontier = {s for current in frontier for s in self._plain_values(current)} - found
            if not frontier:
                break
            found |= frontier
        return frozenset(found)

    def _plain_values(self, identity: str) -> frozenset[str]:
        if self._plain is None:
            self._plain = self._plain_assignments()
        return self._plain.get(identity, frozenset())

    def _plain_assignments(self) -> dict[str, frozenset[str]]:
        """Assignments whose value only names things (`a = b`, `a = b.module if c else b`),
        never calls or computes: renamings, not results."""
        found: dict[str, set[str]] = {}
        for function in self.program.functions:
            frame = Frame(function, {})
            for event in all_events(function.events):
                if not isinstance(event, AssignEvent) or event.value is None or event.augmented:
                    continue
                if len(event.targets) != 1:
                    continue
                if not isinstance(event.node, (cst.Assign, cst.AnnAssign)):
                    continue  # `for x in xs` and `with ... as x` bind elements and results
                arms = _renamed(event.value)
                if arms is None:
                    continue
                target = self.scopes.identity(event.targets[0], frame)
                if target is None:
                    continue
                found.setdefault(target, set()).update(
                    identity
                    for arm in arms
                    if (identity := self.scopes.identity(arm, frame)) is not None
                )
        return {identity: frozenset(read) for identity, read in found.items()}

    def handed_in(self, identity: str) -> bool:
        """Whether `identity` holds something a function was handed: one of its parameters,
        or an attribute stored from one (`self.optimizer = optimizer` in `__init__`)."""
        pending, seen = [identity], set()
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            qualname, _, name = current.partition(":")
            function = self._functions_by_name().get(qualname)
            if function is not None and name in function.params:
                return True
            pending.extend(self._plain_values(current))
        return False

    def _functions_by_name(self) -> dict[str, FunctionInfo]:
        if self._by_name is None:
            self._by_name = {function.qualname: function for function in self.program.functions}
        return self._by_name


_CONSTANTS = frozenset({"None", "True", "False"})


def _renamed(value: cst.BaseExpression) -> list[cst.BaseExpression] | None:
    """The names a value merely renames (`b`, `b.module`, either arm of `x if c else y`),
    or None when it computes something."""
    if isinstance(value, cst.IfExp):
        body, orelse = _renamed(value.body), _renamed(value.orelse)
        return None if body is None or orelse is None else body + orelse
    if isinstance(value, cst.Name) and value.value in _CONSTANTS:
        return []  # `scheduler = None` renames nothing: no alias of every other `x = None`
    if isinstance(value, (cst.Name, cst.Attribute)) and dotted_name(value) is not None:
        return [value]
    return None


def _by_position(value: cst.BaseExpression, targets: int) -> list[cst.BaseExpression]:
    """What each of `targets` unpacked names is assigned: the matching element of a tuple,
    or argument of `accelerator.prepare(model, optimizer, ...)` (which hands its arguments
    back in order); else the whole value for each (`opt, sched = build(model, cfg)`)."""
    if targets > 1:
        if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == targets:
            return [element.value for element in value.elements]
        if (
            isinstance(value, cst.Call)
            and isinstance(value.func, cst.Attribute)
            and value.func.attr.value in PASS_THROUGH_METHODS
            and len(value.args) == targets
            and all(arg.keyword is None and not arg.star for arg in value.args)
        ):
            return [arg.value for arg in value.args]
    return [value] * targets


def _keywords(value: cst.BaseExpression) -> set[int]:
    """The keywords of the arguments in `value` (`model` in `model=net`), by node id: names
    written there are no values read."""
    return {
        id(node.keyword)
        for node in (value, *descendants(value))
        if isinstance(node, cst.Arg) and node.keyword is not None
    }
