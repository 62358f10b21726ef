"""Which variable or attribute a name means inside a function: identities.

Facts about training objects are keyed by *identity*, a string naming one variable
in its scope (`train:opt`, `<module>:optimizer`), an attribute of a class's
instances (`Trainer.self.optimizer`), or a parameter of a function being summarised
for its callers (`$optimizer`). Two spellings of one object (`self.opt` in two
methods of a class) get one identity, so what one function builds another can step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import libcst as cst

from looplint.analysis.program import (
    AssignEvent,
    CallEvent,
    ClassInfo,
    FunctionInfo,
    ModuleProgram,
    all_events,
)
from looplint.analysis.syntax import dotted_name, positional_args, unchained


@dataclass(frozen=True, slots=True)
class Frame:
    """A function being executed, with its parameters bound to the caller's identities."""

    function: FunctionInfo
    env: Mapping[str, str]
    scaled: frozenset[str] = frozenset()
    """Parameters given a loss scaled by a GradScaler: `self._backward(scaler.scale(loss))`."""


def symbolic(identity: str | None) -> bool:
    """Whether an identity stands for a parameter of a function being summarised."""
    return identity is not None and identity.startswith("$")


def parameters_of(function: FunctionInfo, call: cst.Call) -> list[tuple[str, cst.BaseExpression]]:
    """Which of `function`'s parameters each argument of `call` binds (`self` skipped)."""
    params = list(function.params[1:] if function.self_name is not None else function.params)
    pairs = list(zip(params, positional_args(call), strict=False))
    pairs += [
        (arg.keyword.value, arg.value)
        for arg in call.args
        if arg.keyword is not None and arg.keyword.value in function.params
    ]
    return pairs


class Scopes:
    """Name resolution for one module: identities, and the same-module callee of a call."""

    def __init__(self, program: ModuleProgram) -> None:
        self.program = program
        self._instances: dict[str, ClassInfo] | None = None

    def class_self(self, owner: ClassInfo) -> str:
        """The identity prefix of a class's instances; a hierarchy shares its root's."""
        return f"{self.program.root_class(owner).name}.self"

    def resolve_name(self, name: str, frame: Frame) -> str:
        """The identity a bare name refers to inside `frame`."""
        bound = frame.env.get(name)
        if bound is not None:
            return bound
        scope: FunctionInfo | None = frame.function
        while scope is not None:
            if scope.self_name == name and scope.owner is not None:
                return self.class_self(scope.owner)
            if name in scope.local_names:
                return f"{scope.qualname}:{name}"
            scope = scope.parent
        return f"<module>:{name}"

    def identity(self, expression: cst.BaseExpression, frame: Frame) -> str | None:
        """The identity of a name or attribute chain, else None (calls, subscripts, …)."""
        chain = dotted_name(expression)
        if chain is None:
            return None
        head, _, rest = chain.partition(".")
        root = self.resolve_name(head, frame)
        return f"{root}.{rest}" if rest else root

    def instance_class(self, identity: str) -> ClassInfo | None:
        """The same-module class whose instance `identity` holds (`trainer = Trainer(...)`)."""
        if self._instances is None:
            self._instances = self._collect_instances()
        return self._instances.get(identity)

    def _collect_instances(self) -> dict[str, ClassInfo]:
        found: dict[str, ClassInfo] = {}
        ambiguous: set[str] = set()
        for function in self.program.functions:
            frame = Frame(function, {})
            for event in all_events(function.events):
                if not isinstance(event, AssignEvent) or len(event.targets) != 1:
                    continue
                value = unchained(event.value) if event.value is not None else None
                if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Name)):
                    continue
                owner = self.program.classes.get(value.func.value)
                identity = self.identity(event.targets[0], frame)
                if owner is None or identity is None:
                    continue
                if found.get(identity, owner) is not owner:
                    ambiguous.add(identity)
                found[identity] = owner
        for identity in ambiguous:
            del found[identity]
        return found

    def callee(self, call: cst.Call, frame: Frame) -> tuple[FunctionInfo, str | None] | None:
        """The same-module function a call reaches, and the identity bound to `self`:
        `helper(...)`, `self.method(...)` (base classes included), or `obj.method(...)`
        where `obj` holds an instance of a class of this module."""
        func = call.func
        if isinstance(func, cst.Name):
            if func.value in frame.env:
                return None
            found = self.program.function_named(func.value, frame.function)
            return (found, None) if found is not None else None
        if not (isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name)):
            return None
        scope: FunctionInfo | None = frame.function
        while scope is not None and scope.self_name is None:
            scope = scope.parent
        if scope is not None and scope.owner is not None and func.value.value == scope.self_name:
            owner = scope.owner
            receiver = self.class_self(owner)
        else:
            receiver_identity = self.identity(func.value, frame)
            instance = (
                self.instance_class(receiver_identity) if receiver_identity is not None else None
            )
            if instance is None:
                return None
            owner = instance
            receiver = self.class_self(owner)
        method = self.program.method(owner, func.attr.value)
        if method is None or method.self_name is None:
            return None
        return method, receiver


def argument_flows(program: ModuleProgram, scopes: Scopes) -> dict[str, set[str]]:
    """For each parameter of a same-module function (`train:loader`), the caller identities
    passed to it (`main:train_loader`), whether or not the call sits in a loop."""
    flows: dict[str, set[str]] = {}
    for function in program.functions:
        frame = Frame(function, {})
        for event in all_events(function.events):
            if not isinstance(event, CallEvent):
                continue
            callee = scopes.callee(event.node, frame)
            if callee is None:
                continue
            target = callee[0]
            for param, value in parameters_of(target, event.node):
                identity = scopes.identity(value, frame)
                if identity is not None:
                    flows.setdefault(f"{target.qualname}:{param}", set()).add(identity)
    return flows


def origins(identity: str, flows: dict[str, set[str]]) -> set[str]:
    """`identity` and every caller identity that reaches it through `argument_flows`."""
    found = {identity}
    pending = [identity]
    while pending:
        for source in flows.get(pending.pop(), ()):
            if source not in found:
                found.add(source)
                pending.append(source)
    return found
