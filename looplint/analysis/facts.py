"""Shared facts about a module's training loops, computed once for all rules.

Two layers sit on top of the compiled events of `looplint.analysis.program`:

* an **object table**: which names and attributes hold an optimizer, an LR
  scheduler or a GradScaler (from constructors, same-module factories, parameter
  annotations, how a parameter is used, and aliases), keyed by *identity* — a
  string naming a variable in its scope (`train:opt`, `<module>:optimizer`) or an
  attribute of a class's instances (`Trainer.self.optimizer`);
* **execution trees**: each function's events with every call, step, clear and
  construction resolved to those identities, and calls to same-module functions
  made inside loops inlined with their arguments bound, so a rule sees what one
  iteration of a loop really runs.

The operations themselves are defined in `looplint.analysis.operations`, module-wide textual
facts in `looplint.analysis.summary`. Rules are short queries over `ModuleFacts.in_loops()` and
`ModuleFacts.sites()`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import libcst as cst

from looplint.analysis.catalog import (
    ObjectKind,
    annotated_kind,
    constructed_kind,
    takes_model_not_parameters,
)
from looplint.analysis.operations import (
    Append,
    Assign,
    Backward,
    Branch,
    Clear,
    Clip,
    Construct,
    Context,
    Escape,
    Item,
    LoadState,
    Loop,
    LoopView,
    ModeSwitch,
    OperationT,
    Save,
    ScalerCall,
    SchedulerStep,
    Site,
    Step,
    _flatten,
    _Place,
    loop_views,
)
from looplint.analysis.program import (
    AssignEvent,
    BranchEvent,
    CallEvent,
    ClassInfo,
    Event,
    FunctionInfo,
    LoopEvent,
    ModuleProgram,
    WithEvent,
    all_events,
    calls_in,
)
from looplint.analysis.summary import ModuleSummary, summarise
from looplint.analysis.syntax import (
    argument,
    children,
    dotted_name,
    positional_args,
)
from looplint.analysis.syntax import (
    descendants as _descendants,
)

if TYPE_CHECKING:
    from looplint.analysis.project import Project, Target

MAX_INLINE_DEPTH = 4
_PARAMETER_ACCESSORS = frozenset(
    {"parameters", "named_parameters", "children", "modules", "state_dict", "buffers"}
)
_GRAD_CLEARING_METHODS = frozenset({"zero_", "detach_", "fill_", "mul_"})
_NEVER_FOLLOWED = frozenset({"torch", "numpy", "__future__", "typing"})
"""Libraries the catalog already knows: their source is never followed."""


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


def _symbolic(identity: str | None) -> bool:
    """Whether an identity stands for a parameter of a function being summarised."""
    return identity is not None and identity.startswith("$")


@dataclass(frozen=True, slots=True)
class Frame:
    """A function being executed, with its parameters bound to the caller's identities."""

    function: FunctionInfo
    env: Mapping[str, str]


def _maximal_chains(expression: cst.CSTNode) -> Iterator[cst.BaseExpression]:
    """Every outermost name/attribute chain inside `expression`."""
    stack: list[cst.CSTNode] = [expression]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.Name, cst.Attribute)) and dotted_name(node) is not None:
            yield node
            continue
        if isinstance(node, cst.Lambda):
            continue
        stack.extend(children(node))


def _calls_method(expression: cst.CSTNode, names: frozenset[str]) -> bool:
    stack: list[cst.CSTNode] = [expression]
    while stack:
        node = stack.pop()
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in names
        ):
            return True
        stack.extend(children(node))
    return False


_CLIPPERS = frozenset(
    {
        "torch.nn.utils.clip_grad_norm_",
        "torch.nn.utils.clip_grad_value_",
        "torch.nn.utils.clip_grad.clip_grad_norm_",
        "torch.nn.utils.clip_grad.clip_grad_value_",
    }
)
_SCALER_METHODS = frozenset({"scale", "unscale_", "update"})
_DETACHING_METHODS = frozenset({"item", "detach", "cpu", "tolist", "numpy", "detach_"})
_DETACHING_FUNCTIONS = frozenset({"float", "int", "bool", "str"})
_ENGINE_WORDS = ("accelerator", "engine", "fabric", "trainer")


