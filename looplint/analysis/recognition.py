"""What each identity holds — optimizer, LR scheduler, GradScaler — and why we think so.

A reviewer recognises an optimizer from all the evidence at hand, not only from
`torch.optim.Adam(...)`: a vendored `AdamW`, `self.optimizer_cls(params)` where the
class was chosen by a condition, `accelerator.prepare` handing it back in place,
`scaler.step(x)`, `x.param_groups`, or a receiver called `optimizer` stepped right
after a backward pass. `ObjectTable` collects that evidence for one module and keeps,
with every object, the sentence saying how it was recognised (`ObjectInfo.evidence`),
so a finding can be explained. Evidence that contradicts a name (a "scheduler"
stepped with three arguments is a diffusion sampler) wins over the name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum

import libcst as cst

from looplint.analysis.catalog import (
    CONFIG_INSTANTIATORS,
    LIGHTNING_ACCESSORS,
    OTHER_FRAMEWORKS,
    PASS_THROUGH_METHODS,
    UNTRACKED,
    ObjectKind,
    annotated_kind,
    constructed_kind,
    named_class_kind,
    named_factory_kind,
    named_optimizer_maker,
)
from looplint.analysis.parameters import maximal_chains, parameter_sources
from looplint.analysis.program import (
    FunctionInfo,
    ModuleProgram,
)
from looplint.analysis.scopes import Frame, Scopes, parameters_of
from looplint.analysis.syntax import argument, dotted_name


class Basis(Enum):
    """The kind of evidence an object was recognised by, strongest first."""

    CONSTRUCTION = "construction"
    """Built by a known class or factory, or a class of the codebase subclassing one."""
    ANNOTATION = "annotation"
    """A parameter annotated `Optimizer`, `type[Optimizer]`, …"""
    CALLER = "caller"
    """Passed in by another module that knows what it passes."""
    ROLE = "role"
    """The role it plays in torch's APIs: `scaler.step(x)`, a scheduler built over `x`."""
    PROTOCOL = "protocol"
    """The methods called on it: `x.step()` with `x.zero_grad()`."""
    NAME = "name"
    """Its name (with the call shape that goes with it): `optimizer.step()` after a
    backward pass, a vendored `Lamb(params)`, a function called `build_optimizer`."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """How one identity came to hold an optimizer, scheduler or scaler."""

    kind: ObjectKind
    qualified: str
    call: cst.Call | None
    optimizer: str | None = None
    """For a scheduler: the identity of the optimizer it was built over."""
    parameter_sources: frozenset[str] = frozenset()
    """For an optimizer: the names and attributes its parameter argument is built from."""
    evidence: str = ""
    """How it was recognised, for a reader: `built by torch.optim.AdamW`."""
    fresh: bool = True
    """Whether the call builds a new object (`self.optimizers()` only hands one back)."""
    basis: Basis = Basis.CONSTRUCTION
    """What kind of evidence `evidence` is."""


ForeignFactory = Callable[[cst.Call, Frame], ObjectInfo | None]
"""Looks a call up in the other modules of the codebase (see `looplint.analysis.linking`)."""


class HandedBack:
    """Optimizers a call was handed and gave back wrapped (`distr_opt` out of
    `backend.distribute(optimizer=opt)`): one object under two names."""

    def __init__(self) -> None:
        self.handed: dict[str, str] = {}
        """The identity holding what came back → the identity it was handed in as."""

    def originals(self, identity: str) -> frozenset[str]:
        """`identity` and every identity the same object was handed in as before a call
        gave it back: `distr_opt`, `opt`."""
        found = [identity]
        while (handed := self.handed.get(found[-1])) is not None and handed not in found:
            found.append(handed)
        return frozenset(found)


class ObjectTable:
    """The optimizers, schedulers and scalers of one module, keyed by identity."""

    def __init__(self, program: ModuleProgram, scopes: Scopes, foreign: ForeignFactory) -> None:
        self.program = program
        self.imports = program.imports
        self.scopes = scopes
        self._foreign = foreign
        self.objects: dict[str, list[ObjectInfo]] = {}
        self.classes: dict[str, ObjectInfo] = {}
        """Identities holding a *class* (or partial) whose calls build a tracked object:
        `optimizer_cls = torch.optim.AdamW`, `self.optimizer: type[Optimizer]`."""
        self.engines: dict[str, frozenset[str]] = {}
        """Training engines stepping their own optimizer (`deepspeed.initialize`'s first
        result) → the models they train: themselves and the model they were handed."""
        self.handed_back = HandedBack()
        """Optimizers handed to a call and given back wrapped, under another name."""
        self._factories: dict[int, ObjectInfo | None] = {}
        roots = program.imports.roots()
        self.names_count = "torch" in roots or not roots & OTHER_FRAMEWORKS
        """Whether names are evidence here: not in a module of another framework."""

    # -- reading -----------------------------------------------------------------------
    def kinds(self, identity: str | None) -> set[ObjectKind]:
        """What an identity is known to hold."""
        if identity is None:
            return set()
        return {info.kind for info in self.objects.get(identity, ())}

    def is_optimizer(self, identity: str | None) -> bool:
        """Whether `identity` is known to hold an optimizer."""
        return ObjectKind.OPTIMIZER in self.kinds(identity)

    def info(self, identity: str, kind: ObjectKind) -> ObjectInfo | None:
        """How the `kind` object at `identity` was recognised, if it was."""
        for info in self.objects.get(identity, ()):
            if info.kind is kind:
                return info
        return None

    def record(self, identity: str, info: ObjectInfo) -> bool:
        """Add what `identity` holds; True when that taught the table something new."""
        infos = self.objects.setdefault(identity, [])
        for index, existing in enumerate(infos):
            if existing.kind is info.kind:
                grown = existing.parameter_sources | info.parameter_sources
                if grown == existing.parameter_sources:
                    return False
                infos[index] = replace(existing, parameter_sources=grown)
                return True
        infos.append(info)
        return True

    def record_class(self, identity: str, info: ObjectInfo) -> bool:
        """`identity` holds a class whose calls build `info.kind`."""
        if identity in self.classes:
            return False
        self.classes[identity] = info
        return True

    # -- what a call or value builds -----------------------------------------------------
    def constructed(self, call: cst.Call, frame: Frame) -> ObjectInfo | None:
        """The object a call builds: a library constructor, a class of the codebase, a
        class-valued variable, a well-known name with the right call shape, or a factory."""
        qualified = self.imports.qualify(call.func)
        if qualified in UNTRACKED:
            return None
        if qualified is not None:
            kind = constructed_kind(qualified)
            if kind is not None:
                return self._built(call, kind, qualified, frame, f"built by `{qualified}`")
        identity = self.scopes.identity(call.func, frame)
        held = self.classes.get(identity) if identity is not None else None
        if held is not None:
            evidence = f"a call of `{dotted_name(call.func)}`, {held.evidence}"
            return self._built(call, held.kind, held.qualified, frame, evidence, held.basis)
        callee = self.scopes.callee(call, frame)
        if callee is not None:
            # A function of this module: what it returns, or else what its name says
            # it builds (`build_optimizer` returning `OPTIMIZERS[name](params)`).
            returned = self.factory_info(callee[0])
            if returned is not None:
                return returned
            factory = named_factory_kind(callee[0].name) if self.names_count else None
            written = dotted_name(call.func) or callee[0].name
            return self._from_named_factory(call, factory, written, frame) if factory else None
        framework = self._framework(call, qualified, frame)
        if framework is not None:
            return framework
        owner = (
            self.program.classes.get(call.func.value) if isinstance(call.func, cst.Name) else None
        )
        if owner is not None:
            kind = self._subclass_kind(owner.bases)
            if kind is not None:
                return self._built(
                    call, kind, owner.name, frame, f"`{owner.name}` subclasses a torch {kind.value}"
                )
        if callee is None:
            found = self._foreign(call, frame)
            if found is not None:
                return found
        return self._named(call, qualified, frame)

    def _framework(self, call: cst.Call, qualified: str | None, frame: Frame) -> ObjectInfo | None:
        """Lightning's `self.optimizers()`, and `instantiate(cfg.optimizer, params)` of
        Hydra or torchtune, where the config key names what is built."""
        func = call.func
        if isinstance(func, cst.Attribute) and func.attr.value in LIGHTNING_ACCESSORS:
            if not call.args and dotted_name(func.value) == "self":
                kind = LIGHTNING_ACCESSORS[func.attr.value]
                evidence = f"`self.{func.attr.value}()`"
                return ObjectInfo(kind, func.attr.value, call, evidence=evidence, fresh=False)
            return None
        written = qualified or dotted_name(func) or ""
        if written not in CONFIG_INSTANTIATORS and not written.endswith(".instantiate"):
            return None
        config = dotted_name(call.args[0].value) if call.args else None
        key = (config or "").rsplit(".", 1)[-1].lower()
        if "sched" in key:
            kind = ObjectKind.SCHEDULER
        elif "optim" in key:
            kind = ObjectKind.OPTIMIZER
        else:
            return None
        info = self._built(call, kind, written, frame, f"`{written}({config}, ...)`")
        if kind is ObjectKind.OPTIMIZER:
            params = argument(call, 1, "params")
            sources = frozenset(
                identity
                for chain in (maximal_chains(params) if params is not None else ())
                if (identity := self.scopes.identity(chain, frame)) is not None
            )
            info = replace(info, parameter_sources=sources)
        return info

    def _subclass_kind(self, bases: tuple[str, ...]) -> ObjectKind | None:
        for base in bases:
            qualified = self.imports.qualify_name(base) or base
            kind = annotated_kind(qualified)
            if kind is not None:
                return kind
        return None

    def _named(self, call: cst.Call, qualified: str | None, frame: Frame) -> ObjectInfo | None:
        """A well-known name imported from anywhere, with the call shape that goes with it."""
        written = dotted_name(call.func)
        if written is None or not self.names_count:
            return None
        last = written.rsplit(".", 1)[-1]
        own = self.program.classes.get(last) if isinstance(call.func, cst.Name) else None
        if own is not None and "__enter__" in own.methods:
            return None  # a context manager of this codebase, whatever its name says
        factory = named_factory_kind(last)
        if factory is not None:
            return self._from_named_factory(call, factory, written, frame)
        kind = ObjectKind.OPTIMIZER if named_optimizer_maker(last) else named_class_kind(last)
        if kind is ObjectKind.OPTIMIZER:
            if not call.args:
                return None
            return self._built(
                call, kind, qualified or last, frame, f"`{last}(...)`, an optimizer by its name",
                Basis.NAME,
            )  # fmt: skip
        if kind is ObjectKind.SCHEDULER:
            first = argument(call, 0, "optimizer")
            if first is None or not self.is_optimizer(self.scopes.identity(first, frame)):
                return None
            return self._built(
                call, kind, qualified or last, frame,
                f"`{last}(...)` built over an optimizer, a scheduler by its name", Basis.NAME,
            )  # fmt: skip
        return None

    def _from_named_factory(
        self, call: cst.Call, kind: ObjectKind, written: str, frame: Frame
    ) -> ObjectInfo:
        """`self.build_optimizer(model=self.model)`, `model.configure_optimizers()`: a
        factory known by its name only; it builds from what it is given."""
        given = [arg.value for arg in call.args]
        if isinstance(call.func, cst.Attribute) and dotted_name(call.func.value) != "self":
            given.append(call.func.value)  # `model.configure_optimizers()` builds over `model`
        sources = frozenset(
            identity
            for value in given
            for chain in maximal_chains(value)
            if (identity := self.scopes.identity(chain, frame)) is not None
        )
        optimizer = None
        if kind is ObjectKind.SCHEDULER:
            first = argument(call, 0, "optimizer")
            optimizer = self.scopes.identity(first, frame) if first is not None else None
            sources = frozenset()
        article = "an" if kind.value[0] in "aeiou" else "a"
        evidence = f"built by `{written}(...)`, {article} {kind.value} factory by its name"
        return ObjectInfo(kind, written, call, optimizer, sources, evidence, basis=Basis.NAME)

    def _built(
        self,
        call: cst.Call,
        kind: ObjectKind,
        qualified: str,
        frame: Frame,
        evidence: str,
        basis: Basis = Basis.CONSTRUCTION,
    ) -> ObjectInfo:
        optimizer = None
        if kind is ObjectKind.SCHEDULER:
            first = argument(call, 0, "optimizer")
            optimizer = self.scopes.identity(first, frame) if first is not None else None
        sources = parameter_sources(call, kind, qualified, frame, self.scopes)
        return ObjectInfo(kind, qualified, call, optimizer, sources, evidence, basis=basis)

    def factory_info(self, function: FunctionInfo) -> ObjectInfo | None:
        """What a same-module function returns, when it returns a tracked object."""
        key = id(function)
        if key in self._factories:
            return self._factories[key]
        self._factories[key] = None  # guards recursion
        frame = Frame(function, {})
        for value in function.returns:
            info = self.value_info(value, frame)
            if info is not None:
                info = replace(
                    info, evidence=f"returned by `{function.qualname}()`: {info.evidence}"
                )
                self._factories[key] = info
                return info
        return None

    def forget_factories(self) -> None:
        """Drop remembered factory results (the table grew; they may know more now)."""
        self._factories.clear()

    def value_info(self, value: cst.BaseExpression, frame: Frame) -> ObjectInfo | None:
        """What the object an expression evaluates to is, if it is tracked."""
        if isinstance(value, cst.Call):
            func = value.func
            if (
                isinstance(func, cst.Attribute)
                and func.attr.value in PASS_THROUGH_METHODS
                and len(value.args) == 1
            ):
                # `optimizer = fabric.setup_optimizers(optimizer)`: the same object, wrapped.
                return self.value_info(value.args[0].value, frame)
            return self.constructed(value, frame)
        if isinstance(value, cst.Subscript):
            container = self.scopes.identity(value.value, frame)
            if container is not None:
                infos = self.objects.get(container + "[]")
                if infos:
                    return infos[0]
            return None
        identity = self.scopes.identity(value, frame)
        if identity is not None:
            infos = self.objects.get(identity)
            if infos:
                return infos[0]
        return None

    # -- what an optimizer updates --------------------------------------------------------
    def updates(self, optimizer: str) -> frozenset[str]:
        """What `optimizer` is built over; a wrapper (`DistributedOptimizer(self.optimizer)`,
        `Lookahead(base)`) updates what the optimizer it wraps does."""
        found: set[str] = set()
        pending, seen = [optimizer], set()
        while pending:
            current = pending.pop()
            if current in seen:
                continue
            seen.add(current)
            found.update(self.engines.get(current, ()))
            for info in self.objects.get(current, ()):
                if info.kind is not ObjectKind.OPTIMIZER:
                    continue
                for source in info.parameter_sources:
                    if self.is_optimizer(source):
                        pending.append(source)  # itself too: `opt = Wrapper(opt)`
                    else:
                        found.add(source)
        return frozenset(found)

    def optimizes(self, optimizer: str, module: str | None, whole: bool = False) -> bool:
        """Whether `module` (a model's identity) holds parameters that `optimizer` updates.

        With `whole`, `module` must be what the optimizer was built over or a parent
        of it, not one of its submodules.
        """
        if module is None:
            return False
        for source in self.updates(optimizer):
            base = source
            for accessor in (".parameters", ".named_parameters"):
                base = base.removesuffix(accessor)
            if base == module or base.startswith(module + "."):
                return True
            if not whole and module.startswith(base + "."):
                return True
        return False


def call_arguments_renamed(
    scopes: Scopes, function: FunctionInfo, call: cst.Call, frame: Frame
) -> dict[str, str]:
    """Caller identities as the callee names them: `train(net, opt)` → `net` is `train:model`."""
    return {
        identity: f"{function.qualname}:{param}"
        for param, value in parameters_of(function, call)
        if (identity := scopes.identity(value, frame)) is not None
    }


def translate_sources(sources: frozenset[str], renames: dict[str, str]) -> frozenset[str]:
    """Parameter sources rewritten through `renames` (only those that start with a key)."""
    return frozenset(
        renames[root] + source[len(root) :]
        for source in sources
        for root in renames
        if source == root or source.startswith(root + ".")
    )
