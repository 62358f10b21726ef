"""Calls between the modules of the checked codebase.

Two directions: a call *out* of this module reaches a function or class of another
module (`Linker.external`), whose facts are built on demand by the project; and what
this module *passes* to other modules' functions travels to them as `Binding`s, so
the receiving module is checked knowing that its `optimizer` parameter holds an AdamW.

The project is reached through the `ModuleResolver` protocol and other modules'
facts through `ForeignFacts`, so this layer does not import the layers above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import libcst as cst

from looplint.analysis.binding import Binding as Binding  # re-exported: its old home
from looplint.analysis.catalog import ObjectKind
from looplint.analysis.operations import (
    Backward,
    Branch,
    Clear,
    Clip,
    Construct,
    Context,
    Escape,
    Forward,
    Item,
    Loop,
    ModeSwitch,
    ScalerCall,
    SchedulerStep,
    Step,
)
from looplint.analysis.program import CallEvent, ClassInfo, FunctionInfo, ModuleProgram, all_events
from looplint.analysis.recognition import (
    ObjectInfo,
    ObjectTable,
    call_arguments_renamed,
    translate_sources,
)
from looplint.analysis.scopes import Frame, Scopes, parameters_of, symbolic

NEVER_FOLLOWED = frozenset({"torch", "numpy", "__future__", "typing"})
"""Libraries the catalog already knows: their source is never followed."""


class ForeignFacts(Protocol):
    """What this module reads of another module's facts."""

    @property
    def program(self) -> ModuleProgram:
        """The other module's compiled program."""
        ...

    def kinds(self, identity: str | None) -> set[ObjectKind]:
        """What an identity of that module is known to hold."""
        ...

    def factory_info(self, function: FunctionInfo) -> ObjectInfo | None:
        """What one of its functions returns."""
        ...

    def summary_tree(self, function: FunctionInfo) -> tuple[Item, ...] | None:
        """What one of its functions does, parameters left symbolic."""
        ...


@dataclass(frozen=True, slots=True)
class Target:
    """A function or class of another module that a call reaches."""

    path: str
    facts: ForeignFacts
    function: FunctionInfo | None
    owner: ClassInfo | None

    @property
    def callable(self) -> FunctionInfo | None:
        """The function that runs: the function itself, or the class's `__init__`."""
        if self.function is not None:
            return self.function
        if self.owner is not None:
            return self.facts.program.method(self.owner, "__init__")
        return None


_REEXPORT_HOPS = 3
"""How many package `__init__` re-exports a look-up follows to a definition."""


@dataclass(frozen=True, slots=True)
class ClassLineage:
    """What following a class's bases through the codebase's files found."""

    is_network: bool
    """Whether the class derives from `nn.Module`."""
    files: tuple[str, ...]
    """The files read to decide it (the class's own first)."""


class ModuleResolver(Protocol):
    """Finds the other modules of the codebase (`looplint.analysis.project.Project`)."""

    def target(self, importer: str, written: str, factory: bool = False) -> Target | None:
        """The function or class that `written`, called in `importer`, reaches."""
        ...

    def locate(self, importer: str, written: str) -> tuple[str, str] | None:
        """The file and attribute name `written` names."""
        ...

    def irrelevant(self, path: str, attribute: str) -> bool:
        """Whether that definition was found to mention nothing a rule tracks."""
        ...

    def holds_parameters(self, path: str, attribute: str) -> bool:
        """Whether that definition is an `nn.Module` class building layers of its own."""
        ...

    def lineage(self, path: str, attribute: str) -> ClassLineage:
        """Whether that definition is a class deriving from `nn.Module`."""
        ...

    def plain_loader(self, path: str, attribute: str) -> bool:
        """Whether that definition subclasses torch's `DataLoader`, sampler left to callers."""
        ...

    def reexported(self, path: str, attribute: str) -> tuple[str, str] | None:
        """Where a name that file only imports (a package `__init__`) is defined."""
        ...


