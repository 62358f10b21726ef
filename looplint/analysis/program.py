"""A module reduced to what training-loop rules care about.

Each function body becomes a tree of events in execution order: calls (with the
receiver and arguments still as syntax), assignments, loops and branches. Nothing
here decides what a call *means*; that needs the caller's bindings and happens in
`looplint.analysis.facts`. Compiling once per function lets every caller reuse the result.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import libcst as cst

from looplint.analysis.imports import ImportTable
from looplint.analysis.syntax import children, dotted_name

MODULE_SCOPE = "<module>"


@dataclass(frozen=True, slots=True)
class CallEvent:
    """A call, evaluated after its receiver and arguments."""

    node: cst.Call


@dataclass(frozen=True, slots=True)
class AssignEvent:
    """`targets = value` (also `for` targets, `with ... as`, augmented assignment)."""

    node: cst.CSTNode
    targets: tuple[cst.BaseExpression, ...]
    value: cst.BaseExpression | None
    augmented: bool = False


@dataclass(frozen=True, slots=True)
class LoopEvent:
    """A `for`/`while` loop: its body runs once per iteration."""

    node: cst.For | cst.While
    targets: tuple[cst.BaseExpression, ...]
    body: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class BranchEvent:
    """An `if`/`try`/`match`: each arm may or may not run."""

    node: cst.CSTNode
    test: cst.BaseExpression | None
    arms: tuple[tuple[Event, ...], ...]


@dataclass(frozen=True, slots=True)
class WithEvent:
    """A `with` block, kept so rules can see the context (`torch.no_grad()`, …)."""

    node: cst.With
    contexts: tuple[cst.BaseExpression, ...]
    body: tuple[Event, ...]


Event = CallEvent | AssignEvent | LoopEvent | BranchEvent | WithEvent


@dataclass(eq=False, slots=True)
class ClassInfo:
    """A class defined in the module, with the methods the analysis can follow."""

    name: str
    node: cst.ClassDef
    bases: tuple[str, ...]
    methods: dict[str, FunctionInfo] = field(default_factory=dict)
    attribute_values: dict[str, list[cst.BaseExpression]] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class FunctionInfo:
    """A function or method (or the module body) compiled to events."""

    name: str
    qualname: str
    node: cst.FunctionDef | cst.Module
    params: tuple[str, ...]
    annotations: dict[str, cst.BaseExpression]
    owner: ClassInfo | None
    parent: FunctionInfo | None
    self_name: str | None
    events: tuple[Event, ...] = ()
    returns: list[cst.BaseExpression] = field(default_factory=list)
    local_names: set[str] = field(default_factory=set)
    nested: dict[str, FunctionInfo] = field(default_factory=dict)
    has_loop: bool = False


@dataclass(eq=False, slots=True)
class ModuleProgram:
    """Everything the rules read about one module, computed in one pass."""

    module: cst.Module
    imports: ImportTable
    body: FunctionInfo
    functions: list[FunctionInfo]
    classes: dict[str, ClassInfo]
    module_functions: dict[str, FunctionInfo]

    def function_named(self, name: str, scope: FunctionInfo | None) -> FunctionInfo | None:
        """The function a bare name refers to from `scope`: nested defs first, then module."""
        current = scope
        while current is not None:
            found = current.nested.get(name)
            if found is not None:
                return found
            current = current.parent
        return self.module_functions.get(name)

    def method(self, owner: ClassInfo, name: str) -> FunctionInfo | None:
        """`owner.name`, looked up through base classes defined in this module."""
        seen: set[str] = set()
        pending = [owner]
        while pending:
            cls = pending.pop(0)
            if cls.name in seen:
                continue
            seen.add(cls.name)
            found = cls.methods.get(name)
            if found is not None:
                return found
            pending.extend(self.classes[b] for b in cls.bases if b in self.classes)
        return None

    def root_class(self, owner: ClassInfo) -> ClassInfo:
        """The topmost same-module ancestor: methods of a hierarchy share `self` facts."""
        current = owner
        seen = {current.name}
        while True:
            parent = next(
                (self.classes[b] for b in current.bases if b in self.classes and b not in seen),
                None,
            )
            if parent is None:
                return current
            seen.add(parent.name)
            current = parent


def calls_in(expression: cst.CSTNode, out: list[Event]) -> None:
    """Append the calls inside `expression` in evaluation order (post-order).

    Lambda bodies are skipped: they run later, if ever.
    """
    stack: list[tuple[cst.CSTNode, bool]] = [(expression, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            out.append(CallEvent(node))  # type: ignore[arg-type]
            continue
        kind = node.__class__  # exact types: `isinstance` on LibCST's ABCs is slow here
        if kind is cst.Lambda:
            continue
        if kind is cst.Call:
            stack.append((node, True))
        kids = children(node)
        for kid in reversed(kids):
            stack.append((kid, False))


def _target_names(target: cst.BaseExpression, into: set[str]) -> None:
    if isinstance(target, cst.Name):
        into.add(target.value)
    elif isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            _target_names(element.value, into)
    elif isinstance(target, cst.StarredElement):
        _target_names(target.value, into)


def _flatten_targets(target: cst.BaseExpression) -> tuple[cst.BaseExpression, ...]:
    if isinstance(target, (cst.Tuple, cst.List)):
        out: list[cst.BaseExpression] = []
        for element in target.elements:
            out.extend(_flatten_targets(element.value))
        return tuple(out)
    if isinstance(target, cst.StarredElement):
        return _flatten_targets(target.value)
    return (target,)


class _Compiler:
    """Turns statements into events; one instance per module."""

    def __init__(self, module: cst.Module) -> None:
        self.imports = ImportTable()
        self.functions: list[FunctionInfo] = []
        self.classes: dict[str, ClassInfo] = {}
        self.module = module

    def calls_in(self, expression: cst.CSTNode, out: list[Event]) -> None:
        calls_in(expression, out)

    # -- statements --------------------------------------------------------------
    def block(
        self, body: cst.BaseSuite | list[cst.BaseStatement], scope: FunctionInfo
    ) -> tuple[Event, ...]:
        out: list[Event] = []
        statements: list[cst.CSTNode]
        if isinstance(body, list):
            statements = list(body)
        elif isinstance(body, cst.IndentedBlock):
            statements = list(body.body)
        else:
            statements = list(body.body)
        for statement in statements:
            self.statement(statement, scope, out)
        return tuple(out)

    def statement(self, node: cst.CSTNode, scope: FunctionInfo, out: list[Event]) -> None:
        if isinstance(node, cst.SimpleStatementLine):
            for small in node.body:
                self.small_statement(small, scope, out)
        elif isinstance(node, cst.FunctionDef):
            self.function(node, scope)
        elif isinstance(node, cst.ClassDef):
            self.class_def(node, scope)
        elif isinstance(node, (cst.For, cst.While)):
            self.loop(node, scope, out)
        elif isinstance(node, cst.If):
            self.calls_in(node.test, out)
            arms = [self.block(node.body, scope)]
            orelse = node.orelse
            if isinstance(orelse, cst.If):
                nested: list[Event] = []
                self.statement(orelse, scope, nested)
                arms.append(tuple(nested))
            elif isinstance(orelse, cst.Else):
                arms.append(self.block(orelse.body, scope))
            out.append(BranchEvent(node, node.test, tuple(arms)))
        elif isinstance(node, cst.With):
            contexts: list[cst.BaseExpression] = []
            for item in node.items:
                self.calls_in(item.item, out)
                contexts.append(item.item)
                if item.asname is not None:
                    target = item.asname.name
                    _target_names(target, scope.local_names)
                    out.append(AssignEvent(item, _flatten_targets(target), item.item))
            out.append(WithEvent(node, tuple(contexts), self.block(node.body, scope)))
        elif isinstance(node, (cst.Try, cst.TryStar)):
            out.extend(self.block(node.body, scope))
            arms = []
            for handler in node.handlers:
                if handler.name is not None:
                    _target_names(handler.name.name, scope.local_names)
                arms.append(self.block(handler.body, scope))
            if node.orelse is not None:
                arms.append(self.block(node.orelse.body, scope))
            if arms:
                out.append(BranchEvent(node, None, tuple(arms)))
            if node.finalbody is not None:
                out.extend(self.block(node.finalbody.body, scope))
        elif isinstance(node, cst.Match):
            self.calls_in(node.subject, out)
            out.append(
                BranchEvent(node, None, tuple(self.block(case.body, scope) for case in node.cases))
            )

    def loop(self, node: cst.For | cst.While, scope: FunctionInfo, out: list[Event]) -> None:
        scope.has_loop = True
        body: list[Event] = []
        targets: tuple[cst.BaseExpression, ...] = ()
        if isinstance(node, cst.For):
            self.calls_in(node.iter, out)
            _target_names(node.target, scope.local_names)
            targets = _flatten_targets(node.target)
        else:
            self.calls_in(node.test, body)
        body.extend(self.block(node.body, scope))
        out.append(LoopEvent(node, targets, tuple(body)))
        if node.orelse is not None:
            out.extend(self.block(node.orelse.body, scope))

    def small_statement(
        self, node: cst.BaseSmallStatement, scope: FunctionInfo, out: list[Event]
    ) -> None:
        if isinstance(node, cst.Assign):
            self.calls_in(node.value, out)
            flat: list[cst.BaseExpression] = []
            for target in node.targets:
                _target_names(target.target, scope.local_names)
                flat.extend(_flatten_targets(target.target))
                self.subscript_calls(target.target, out)
            out.append(AssignEvent(node, tuple(flat), node.value))
        elif isinstance(node, cst.AnnAssign):
            if node.value is not None:
                self.calls_in(node.value, out)
                _target_names(node.target, scope.local_names)
                out.append(AssignEvent(node, (node.target,), node.value))
        elif isinstance(node, cst.AugAssign):
            self.calls_in(node.value, out)
            _target_names(node.target, scope.local_names)
            out.append(AssignEvent(node, (node.target,), node.value, augmented=True))
        elif isinstance(node, (cst.Import, cst.ImportFrom)):
            self.imports.add(node)
            if scope.parent is not None or scope.owner is not None:
                names = node.names
                if not isinstance(names, cst.ImportStar):
                    for alias in names:
                        bound = alias.evaluated_alias or alias.evaluated_name
                        scope.local_names.add(bound.split(".", 1)[0])
        elif isinstance(node, cst.Return):
            if node.value is not None:
                self.calls_in(node.value, out)
                scope.returns.append(node.value)
        elif isinstance(node, (cst.Global, cst.Nonlocal)):
            for name_item in node.names:
                scope.local_names.discard(name_item.name.value)
        elif isinstance(node, (cst.Expr, cst.Raise, cst.Assert, cst.Del)):
            self.calls_in(node, out)

    def subscript_calls(self, target: cst.BaseExpression, out: list[Event]) -> None:
        if isinstance(target, (cst.Subscript, cst.Attribute)):
            self.calls_in(target, out)

    # -- definitions -------------------------------------------------------------
    def function(
        self, node: cst.FunctionDef, scope: FunctionInfo | None, owner: ClassInfo | None = None
    ) -> FunctionInfo:
        params: list[str] = []
        annotations: dict[str, cst.BaseExpression] = {}
        p = node.params
        for param in (*p.posonly_params, *p.params, *p.kwonly_params):
            params.append(param.name.value)
            if param.annotation is not None:
                annotations[param.name.value] = param.annotation.annotation
        for star in (p.star_arg, p.star_kwarg):
            if isinstance(star, cst.Param):
                params.append(star.name.value)
        decorators = {dotted_name(d.decorator) for d in node.decorators}
        is_instance_method = (
            owner is not None
            and bool(params)
            and "staticmethod" not in decorators
            and "classmethod" not in decorators
        )
        if owner is not None:
            qualname = f"{owner.name}.{node.name.value}"
        elif scope is not None and scope.qualname != MODULE_SCOPE:
            qualname = f"{scope.qualname}.<locals>.{node.name.value}"
        else:
            qualname = node.name.value
        info = FunctionInfo(
            name=node.name.value,
            qualname=qualname,
            node=node,
            params=tuple(params),
            annotations=annotations,
            owner=owner,
            parent=scope if scope is not None and scope.qualname != MODULE_SCOPE else None,
            self_name=params[0] if is_instance_method else None,
            local_names=set(params),
        )
        self.functions.append(info)
        info.events = self.block(node.body, info)
        if scope is not None and owner is None:
            scope.nested[info.name] = info
            scope.local_names.add(info.name)
        return info

    def class_def(self, node: cst.ClassDef, scope: FunctionInfo) -> None:
        bases = tuple(name for arg in node.bases if (name := dotted_name(arg.value)) is not None)
        info = ClassInfo(node.name.value, node, bases)
        if scope.qualname == MODULE_SCOPE:
            self.classes.setdefault(info.name, info)
        body = node.body.body if isinstance(node.body, cst.IndentedBlock) else ()
        for statement in body:
            if isinstance(statement, cst.FunctionDef):
                method = self.function(statement, scope, owner=info)
                info.methods[method.name] = method
            elif isinstance(statement, cst.SimpleStatementLine):
                for small in statement.body:
                    if isinstance(small, (cst.Import, cst.ImportFrom)):
                        self.imports.add(small)
                    elif isinstance(small, (cst.Assign, cst.AnnAssign)) and small.value is not None:
                        # Class attributes are the instances' defaults (dataclass fields).
                        targets = (
                            [t.target for t in small.targets]
                            if isinstance(small, cst.Assign)
                            else [small.target]
                        )
                        for target in targets:
                            if isinstance(target, cst.Name):
                                info.attribute_values.setdefault(target.value, []).append(
                                    small.value
                                )
        for method in info.methods.values():
            if method.self_name is None:
                continue
            self.collect_attributes(method.events, method.self_name, info)

    def collect_attributes(
        self, events: tuple[Event, ...], self_name: str, owner: ClassInfo
    ) -> None:
        for event in events:
            if isinstance(event, AssignEvent) and event.value is not None:
                for target in event.targets:
                    if (
                        isinstance(target, cst.Attribute)
                        and isinstance(target.value, cst.Name)
                        and target.value.value == self_name
                    ):
                        owner.attribute_values.setdefault(target.attr.value, []).append(event.value)
            elif isinstance(event, LoopEvent):
                self.collect_attributes(event.body, self_name, owner)
            elif isinstance(event, WithEvent):
                self.collect_attributes(event.body, self_name, owner)
            elif isinstance(event, BranchEvent):
                for arm in event.arms:
                    self.collect_attributes(arm, self_name, owner)


def all_events(events: tuple[Event, ...]) -> Iterator[Event]:
    """Every event, nested ones included, in source order."""
    pending = list(reversed(events))
    while pending:
        event = pending.pop()
        yield event
        if isinstance(event, (LoopEvent, WithEvent)):
            pending.extend(reversed(event.body))
        elif isinstance(event, BranchEvent):
            for arm in reversed(event.arms):
                pending.extend(reversed(arm))


def compile_module(module: cst.Module) -> ModuleProgram:
    """Compile every function, method and the module body of `module` into events."""
    compiler = _Compiler(module)
    body = FunctionInfo(
        name=MODULE_SCOPE,
        qualname=MODULE_SCOPE,
        node=module,
        params=(),
        annotations={},
        owner=None,
        parent=None,
        self_name=None,
    )
    body.events = compiler.block(list(module.body), body)
    module_functions = {
        f.name: f for f in compiler.functions if f.parent is None and f.owner is None
    }
    body.nested = {}
    functions = [body, *compiler.functions]
    return ModuleProgram(
        module=module,
        imports=compiler.imports,
        body=body,
        functions=functions,
        classes=compiler.classes,
        module_functions=module_functions,
    )
