"""`ModuleFacts`: everything the rules read about one module, computed once.

It ties the analysis layers together for one module — `scopes` (identities),
`recognition`/`evidence` (what each identity holds and why), `linking` (the rest of
the codebase) and `trees` (what each function runs) — and answers the questions
rules ask: every operation in its loops (`in_loops`, `sites`), what an object is
(`kinds`, `info`), what an optimizer updates (`optimizes`, `clears`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import libcst as cst

from looplint.analysis.activations import LossInput, loss_inputs
from looplint.analysis.callers import CallGraph
from looplint.analysis.catalog import ObjectKind
from looplint.analysis.evidence import fill
from looplint.analysis.linking import Binding, Linker, ModuleResolver
from looplint.analysis.networks import Networks, pretrained_models
from looplint.analysis.operations import (
    Assign,
    Clear,
    Item,
    LoopView,
    OperationT,
    Site,
    Step,
    _flatten,
    _Place,
    loop_views,
)
from looplint.analysis.program import CallEvent, FunctionInfo, ModuleProgram, all_events
from looplint.analysis.recognition import ObjectInfo, ObjectTable
from looplint.analysis.sampling import Sampling
from looplint.analysis.scopes import Frame, Scopes
from looplint.analysis.summary import ModuleSummary, divisors, summarise
from looplint.analysis.syntax import descendants
from looplint.analysis.trees import TreeBuilder

__all__ = ["Binding", "Frame", "ModuleFacts", "ObjectInfo"]


class ModuleFacts:
    """The object table and execution trees of one module."""

    def __init__(
        self,
        program: ModuleProgram,
        project: ModuleResolver | None = None,
        path: str | None = None,
        incoming: Iterable[Binding] = (),
    ) -> None:
        self.program = program
        self.imports = program.imports
        self.path = path
        self.scopes = Scopes(program)
        self.linker = Linker(program, self.scopes, project, path)
        self.table = ObjectTable(program, self.scopes, self.linker.factory)
        for binding in incoming:
            self.table.record(f"{binding.function}:{binding.param}", binding.info())
        fill(self.table, program, self.scopes)
        self.trees = TreeBuilder(program, self.scopes, self.table, self.linker)
        self._sites: dict[int, list[Site]] = {}
        self._views: dict[int, dict[int, LoopView]] = {}
        self._summary: ModuleSummary | None = None
        self._networks: Networks | None = None
        self._pretrained: dict[str, cst.Call] | None = None
        self._sampling: Sampling | None = None
        self._frozen: frozenset[str] | None = None
        self._calls: CallGraph | None = None
        self._divisors: frozenset[str] | None = None
        self._loss_inputs: list[LossInput] | None = None

    @property
    def consulted(self) -> dict[str, set[str] | None]:
        """Files of other modules the analysis read (see `Linker.consulted`)."""
        return self.linker.consulted

    @property
    def objects(self) -> dict[str, list[ObjectInfo]]:
        """Every recognised object, by identity."""
        return self.table.objects

    @property
    def summary(self) -> ModuleSummary:
        """Module-wide textual facts, computed on first use."""
        if self._summary is None:
            self._summary = summarise(self.program)
        return self._summary

    @property
    def networks(self) -> Networks:
        """The module's `nn.Module` classes (`Networks`), computed on first use."""
        if self._networks is None:
            self._networks = Networks(
                self.program, self.linker.foreign_layer, self.linker.foreign_network
            )
        return self._networks

    @property
    def pretrained(self) -> dict[str, cst.Call]:
        """Identities holding a model loaded by `from_pretrained(...)`, with the call."""
        if self._pretrained is None:
            self._pretrained = pretrained_models(self.program, self.scopes)
        return self._pretrained

    @property
    def sampling(self) -> Sampling:
        """DDP, data loaders and their samplers (`Sampling`), computed on first use."""
        if self._sampling is None:
            self._sampling = Sampling(self.program, self.scopes, self.linker.foreign_loader)
        return self._sampling

    @property
    def calls(self) -> CallGraph:
        """Who calls each function of the module, computed on first use."""
        if self._calls is None:
            self._calls = CallGraph(self.program, self.scopes)
        return self._calls

    @property
    def divisors(self) -> frozenset[str]:
        """What the module divides anything by (`summary.divisors`), computed on first use."""
        if self._divisors is None:
            self._divisors = divisors(self.program.module)
        return self._divisors

    @property
    def loss_inputs(self) -> list[LossInput]:
        """Every loss call whose input's last activation is known (`activations`)."""
        if self._loss_inputs is None:
            self._loss_inputs = loss_inputs(self.program, self.scopes, self.linker, self.calls)
        return self._loss_inputs

    # -- objects -------------------------------------------------------------------------
    def kinds(self, identity: str | None) -> set[ObjectKind]:
        """What an identity is known to hold."""
        return self.table.kinds(identity)

    def is_optimizer(self, identity: str | None) -> bool:
        """Whether `identity` is known to hold an optimizer."""
        return self.table.is_optimizer(identity)

    def scheduler_info(self, identity: str) -> ObjectInfo | None:
        """How the scheduler at `identity` was built, if known."""
        return self.table.info(identity, ObjectKind.SCHEDULER)

    def evidence(self, identity: str) -> str:
        """Why `identity` is thought to hold what it holds ('' when nothing is known)."""
        return "; ".join(info.evidence for info in self.table.objects.get(identity, ()))

    def constructed(self, call: cst.Call, frame: Frame) -> ObjectInfo | None:
        """The tracked object a call builds, if any (`ObjectTable.constructed`)."""
        return self.table.constructed(call, frame)

    def optimizes(self, optimizer: str, module: str | None, whole: bool = False) -> bool:
        """Whether `module` holds parameters that `optimizer` updates (`ObjectTable.optimizes`)."""
        return self.table.optimizes(optimizer, module, whole)

    def clears(self, clear: Clear, optimizer: str, sole: bool = False) -> bool:
        """Whether `clear` certainly clears the gradients `optimizer` steps on.

        With `sole` (the only optimizer of its loop), a model's `zero_grad()` is taken
        to clear an optimizer built over parameters looplint cannot see.
        """
        if clear.optimizer == optimizer:
            return True
        if clear.optimizer is not None:
            return False
        if self.optimizes(optimizer, clear.module):
            return True
        return sole and clear.module is not None and not self.table.updates(optimizer)

    def sole_optimizer(self, view: LoopView) -> bool:
        """Whether one optimizer alone is stepped in the loop `view` shows."""
        return len({s.op.optimizer for s in view.sites if isinstance(s.op, Step)}) == 1

    def hands_out_generator(self, call: cst.Call, frame: Frame) -> bool:
        """Whether `x.parameters()` (or `named_parameters()`, …) gives a one-shot generator.

        torch's modules do. An instance of a class of this module that defines the method
        itself gets what that method returns: hand-written layers in autograd lessons
        return a list (`return [self.weight, self.bias]`), which can be read any number
        of times.
        """
        func = call.func
        if not isinstance(func, cst.Attribute):
            return True  # `filter(...)`, `map(...)`: one-shot whatever they wrap
        receiver = self.scopes.identity(func.value, frame)
        owner = self.scopes.instance_class(receiver) if receiver is not None else None
        method = self.program.method(owner, func.attr.value) if owner is not None else None
        return method is None or _returns_generator(method)

    def partly_frozen(self, module: str) -> bool:
        """Whether this module freezes parameters of `module` or of a part of it (also
        through the class it is an instance of): `p.requires_grad = False` over its
        parameters, `module.encoder.requires_grad_(False)`. A linear probe does this."""
        if self._frozen is None:
            self._frozen = frozenset(self._frozen_modules())
        owner = self.scopes.instance_class(module)
        prefixes = [module] if owner is None else [module, self.scopes.class_self(owner)]
        return any(
            frozen == prefix or frozen.startswith(prefix + ".")
            for frozen in self._frozen
            for prefix in prefixes
        )

    def _frozen_modules(self) -> Iterator[str]:
        for function, sites in self.all_sites():
            for site in sites:
                op = site.op
                if (
                    isinstance(op, Assign)
                    and op.target.endswith(".requires_grad")
                    and isinstance(op.node, cst.Assign)
                    and _is_false(op.node.value)
                ):
                    yield op.target.removesuffix(".requires_grad")
            for event in all_events(function.events):
                call = event.node if isinstance(event, CallEvent) else None
                if (
                    call is not None
                    and isinstance(call.func, cst.Attribute)
                    and call.func.attr.value == "requires_grad_"
                    and call.args
                    and _is_false(call.args[0].value)
                ):
                    identity = self.scopes.identity(call.func.value, Frame(function, {}))
                    if identity is not None:
                        yield identity

    # -- what this module gives others --------------------------------------------------
    def factory_info(self, function: FunctionInfo) -> ObjectInfo | None:
        """What one of this module's functions returns, when it is a tracked object."""
        return self.table.factory_info(function)

    def summary_tree(self, function: FunctionInfo) -> tuple[Item, ...] | None:
        """What one of this module's functions does for its callers (`TreeBuilder`)."""
        return self.trees.summary_tree(function)

    def bindings(self) -> list[Binding]:
        """What this module passes to functions and classes of other modules."""
        return self.linker.bindings(self.program, self.table)

    # -- queries ---------------------------------------------------------------------------
    def tree(self, function: FunctionInfo) -> tuple[Item, ...]:
        """`function`'s body as resolved operations, calls inside loops inlined."""
        return self.trees.tree(function)

    def sites(self, function: FunctionInfo) -> list[Site]:
        """Every operation `function` runs, in execution order, with its loops and guards."""
        key = id(function)
        cached = self._sites.get(key)
        if cached is None:
            cached = []
            _flatten(self.tree(function), _Place(), cached)
            self._sites[key] = cached
        return cached

    def in_loops(self, kind: type[OperationT]) -> Iterator[tuple[Site, OperationT, LoopView]]:
        """Each `kind` operation run inside a loop (not in a step closure), with the view of
        its innermost loop: the starting point of most rules."""
        for function in self.program.functions:
            sites = self.sites(function)
            views: dict[int, LoopView] | None = None
            for site in sites:
                op = site.op
                if not isinstance(op, kind) or site.loop is None or site.in_closure:
                    continue
                if views is None:
                    views = self.loop_views(function)
                yield site, op, views[id(site.loop)]

    def loop_views(self, function: FunctionInfo) -> dict[int, LoopView]:
        """`loop_views` of a function's sites, computed once."""
        key = id(function)
        cached = self._views.get(key)
        if cached is None:
            cached = self._views[key] = loop_views(self.sites(function))
        return cached

    def all_sites(self) -> Iterator[tuple[FunctionInfo, list[Site]]]:
        """Sites of every function and the module body."""
        for function in self.program.functions:
            yield function, self.sites(function)


def _returns_generator(method: FunctionInfo) -> bool:
    """A generator function, or one returning a generator expression or another
    module's `parameters()`; a list, a tuple or a comprehension is not one."""
    if any(isinstance(node, (cst.Yield)) for node in descendants(method.node)):
        return True
    return any(
        isinstance(value, cst.GeneratorExp)
        or (isinstance(value, cst.Call) and not isinstance(value.func, cst.Name))
        for value in method.returns
    )


def _is_false(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == "False"