class Linker:
    """One module's view of the rest of the codebase."""

    def __init__(
        self,
        program: ModuleProgram,
        scopes: Scopes,
        resolver: ModuleResolver | None,
        path: str | None,
    ) -> None:
        self.imports = program.imports
        self.scopes = scopes
        self.resolver = resolver
        self.path = path
        self.consulted: dict[str, set[str] | None] = {}
        """Files of other modules this module's analysis has read (cache dependencies):
        None where their facts were used, else the names whose definitions were only
        found irrelevant (a weaker dependency: see `Project.dependencies`)."""
        self._targets: dict[str, Target | None] = {}
        self._node_targets: dict[tuple[int, bool], Target | None] = {}

    def external(self, func: cst.BaseExpression, factory: bool = False) -> Target | None:
        """The function or class of another module of the codebase that `func` names
        (with `factory`, only one that may return an optimizer, scheduler or scaler)."""
        if self.resolver is None or self.path is None:
            return None
        node_key = (id(func), factory)
        if node_key in self._node_targets:
            return self._node_targets[node_key]
        found = self._node_targets[node_key] = self._external(func, factory)
        return found

    def _external(self, func: cst.BaseExpression, factory: bool) -> Target | None:
        assert self.resolver is not None and self.path is not None
        written = self.imports.target(func)
        if written is None or written.split(".", 1)[0] in NEVER_FOLLOWED:
            return None
        key = f"{written}:factory" if factory else written
        if key in self._targets:
            return self._targets[key]
        found = self._targets[key] = self.resolver.target(self.path, written, factory)
        located = self.resolver.locate(self.path, written)
        if located is not None:
            path, attribute = located
            names = self.consulted.get(path, set())
            if names is not None and found is None and self.resolver.irrelevant(path, attribute):
                names.add(attribute)
                self.consulted[path] = names
            else:
                self.consulted[path] = None
        return found

    def foreign_layer(self, func: cst.BaseExpression) -> bool:
        """Whether `func` names an `nn.Module` class of another module of the codebase that
        holds parameters (`from .layers import LinearNorm`; see `holds_parameters`)."""
        located = self._foreign(func)
        return (
            located is not None
            and self.resolver is not None
            and self.resolver.holds_parameters(*located)
        )

    def foreign_loader(self, func: cst.BaseExpression) -> bool:
        """Whether `func` names a `DataLoader` subclass of another module of the codebase
        that takes its sampler from the caller (`from flair.datasets import DataLoader`,
        re-exported by the package from `flair/datasets/base.py`; see `plain_loader`)."""
        located = self._foreign(func)
        for _ in range(_REEXPORT_HOPS):
            if located is None or self.resolver is None:
                return False
            # Any edit of the class may change the answer: not a weak dependency (whose
            # cache check only asks whether a definition still mentions training code).
            self.consulted[located[0]] = None
            if self.resolver.plain_loader(*located):
                return True
            located = self.resolver.reexported(*located)
        return False

    def _foreign(self, func: cst.BaseExpression) -> tuple[str, str] | None:
        """The file and name of another module's definition that `func` names, recorded
        as consulted (its definition was read)."""
        located = self._locate(self.imports.target(func))
        if located is not None:
            self._consult(*located)
        return located

    def _locate(self, written: str | None) -> tuple[str, str] | None:
        """The file and name of the definition an imported name (`.engine.train`) refers
        to, when it is another module of the codebase that may be followed."""
        if self.resolver is None or self.path is None or written is None:
            return None
        if written.split(".", 1)[0] in NEVER_FOLLOWED:
            return None
        return self.resolver.locate(self.path, written)

    def _consult(self, path: str, attribute: str) -> None:
        """Record that `attribute`'s definition in `path` was read (a cache dependency)."""
        names = self.consulted.get(path, set())
        if names is not None:
            names.add(attribute)
            self.consulted[path] = names

    def foreign_network(self, base: str) -> bool:
        """Whether the base class written `base` (`GradientCheckpointingLayer`) is imported
        from another module of the codebase and derives from `nn.Module` there; every file
        read to decide it becomes a dependency."""
        located = self._locate(self.imports.target_name(base))
        if located is None or self.resolver is None:
            return False
        lineage = self.resolver.lineage(*located)
        for path in lineage.files:
            if path != self.path:
                self.consulted[path] = None
        return lineage.is_network

    def arguments(self, function: FunctionInfo, call: cst.Call, frame: Frame) -> dict[str, str]:
        """The caller's identity each of `function`'s parameters is bound to by `call`."""
        return {
            param: identity
            for param, value in parameters_of(function, call)
            if (identity := self.scopes.identity(value, frame)) is not None
        }

    def factory(self, call: cst.Call, frame: Frame) -> ObjectInfo | None:
        """`build_optimizer(model)` where `build_optimizer` lives in another module."""
        target = self.external(call.func, factory=True)
        if target is None or target.function is None:
            return None
        info = target.facts.factory_info(target.function)
        if info is None:
            return None
        prefix = f"{target.function.qualname}:"
        mapping = self.arguments(target.function, call, frame)

        def translate(identity: str) -> str | None:
            if not identity.startswith(prefix):
                return None
            head, dot, rest = identity[len(prefix) :].partition(".")
            bound = mapping.get(head)
            return bound + dot + rest if bound is not None else None

        translated = [translate(source) for source in info.parameter_sources]
        sources = frozenset(found for found in translated if found is not None)
        if None in translated:
            # Built from the factory's own locals (`decay = [p for p in model...]`): they
            # come from what the caller passed, as far as the caller can tell.
            sources |= frozenset(mapping.values())
        optimizer = translate(info.optimizer) if info.optimizer is not None else None
        return ObjectInfo(
            info.kind, info.qualified, call, optimizer, sources, info.evidence, basis=info.basis
        )

    def bindings(self, program: ModuleProgram, table: ObjectTable) -> list[Binding]:
        """What this module passes to functions and classes of other modules: the
        optimizers, schedulers and scalers its calls hand over, parameter by parameter."""
        found: dict[tuple[str, str, str, str], Binding] = {}
        for function in program.functions:
            frame = Frame(function, {})
            for event in all_events(function.events):
                if not isinstance(event, CallEvent) or not event.node.args:
                    continue
                call = event.node
                if not any(table.value_info(arg.value, frame) is not None for arg in call.args):
                    continue
                target = self.external(call.func)
                callee = target.callable if target is not None else None
                if target is None or callee is None:
                    continue
                renames = call_arguments_renamed(self.scopes, callee, call, frame)
                for param, value in parameters_of(callee, call):
                    info = table.value_info(value, frame)
                    if info is None or info.kind in target.facts.kinds(
                        f"{callee.qualname}:{param}"
                    ):
                        continue  # the receiving module knows it already
                    sources = sorted(translate_sources(info.parameter_sources, renames))
                    binding = Binding(
                        target.path, callee.qualname, param, info.kind.value, info.qualified,
                        tuple(sources),
                    )  # fmt: skip
                    found.setdefault((binding.path, binding.function, param, binding.kind), binding)
        return sorted(found.values(), key=lambda b: (b.path, b.function, b.param, b.kind))