def _detaches(expression: cst.CSTNode) -> bool:
    """Whether the value is cut from the autograd graph (`.item()`, `.detach()`, `float()`)."""
    for node in (expression, *_descendants(expression)):
        if isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in _DETACHING_METHODS:
                return True
            if isinstance(func, cst.Name) and func.value in _DETACHING_FUNCTIONS:
                return True
        elif isinstance(node, cst.Attribute) and node.attr.value == "data":
            return True
    return False


def _is_false(node: cst.BaseExpression | None) -> bool:
    return isinstance(node, cst.Name) and node.value == "False"


def _is_grad_attribute(node: cst.BaseExpression) -> bool:
    """`p.grad` or `p.grad.data`."""
    if isinstance(node, cst.Attribute) and node.attr.value == "data":
        node = node.value
    return isinstance(node, cst.Attribute) and node.attr.value == "grad"


class ModuleFacts:
    """The object table and execution trees of one module."""

    def __init__(
        self,
        program: ModuleProgram,
        project: Project | None = None,
        path: str | None = None,
        incoming: Iterable[Binding] = (),
    ) -> None:
        self.program = program
        self.imports = program.imports
        self.project = project
        self.path = path
        self.consulted: dict[str, set[str] | None] = {}
        """Files of other modules this module's analysis has read (cache dependencies):
        None where their facts were used, else the names whose definitions were only
        found irrelevant (a weaker dependency: see `Project.dependencies`)."""
        self._incoming = tuple(incoming)
        self._targets: dict[str, Target | None] = {}
        self._node_targets: dict[tuple[int, bool], Target | None] = {}
        self._summaries: dict[int, tuple[Item, ...] | None] = {}
        self.objects: dict[str, list[ObjectInfo]] = {}
        self._factory_kinds: dict[int, ObjectInfo | None] = {}
        self._trees: dict[int, tuple[Item, ...]] = {}
        self._sites: dict[int, list[Site]] = {}
        self._summary: ModuleSummary | None = None
        self._views: dict[int, dict[int, LoopView]] = {}
        self._build_object_table()

    @property
    def summary(self) -> ModuleSummary:
        """Module-wide textual facts, computed on first use."""
        if self._summary is None:
            self._summary = summarise(self.program)
        return self._summary

    # -- identities ----------------------------------------------------------------
    def _class_self(self, owner: ClassInfo) -> str:
        return f"{self.program.root_class(owner).name}.self"

    def resolve_name(self, name: str, frame: Frame) -> str:
        """The identity a bare name refers to inside `frame`."""
        bound = frame.env.get(name)
        if bound is not None:
            return bound
        scope: FunctionInfo | None = frame.function
        while scope is not None:
            if scope.self_name == name and scope.owner is not None:
                return self._class_self(scope.owner)
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

    def kinds(self, identity: str | None) -> set[ObjectKind]:
        """What an identity is known to hold."""
        if identity is None:
            return set()
        return {info.kind for info in self.objects.get(identity, ())}

    def is_optimizer(self, identity: str | None) -> bool:
        """Whether `identity` is known to hold an optimizer."""
        return ObjectKind.OPTIMIZER in self.kinds(identity)

    def scheduler_info(self, identity: str) -> ObjectInfo | None:
        """How the scheduler at `identity` was built, if known."""
        for info in self.objects.get(identity, ()):
            if info.kind is ObjectKind.SCHEDULER:
                return info
        return None

    # -- object table ----------------------------------------------------------------
    def _record(self, identity: str, info: ObjectInfo) -> bool:
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

    def constructed(self, call: cst.Call, frame: Frame) -> ObjectInfo | None:
        """The object a call builds: a library constructor or a same-module factory."""
        qualified = self.imports.qualify(call.func)
        if qualified is not None:
            kind = constructed_kind(qualified)
            if kind is None:
                return self._external_factory(call, frame)
            optimizer = None
            if kind is ObjectKind.SCHEDULER:
                first = argument(call, 0, "optimizer")
                optimizer = self.identity(first, frame) if first is not None else None
            sources = self._parameter_sources(call, qualified, frame)
            return ObjectInfo(kind, qualified, call, optimizer, sources)
        callee = self._callee(call, frame)
        if callee is not None:
            return self._factory_kind(callee[0])
        return self._external_factory(call, frame)

    def _factory_kind(self, function: FunctionInfo) -> ObjectInfo | None:
        key = id(function)
        if key in self._factory_kinds:
            return self._factory_kinds[key]
        self._factory_kinds[key] = None  # guards recursion
        frame = Frame(function, {})
        for value in function.returns:
            info = self._value_info(value, frame)
            if info is not None:
                self._factory_kinds[key] = info
                return info
        return None

    def _value_info(self, value: cst.BaseExpression, frame: Frame) -> ObjectInfo | None:
        if isinstance(value, cst.Call):
            return self.constructed(value, frame)
        identity = self.identity(value, frame)
        if identity is not None:
            infos = self.objects.get(identity)
            if infos:
                return infos[0]
        return None

    def _build_object_table(self) -> None:
        for binding in self._incoming:
            self._record(
                f"{binding.function}:{binding.param}",
                ObjectInfo(
                    ObjectKind(binding.kind),
                    binding.qualified,
                    None,
                    parameter_sources=frozenset(binding.parameter_sources),
                ),
            )
        for function in self.program.functions:
            frame = Frame(function, {})
            for param, annotation in function.annotations.items():
                qualified = self.imports.qualify(annotation)
                kind = annotated_kind(qualified) if qualified is not None else None
                if kind is not None:
                    self._record(
                        f"{function.qualname}:{param}", ObjectInfo(kind, qualified or "", None)
                    )
            self._infer_parameter_kinds(function)
        for _ in range(3):
            changed = False
            for function in self.program.functions:
                frame = Frame(function, {})
                for event in all_events(function.events):
                    if (
                        isinstance(event, AssignEvent)
                        and event.value is not None
                        and not event.augmented
                    ):
                        changed |= self._classify_assignment(event, frame)
                    elif isinstance(event, CallEvent):
                        changed |= self._bind_constructor_attributes(event.node, frame)
                        changed |= self._bind_call_arguments(event.node, frame)
            self._factory_kinds.clear()
            if not changed:
                break

    def _classify_assignment(self, event: AssignEvent, frame: Frame) -> bool:
        assert event.value is not None
        value = event.value
        targets = event.targets
        if len(targets) == 1:
            info = self._value_info(value, frame)
            if info is None:
                return False
            identity = self.identity(targets[0], frame)
            return identity is not None and self._record(identity, info)
        # `model, opt, loader = accelerator.prepare(model, opt, loader)`: names keep their kinds.
        return False

    def _bind_constructor_attributes(self, call: cst.Call, frame: Frame) -> bool:
        """`Trainer(model, opt)`: `self.optimizer = optimizer` in `__init__` holds `opt`."""
        if not isinstance(call.func, cst.Name):
            return False
        owner = self.program.classes.get(call.func.value)
        if owner is None:
            return False
        init = self.program.method(owner, "__init__")
        if init is None or init.self_name is None:
            return False
        env = self._bind(init, call, frame, receiver=None)
        changed = False
        class_self = self._class_self(owner)
        for event in all_events(init.events):
            if not isinstance(event, AssignEvent) or event.value is None or len(event.targets) != 1:
                continue
            target = event.targets[0]
            if not (
                isinstance(target, cst.Attribute)
                and isinstance(target.value, cst.Name)
                and target.value.value == init.self_name
                and isinstance(event.value, cst.Name)
            ):
                continue
            source = env.get(event.value.value)
            for info in list(self.objects.get(source, ())) if source else ():
                changed |= self._record(f"{class_self}.{target.attr.value}", info)
        return changed

    def _bind_call_arguments(self, call: cst.Call, frame: Frame) -> bool:
        """`train(model, SGD(...))`: the callee's parameter holds what the caller passes."""
        callee = self._callee(call, frame)
        if callee is None:
            return False
        function = callee[0]
        pairs = self._parameters_of(function, call)
        # Caller identities as the callee names them: `train(net, opt)` → `net` is `train:model`.
        renames = {
            identity: f"{function.qualname}:{param}"
            for param, value in pairs
            if (identity := self.identity(value, frame)) is not None
        }
        changed = False
        for param, value in pairs:
            info = self._value_info(value, frame)
            if info is not None:
                translated = frozenset(
                    renames[root] + source[len(root) :]
                    for source in info.parameter_sources
                    for root in renames
                    if source == root or source.startswith(root + ".")
                )
                if translated:
                    info = replace(info, parameter_sources=info.parameter_sources | translated)
                changed |= self._record(f"{function.qualname}:{param}", info)
        return changed

    def _infer_parameter_kinds(self, function: FunctionInfo) -> None:
        """A parameter used as `x.step()` with `x.zero_grad()`, or as `scaler.step(x)`."""
        stepped: set[str] = set()
        cleared: set[str] = set()
        scaled: set[str] = set()
        params = set(function.params)
        for event in all_events(function.events):
            if not isinstance(event, CallEvent) or not isinstance(event.node.func, cst.Attribute):
                continue
            func = event.node.func
            receiver = func.value
            if isinstance(receiver, cst.Name) and receiver.value in params:
                if func.attr.value == "step":
                    stepped.add(receiver.value)
                elif func.attr.value == "zero_grad":
                    cleared.add(receiver.value)
            if func.attr.value == "step":
                args = positional_args(event.node)
                receiver_name = (dotted_name(receiver) or "").lower()
                if args and isinstance(args[0], cst.Name) and "scaler" in receiver_name:
                    if args[0].value in params:
                        scaled.add(args[0].value)
        for param in (stepped & cleared) | scaled:
            self._record(
                f"{function.qualname}:{param}",
                ObjectInfo(ObjectKind.OPTIMIZER, "<used as optimizer>", None),
            )

    # -- other modules ---------------------------------------------------------------
    def external(self, func: cst.BaseExpression, factory: bool = False) -> Target | None:
        """The function or class of another module of the codebase that `func` names
        (with `factory`, only one that may return an optimizer, scheduler or scaler)."""
        if self.project is None or self.path is None:
            return None
        node_key = (id(func), factory)
        if node_key in self._node_targets:
            return self._node_targets[node_key]
        found = self._node_targets[node_key] = self._external(func, factory)
        return found

    def _external(self, func: cst.BaseExpression, factory: bool) -> Target | None:
        assert self.project is not None and self.path is not None
        written = self.imports.target(func)
        if written is None or written.split(".", 1)[0] in _NEVER_FOLLOWED:
            return None
        key = f"{written}:factory" if factory else written
        if key in self._targets:
            return self._targets[key]
        found = self._targets[key] = self.project.target(self.path, written, factory)
        located = self.project.locate(self.path, written)
        if located is not None:
            path, attribute = located
            names = self.consulted.get(path, set())
            if names is not None and found is None and self.project.irrelevant(path, attribute):
                names.add(attribute)
                self.consulted[path] = names
            else:
                self.consulted[path] = None
        return found

    def _arguments(self, function: FunctionInfo, call: cst.Call, frame: Frame) -> dict[str, str]:
        """The caller's identity each of `function`'s parameters is bound to by `call`."""
        return {
            param: identity
            for param, value in self._parameters_of(function, call)
            if (identity := self.identity(value, frame)) is not None
        }

    def _external_factory(self, call: cst.Call, frame: Frame) -> ObjectInfo | None:
        """`build_optimizer(model)` where `build_optimizer` lives in another module."""
        target = self.external(call.func, factory=True)
        if target is None or target.function is None:
            return None
        info = target.facts._factory_kind(target.function)
        if info is None:
            return None
        prefix = f"{target.function.qualname}:"
        mapping = self._arguments(target.function, call, frame)

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
        return ObjectInfo(info.kind, info.qualified, call, optimizer, sources)

    def summary_tree(self, function: FunctionInfo) -> tuple[Item, ...] | None:
        """What `function` does when called from a loop, its parameters left symbolic
        (`$optimizer`): computed once, then bound at each call site by `_instantiate`.
        None while it is being computed (a cycle between modules)."""
        key = id(function)
        if key in self._summaries:
            return self._summaries[key]
        self._summaries[key] = None
        params = function.params[1:] if function.self_name is not None else function.params
        env = {param: f"${param}" for param in params}
        tree = self._resolve(function.events, Frame(function, env), True, (function,))
        self._summaries[key] = tree
        return tree

    def _instantiate(
        self, items: tuple[Item, ...], mapping: Mapping[str, str], call: cst.Call
    ) -> list[Item]:
        """Another module's summary bound to this call: parameters become the caller's
        identities, and every operation sits at the call (where it is reported).

        A parameter's `.step()` becomes an optimizer step or a scheduler step by what
        the caller passes, its `.zero_grad()` a clear of that optimizer or model.
        """

        def bind(identity: str | None) -> str | None:
            if identity is None or not _symbolic(identity):
                return identity
            head, dot, rest = identity[1:].partition(".")
            bound = mapping.get(head)
            return bound + dot + rest if bound is not None else None

        out: list[Item] = []
        for item in items:
            if isinstance(item, Loop):
                # The callee's own loops are checked in its own file, where the
                # caller's objects arrive as `Binding`s; only what it does once per
                # call belongs to the caller's loop.
                continue
            if isinstance(item, Branch):
                arms = tuple(tuple(self._instantiate(arm, mapping, call)) for arm in item.arms)
                out.append(Branch(item.node, item.test, arms))
            elif isinstance(item, Context):
                body = tuple(self._instantiate(item.body, mapping, call))
                out.append(Context(item.node, item.contexts, body))
            elif isinstance(item, Backward):
                out.append(Backward(call, bind(item.tensor), item.scaled))
            elif isinstance(item, Step):
                optimizer = bind(item.optimizer)
                if optimizer is None:
                    continue
                if not _symbolic(item.optimizer) or self.is_optimizer(optimizer):
                    closure = tuple(self._instantiate(item.closure, mapping, call))
                    out.append(Step(call, optimizer, closure, item.via_scaler))
                elif not item.via_scaler and ObjectKind.SCHEDULER in self.kinds(optimizer):
                    out.append(SchedulerStep(call, optimizer, bool(item.node.args)))
            elif isinstance(item, Clear):
                if _symbolic(item.module) and self.is_optimizer(bind(item.module)):
                    out.append(Clear(call, bind(item.module)))
                elif item.optimizer is None or not _symbolic(item.optimizer):
                    out.append(Clear(call, item.optimizer, bind(item.module)))
            elif isinstance(item, Escape):
                optimizer = bind(item.optimizer)
                if optimizer is not None and (
                    not _symbolic(item.optimizer) or self.is_optimizer(optimizer)
                ):
                    out.append(Escape(call, optimizer))
            elif isinstance(item, Construct):
                sources = frozenset(s for s in map(bind, item.parameter_sources) if s is not None)
                out.append(
                    Construct(call, item.kind, item.qualified, sources, bind(item.optimizer))
                )
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
            # Assignments, appends, saves and loads stay the callee's own business.
        return out

    def bindings(self) -> list[Binding]:
        """What this module passes to functions and classes of other modules: the
        optimizers, schedulers and scalers its calls hand over, parameter by parameter."""
        found: dict[tuple[str, str, str, str], Binding] = {}
        for function in self.program.functions:
            frame = Frame(function, {})
            for event in all_events(function.events):
                if not isinstance(event, CallEvent) or not event.node.args:
                    continue
                call = event.node
                known = [
                    (arg, info)
                    for arg in call.args
                    if (info := self._value_info(arg.value, frame)) is not None
                ]
                if not known:
                    continue
                target = self.external(call.func)
                callee = target.callable if target is not None else None
                if target is None or callee is None:
                    continue
                renames = {
                    identity: f"{callee.qualname}:{param}"
                    for param, identity in self._arguments(callee, call, frame).items()
                }
                for param, value in self._parameters_of(callee, call):
                    info = self._value_info(value, frame)
                    if info is None or info.kind in target.facts.kinds(
                        f"{callee.qualname}:{param}"
                    ):
                        continue  # the receiving module knows it already
                    sources = sorted(
                        renames[root] + source[len(root) :]
                        for source in info.parameter_sources
                        for root in renames
                        if source == root or source.startswith(root + ".")
                    )
                    binding = Binding(
                        target.path, callee.qualname, param, info.kind.value, info.qualified,
                        tuple(sources),
                    )  # fmt: skip
                    found.setdefault((binding.path, binding.function, param, binding.kind), binding)
        return sorted(found.values(), key=lambda b: (b.path, b.function, b.param, b.kind))

    @staticmethod
    def _parameters_of(
        function: FunctionInfo, call: cst.Call
    ) -> list[tuple[str, cst.BaseExpression]]:
        params = list(function.params[1:] if function.self_name is not None else function.params)
        pairs = list(zip(params, positional_args(call), strict=False))
        pairs += [
            (arg.keyword.value, arg.value)
            for arg in call.args
            if arg.keyword is not None and arg.keyword.value in function.params
        ]
        return pairs

    # -- execution trees -------------------------------------------------------------
    def _callee(self, call: cst.Call, frame: Frame) -> tuple[FunctionInfo, str | None] | None:
        """The same-module function a call reaches, and the identity bound to `self`."""
        func = call.func
        if isinstance(func, cst.Name):
            if func.value in frame.env:
                return None
            found = self.program.function_named(func.value, frame.function)
            return (found, None) if found is not None else None
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name):
            owner = frame.function.owner
            scope: FunctionInfo | None = frame.function
            while scope is not None and scope.self_name is None:
                scope = scope.parent
            if scope is None or scope.owner is None or func.value.value != scope.self_name:
                return None
            owner = scope.owner
            method = self.program.method(owner, func.attr.value)
            if method is None or method.self_name is None:
                return None
            return method, self._class_self(owner)
        return None

    def _bind(
        self, callee: FunctionInfo, call: cst.Call, frame: Frame, receiver: str | None
    ) -> dict[str, str]:
        env: dict[str, str] = {}
        params = list(callee.params)
        if callee.self_name is not None:
            if receiver is not None:
                env[callee.self_name] = receiver
            params = params[1:]
        pairs = list(zip(params, positional_args(call), strict=False))
        pairs += [
            (arg.keyword.value, arg.value)
            for arg in call.args
            if arg.keyword is not None and arg.keyword.value in callee.params
        ]
        for param, value in pairs:
            identity = self.identity(value, frame)
            if identity is None:
                continue
            if (
                not _symbolic(identity)
                and not self.kinds(identity)
                and self.kinds(f"{callee.qualname}:{param}")
            ):
                continue  # the callee knows more (annotation or usage) than the caller
            env[param] = identity
        return env

    def tree(self, function: FunctionInfo) -> tuple[Item, ...]:
        """`function`'s body as resolved operations, calls inside loops inlined."""
        key = id(function)
        cached = self._trees.get(key)
        if cached is None:
            cached = self._resolve(function.events, Frame(function, {}), False, (function,))
            self._trees[key] = cached
        return cached

    def _resolve(
        self,
        events: tuple[Event, ...],
        frame: Frame,
        in_loop: bool,
        stack: tuple[FunctionInfo, ...],
    ) -> tuple[Item, ...]:
        out: list[Item] = []
        for event in events:
            if isinstance(event, CallEvent):
                self._resolve_call(event.node, frame, in_loop, stack, out)
            elif isinstance(event, AssignEvent):
                self._resolve_assignment(event, frame, in_loop, out)
            elif isinstance(event, LoopEvent):
                targets = frozenset(
                    identity
                    for target in event.targets
                    if (identity := self.identity(target, frame)) is not None
                )
                out.append(Loop(event.node, targets, self._resolve(event.body, frame, True, stack)))
            elif isinstance(event, BranchEvent):
                arms = tuple(self._resolve(arm, frame, in_loop, stack) for arm in event.arms)
                out.append(Branch(event.node, event.test, arms))
            elif isinstance(event, WithEvent):
                contexts = tuple(
                    self.imports.qualify(c.func if isinstance(c, cst.Call) else c)
                    or dotted_name(c.func if isinstance(c, cst.Call) else c)
                    or ""
                    for c in event.contexts
                )
                out.append(
                    Context(event.node, contexts, self._resolve(event.body, frame, in_loop, stack))
                )
        return tuple(out)

    def _resolve_assignment(
        self, event: AssignEvent, frame: Frame, in_loop: bool, out: list[Item]
    ) -> None:
        if not in_loop:
            # Outside loops only `.grad` assignments matter (re-creation is a loop question).
            for target in event.targets:
                if isinstance(target, cst.Attribute) and target.attr.value == "grad":
                    out.append(Clear(event.node, None))
            return
        value = event.value
        sources = frozenset(
            identity
            for chain in (_maximal_chains(value) if value is not None else ())
            if (identity := self.identity(chain, frame)) is not None
        )
        derived = event.augmented or (
            value is not None and _calls_method(value, _PARAMETER_ACCESSORS)
        )
        detached = value is not None and _detaches(value)
        for target in event.targets:
            if isinstance(target, cst.Attribute) and target.attr.value == "grad":
                out.append(Clear(event.node, None))
                continue
            identity = self.identity(target, frame)
            if identity is None:
                continue
            self_derived = any(
                source == identity or source.startswith(identity + ".") for source in sources
            )
            out.append(
                Assign(
                    event.node,
                    identity,
                    not (derived or self_derived),
                    sources,
                    event.augmented,
                    detached,
                )
            )

    def _resolve_call(
        self,
        call: cst.Call,
        frame: Frame,
        in_loop: bool,
        stack: tuple[FunctionInfo, ...],
        out: list[Item],
    ) -> None:
        func = call.func
        attr = func.attr.value if isinstance(func, cst.Attribute) else None
        if attr in ("backward", "manual_backward"):
            out.append(self._backward(call, frame))
            return
        qualified = self.imports.qualify(func)
        if qualified == "torch.autograd.backward":
            first = argument(call, 0, "tensors")
            out.append(Backward(call, self.identity(first, frame) if first is not None else None))
            return
        if qualified in _CLIPPERS:
            out.append(Clip(call))
            return
        if qualified == "torch.save":
            out.append(self._save(call, frame))
            return
        if isinstance(func, cst.Attribute):
            receiver = self.identity(func.value, frame)
            kinds = self.kinds(receiver)
            if attr == "step" and receiver is not None:
                if ObjectKind.OPTIMIZER in kinds:
                    closure_arg = argument(call, 0, "closure")
                    closure = (
                        self._closure(closure_arg, frame, stack) if closure_arg is not None else ()
                    )
                    out.append(Step(call, receiver, closure))
                    return
                if ObjectKind.SCHEDULER in kinds:
                    out.append(SchedulerStep(call, receiver, bool(call.args)))
                    return
                args = positional_args(call)
                is_scaler = ObjectKind.SCALER in kinds or "scaler" in receiver.lower()
                if args:
                    stepped = self.identity(args[0], frame)
                    if is_scaler and (self.is_optimizer(stepped) or _symbolic(stepped)):
                        assert stepped is not None
                        out.append(Step(call, stepped, via_scaler=True))
                        return
                if _symbolic(receiver) and not kinds and not is_scaler:
                    # A parameter's `.step()`: an optimizer's or a scheduler's, as the
                    # caller's argument decides (see `_instantiate`).
                    closure_arg = argument(call, 0, "closure")
                    closure = (
                        self._closure(closure_arg, frame, stack) if closure_arg is not None else ()
                    )
                    out.append(Step(call, receiver, closure))
                    return
            if (
                attr in _SCALER_METHODS
                and receiver is not None
                and (ObjectKind.SCALER in kinds or "scaler" in receiver.lower())
            ):
                first = argument(call, 0, "optimizer")
                stepped = self.identity(first, frame) if first is not None else None
                out.append(ScalerCall(call, receiver, attr, stepped))
                return
            if attr == "load_state_dict" and receiver is not None:
                out.append(LoadState(call, receiver))
                return
            if attr == "append" and receiver is not None and in_loop and call.args:
                value = call.args[0].value
                sources = frozenset(
                    identity
                    for chain in _maximal_chains(value)
                    if (identity := self.identity(chain, frame)) is not None
                )
                out.append(Append(call, receiver, sources, _detaches(value)))
                return
            if attr == "zero_grad":
                if ObjectKind.OPTIMIZER in kinds:
                    out.append(Clear(call, receiver))
                else:
                    out.append(Clear(call, None, receiver))
                return
            if (
                attr in ("train", "eval")
                and receiver is not None
                and not kinds
                and self._callee(call, frame) is None  # `self.train()` may be a method
            ):
                training = attr == "train" and not _is_false(argument(call, 0, "mode"))
                out.append(ModeSwitch(call, receiver, training))
                return
            if attr in _GRAD_CLEARING_METHODS and _is_grad_attribute(func.value):
                out.append(Clear(call, None))
                return
        info = self.constructed(call, frame)
        if info is not None and info.call is call:
            out.append(self._construct(call, info, frame))
            return
        callee = self._callee(call, frame)
        if callee is not None:
            function, receiver_identity = callee
            if in_loop and len(stack) < MAX_INLINE_DEPTH and function not in stack:
                env = self._bind(function, call, frame, receiver_identity)
                out.extend(
                    self._resolve(function.events, Frame(function, env), True, (*stack, function))
                )
            return
        if in_loop:
            target = self.external(func)
            if target is not None and target.function is not None:
                summary = target.facts.summary_tree(target.function)
                if summary is not None:
                    mapping = self._arguments(target.function, call, frame)
                    out.extend(self._instantiate(summary, mapping, call))
                    return
        if attr is not None and ("zero_grad" in attr or ("clear" in attr and "grad" in attr)):
            out.append(Clear(call, None))
            return
        for arg in call.args:
            identity = self.identity(arg.value, frame)
            if self.is_optimizer(identity) or _symbolic(identity):
                assert identity is not None
                out.append(Escape(call, identity))

    def _backward(self, call: cst.Call, frame: Frame) -> Backward:
        func = call.func
        assert isinstance(func, cst.Attribute)
        receiver = func.value
        if (
            isinstance(receiver, cst.Call)
            and isinstance(receiver.func, cst.Attribute)
            and receiver.func.attr.value == "scale"
            and receiver.args
        ):
            return Backward(call, self.identity(receiver.args[0].value, frame), scaled=True)
        receiver_name = (dotted_name(receiver) or "").lower()
        engine = func.attr.value == "manual_backward" or any(
            word in receiver_name.rsplit(".", 1)[-1] for word in _ENGINE_WORDS
        )
        if engine:
            first = argument(call, 0, "loss")
            return Backward(call, self.identity(first, frame) if first is not None else None)
        return Backward(call, self.identity(receiver, frame))

    def _save(self, call: cst.Call, frame: Frame) -> Save:
        payload = argument(call, 0, "obj")
        states: set[str] = set()
        keys: set[str] = set()
        literal = False
        if payload is not None:
            for node in (payload, *_descendants(payload)):
                if (
                    isinstance(node, cst.Call)
                    and isinstance(node.func, cst.Attribute)
                    and node.func.attr.value == "state_dict"
                ):
                    literal = True
                    owner = self.identity(node.func.value, frame)
                    if owner is not None:
                        states.add(owner)
                elif isinstance(node, cst.Dict):
                    literal = True
                elif isinstance(node, cst.SimpleString):
                    value = node.evaluated_value
                    if isinstance(value, str):
                        keys.add(value)
        name = self.identity(payload, frame) if payload is not None and not literal else None
        return Save(call, frozenset(states), frozenset(keys), literal, name)

    def _parameter_sources(self, call: cst.Call, qualified: str, frame: Frame) -> frozenset[str]:
        if constructed_kind(qualified) is not ObjectKind.OPTIMIZER:
            return frozenset()
        name = "model" if takes_model_not_parameters(qualified) else "params"
        params = argument(call, 0, name)
        if params is None:
            return frozenset()
        sources = {
            identity
            for chain in _maximal_chains(params)
            if (identity := self.identity(chain, frame)) is not None
        }
        # `self.model = model` in the same function: the optimizer also updates `self.model`.
        for event in all_events(frame.function.events):
            if (
                isinstance(event, AssignEvent)
                and len(event.targets) == 1
                and isinstance(event.value, cst.Name)
            ):
                alias = self.identity(event.targets[0], frame)
                original = self.identity(event.value, frame)
                if alias is None or original is None:
                    continue
                sources |= {
                    alias + source[len(original) :]
                    for source in list(sources)
                    if source == original or source.startswith(original + ".")
                }
        return frozenset(sources)

    def _construct(self, call: cst.Call, info: ObjectInfo, frame: Frame) -> Construct:
        return Construct(call, info.kind, info.qualified, info.parameter_sources, info.optimizer)

    def optimizes(self, optimizer: str, module: str | None, whole: bool = False) -> bool:
        """Whether `module` (a model's identity) holds parameters that `optimizer` updates.

        With `whole`, `module` must be what the optimizer was built over or a parent
        of it, not one of its submodules.
        """
        if module is None:
            return False
        for info in self.objects.get(optimizer, ()):
            for source in info.parameter_sources:
                base = source
                for accessor in (".parameters", ".named_parameters"):
                    base = base.removesuffix(accessor)
                if base == module or base.startswith(module + "."):
                    return True
                if not whole and module.startswith(base + "."):
                    return True
        return False

    def clears(self, clear: Clear, optimizer: str) -> bool:
        """Whether `clear` certainly clears the gradients `optimizer` steps on."""
        return clear.optimizer == optimizer or (
            clear.optimizer is None and self.optimizes(optimizer, clear.module)
        )

    def _closure(
        self, closure: cst.BaseExpression, frame: Frame, stack: tuple[FunctionInfo, ...]
    ) -> tuple[Item, ...]:
        if isinstance(closure, cst.Lambda):
            events: list[Event] = []
            calls_in(closure.body, events)
            return self._resolve(tuple(events), frame, True, stack)
        if isinstance(closure, cst.Name):
            function = self.program.function_named(closure.value, frame.function)
            if function is not None and function not in stack:
                return self._resolve(function.events, Frame(function, {}), True, (*stack, function))
        return ()

    # -- queries -----------------------------------------------------------------------
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