def bind_symbolic(identity: str | None, mapping: Mapping[str, str]) -> str | None:
    """A summary's `$param.rest` identity as the caller names it (None: not passed)."""
    if identity is None or not identity.startswith("$"):
        return identity
    head, dot, rest = identity[1:].partition(".")
    bound = mapping.get(head)
    return bound + dot + rest if bound is not None else None


def instantiate(
    items: tuple[Item, ...], mapping: Mapping[str, str], call: cst.Call, table: ObjectTable
) -> list[Item]:
    """Another module's summary bound to this call: parameters become the caller's
    identities, and every operation sits at the call (where it is reported).

    A parameter's `.step()` becomes an optimizer step or a scheduler step by what
    the caller passes, its `.zero_grad()` a clear of that optimizer or model.
    """

    def bind(identity: str | None) -> str | None:
        return bind_symbolic(identity, mapping)

    out: list[Item] = []
    for item in items:
        if isinstance(item, Loop):
            # The callee's own loops are checked in its own file, where the
            # caller's objects arrive as `Binding`s; only what it does once per
            # call belongs to the caller's loop — and clearing gradients in a loop
            # over parameters (`for p in params: p.grad = None`) is that.
            out.extend(_clears_within(instantiate(item.body, mapping, call, table)))
            continue
        if isinstance(item, Branch):
            arms = tuple(tuple(instantiate(arm, mapping, call, table)) for arm in item.arms)
            out.append(Branch(item.node, item.test, arms))
        elif isinstance(item, Context):
            body = tuple(instantiate(item.body, mapping, call, table))
            out.append(Context(item.node, item.contexts, body))
        elif isinstance(item, Backward):
            out.append(Backward(call, bind(item.tensor), item.scaled))
        elif isinstance(item, Step):
            optimizer = bind(item.optimizer)
            if optimizer is None:
                continue
            if not symbolic(item.optimizer) or table.is_optimizer(optimizer):
                closure = tuple(instantiate(item.closure, mapping, call, table))
                out.append(Step(call, optimizer, closure, item.via_scaler))
            elif not item.via_scaler and ObjectKind.SCHEDULER in table.kinds(optimizer):
                out.append(SchedulerStep(call, optimizer, bool(item.node.args)))
        elif isinstance(item, Clear):
            if symbolic(item.module) and table.is_optimizer(bind(item.module)):
                out.append(Clear(call, bind(item.module)))
            elif item.optimizer is None or not symbolic(item.optimizer):
                out.append(Clear(call, item.optimizer, bind(item.module)))
        elif isinstance(item, Escape):
            optimizer = bind(item.optimizer)
            if optimizer is not None and (
                not symbolic(item.optimizer) or table.is_optimizer(optimizer)
            ):
                out.append(Escape(call, optimizer, bind(item.first)))
        elif isinstance(item, Construct):
            sources = frozenset(s for s in map(bind, item.parameter_sources) if s is not None)
            out.append(Construct(call, item.kind, item.qualified, sources, bind(item.optimizer)))
        elif isinstance(item, SchedulerStep):
            scheduler = bind(item.scheduler)
            if scheduler is not None:
                out.append(SchedulerStep(call, scheduler, item.has_metric))
        elif isinstance(item, ModeSwitch):
            module = bind(item.module)
            if module is not None:
                out.append(ModeSwitch(call, module, item.training))
        elif isinstance(item, ScalerCall):
            scaler = bind(item.scaler)
            if scaler is not None:
                out.append(ScalerCall(call, scaler, item.method, bind(item.optimizer)))
        elif isinstance(item, Clip):
            out.append(Clip(call))
        elif isinstance(item, Forward):
            module = bind(item.module)
            if module is not None:
                out.append(Forward(call, module))
        # Assignments, appends, saves and loads stay the callee's own business.
    return out


def _clears_within(items: list[Item]) -> list[Item]:
    """The gradient clears among `items`, nested branches and blocks included."""
    found: list[Item] = []
    for item in items:
        if isinstance(item, Clear):
            found.append(item)
        elif isinstance(item, Branch):
            for arm in item.arms:
                found.extend(_clears_within(list(arm)))
        elif isinstance(item, (Context, Loop)):
            found.extend(_clears_within(list(item.body)))
    return found
