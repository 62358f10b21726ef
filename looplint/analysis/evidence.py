"""Filling a module's `ObjectTable` from every kind of evidence a reviewer would use.

In order of strength:

1. what other modules pass in (`Binding`s) and parameter annotations
   (`optimizer: Optimizer`, `optimizer_cls: type[Optimizer]`);
2. assignments: constructors, factories, class values chosen by a condition
   (`optimizer_cls = torch.optim.AdamW if ... else bnb.optim.AdamW8bit`), tuples whose
   kinds are known by position (`accelerator.prepare`, `deepspeed.initialize`,
   `self.optimizers()`), collections (`[opt_g, opt_d]`) and the loops over them
   (`for opt, sched in zip(optimizers, schedulers)`), arguments bound to the
   parameters of the module's own functions and classes;
3. the role an object plays in torch's APIs: `scaler.step(x)`, `scaler.unscale_(x)`,
   a scheduler built over `x`, `x.param_groups`, `x.add_param_group(...)`, and the
   method protocol (`x.step()` with `x.zero_grad()`; `x.step()` with `x.get_last_lr()`);
4. last, the name together with structure: a receiver called `optimizer`/`opt_d`
   whose argument-less `step()` follows a backward pass, a `scheduler`/`lr_scheduler`
   whose `step()` takes at most a metric. A receiver whose `step()` takes two or more
   arguments (a diffusion sampler, `env.step(a)` is one) is never recognised by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import libcst as cst

from looplint.analysis.catalog import (
    ENGINE_FACTORIES,
    LIGHTNING_ACCESSORS,
    OPTIMIZER_NAME,
    PASS_THROUGH_METHODS,
    SCHEDULER_NAME,
    TUPLE_FACTORIES,
    ObjectKind,
    annotated_kind,
    constructed_kind,
    lr_scheduler_name_ok,
    named_class_kind,
)
from looplint.analysis.program import (
    AssignEvent,
    CallEvent,
    FunctionInfo,
    LoopEvent,
    ModuleProgram,
    all_events,
)
from looplint.analysis.recognition import (
    Basis,
    ObjectInfo,
    ObjectTable,
    call_arguments_renamed,
    translate_sources,
)
from looplint.analysis.scopes import Frame, Scopes, parameters_of
from looplint.analysis.syntax import argument, dotted_name, positional_args

_ROUNDS = 3


def fill(table: ObjectTable, program: ModuleProgram, scopes: Scopes) -> None:
    """Record everything `program` says about its objects into `table`."""
    for function in program.functions:
        _annotations(table, function)
    _class_attributes(table, program, scopes)
    uses = _uses(table, program, scopes)
    for _ in range(_ROUNDS):
        changed = False
        for function in program.functions:
            frame = Frame(function, {})
            for event in all_events(function.events):
                if isinstance(event, AssignEvent) and event.value is not None:
                    if not event.augmented:
                        changed |= _assignment(table, event, frame, uses)
                elif isinstance(event, LoopEvent):
                    changed |= _loop_targets(table, event, frame)
                elif isinstance(event, CallEvent):
                    changed |= _constructor_attributes(table, program, scopes, event.node, frame)
                    changed |= _call_arguments(table, scopes, event.node, frame)
        changed |= _roles(table, uses)
        table.forget_factories()
        if not changed:
            break
    if table.names_count:
        _names(table, program, scopes)


# -- 1. annotations ----------------------------------------------------------------------
def _annotations(table: ObjectTable, function: FunctionInfo) -> None:
    for param, annotation in function.annotations.items():
        identity = f"{function.qualname}:{param}"
        holds_class = (
            isinstance(annotation, cst.Subscript)
            and (dotted_name(annotation.value) or "").rsplit(".", 1)[-1] in ("type", "Type")
            and len(annotation.slice) == 1
            and isinstance(annotation.slice[0].slice, cst.Index)
        )
        if holds_class:
            assert isinstance(annotation, cst.Subscript)
            inner = annotation.slice[0].slice
            assert isinstance(inner, cst.Index)
            annotation = inner.value
        qualified = table.imports.qualify(annotation)
        kind = annotated_kind(qualified) if qualified is not None else None
        if kind is None:
            continue
        written = f"type[{qualified}]" if holds_class else qualified
        info = ObjectInfo(
            kind, qualified or "", None, evidence=f"annotated `{written}`", basis=Basis.ANNOTATION
        )
        if holds_class:
            table.record_class(identity, info)
        else:
            table.record(identity, info)


def _class_attributes(table: ObjectTable, program: ModuleProgram, scopes: Scopes) -> None:
    """`optimizer_fn: Any = torch.optim.Adam` in a class body: every instance's default."""
    frame = Frame(program.body, {})
    for owner in program.classes.values():
        for attribute, values in owner.attribute_values.items():
            for value in values:
                held = _class_value(table, value, frame)
                if held is not None:
                    table.record_class(f"{scopes.class_self(owner)}.{attribute}", held)


# -- 2. assignments, tuples, collections, loops -------------------------------------------
def _assignment(table: ObjectTable, event: AssignEvent, frame: Frame, uses: _Uses) -> bool:
    assert event.value is not None
    value = event.value
    if isinstance(event.node, cst.WithItem):
        # `with LocalSGD(model) as averager:` — no optimizer, scheduler or scaler is a
        # context manager, whatever its name says: how it is used wins.
        return False
    targets = [table.scopes.identity(target, frame) for target in event.targets]
    if len(targets) == 1:
        target = targets[0]
        if target is None:
            return False
        changed = False
        held = _class_value(table, value, frame)
        if held is not None:
            changed |= table.record_class(target, held)
        for element in _elements(table, value, frame):
            changed |= table.record(target + "[]", element)
        info = table.value_info(value, frame)
        if info is not None:
            changed |= table.record(target, info)
        return changed
    kinds = _tuple_kinds(table, value, frame)
    changed = _engine(table, targets[0], value, frame)
    if not kinds:
        changed |= _handed_back(table, targets, value, frame, uses)
    for target, info in zip(targets, kinds, strict=False):
        if target is not None and info is not None:
            changed |= table.record(target, info)
    return changed


def _engine(
    table: ObjectTable, target: str | None, value: cst.BaseExpression, frame: Frame
) -> bool:
    """`engine, optimizer, _, _ = deepspeed.initialize(model=model, ...)`: `engine` trains
    the model it was handed (and is that model, wrapped)."""
    if target is None or not isinstance(value, cst.Call):
        return False
    qualified = table.imports.qualify(value.func)
    if qualified not in ENGINE_FACTORIES:
        return False
    index, keyword = ENGINE_FACTORIES[qualified]
    model = argument(value, index, keyword)
    wrapped = table.scopes.identity(model, frame) if model is not None else None
    trains = frozenset({target} | ({wrapped} if wrapped else set()))
    known, table.engines[target] = table.engines.get(target), trains
    return known != trains


def _handed_back(
    table: ObjectTable,
    targets: list[str | None],
    value: cst.BaseExpression,
    frame: Frame,
    uses: _Uses,
) -> bool:
    """`model, opt, loader, sched = backend.distribute(model=model, optimizer=opt, ...)`:
    a call whose results are unpacked, handed one known optimizer (by keyword or position),
    of which exactly one result is stepped the way an optimizer is (`.step()` with
    `.zero_grad()`, or `scaler.step(x)`). That result is the optimizer handed in, wrapped
    for distributed training, so it keeps its construction: what it updates and whether it
    keeps state. Nothing is made an optimizer that its use did not already show."""
    if not isinstance(value, cst.Call):
        return False
    handed = {
        identity: arg.value
        for arg in value.args
        if not arg.star
        and (identity := table.scopes.identity(arg.value, frame)) is not None
        and table.is_optimizer(identity)
    }
    stepped = [
        target
        for target in targets
        if target is not None
        and uses.found.get(target) in ("protocol", "scaled")
        and target not in handed
    ]
    if len(handed) != 1 or len(stepped) != 1:
        return False
    ((optimizer, written),) = handed.items()
    info = table.info(optimizer, ObjectKind.OPTIMIZER)
    assert info is not None
    called = dotted_name(value.func) or "a call"
    passed = cst.Module([]).code_for_node(written)
    evidence = f"{info.evidence}; `{passed}` handed to `{called}(...)` and back"
    target = stepped[0]
    if table.handed_back.handed.get(target) == optimizer:
        return False
    infos = table.objects.setdefault(target, [])
    index = next((i for i, known in enumerate(infos) if known.kind is info.kind), None)
    if index is None:
        infos.append(replace(info, evidence=evidence))
    elif infos[index].basis in (Basis.PROTOCOL, Basis.ROLE):
        infos[index] = replace(info, evidence=evidence)  # it now knows what it updates
    else:
        return False  # evidence of its own: no proof it is the object handed in
    table.handed_back.handed[target] = optimizer
    return True


def _class_value(table: ObjectTable, value: cst.BaseExpression, frame: Frame) -> ObjectInfo | None:
    """A class (not an instance) of optimizer or scheduler: `torch.optim.AdamW`, either
    arm of a conditional, `getattr(torch.optim, name)`, `partial(AdamW, lr=...)`."""
    if isinstance(value, cst.IfExp):
        return _class_value(table, value.body, frame) or _class_value(table, value.orelse, frame)
    if isinstance(value, cst.Call):
        called = table.imports.qualify(value.func) or dotted_name(value.func) or ""
        first = argument(value, 0, "func")
        if called.rsplit(".", 1)[-1] == "partial" and first is not None:
            return _class_value(table, first, frame)
        if called == "getattr" and first is not None:
            module = table.imports.qualify(first) or ""
            if module in ("torch.optim", "torch.optim.lr_scheduler"):
                kind = (
                    ObjectKind.SCHEDULER if module.endswith("scheduler") else ObjectKind.OPTIMIZER
                )
                return ObjectInfo(kind, module, None, evidence=f"a class looked up in `{module}`")
        return None
    identity = table.scopes.identity(value, frame)
    if identity is not None and identity in table.classes:
        return table.classes[identity]
    imported = table.imports.qualify(value)
    if imported is None:
        return None
    built = constructed_kind(imported)
    if built is not None and not imported.endswith(("_v2", "create_optimizer", "get_scheduler")):
        return ObjectInfo(built, imported, None, evidence=f"the class `{imported}`")
    if named_class_kind(imported.rsplit(".", 1)[-1]) is ObjectKind.OPTIMIZER:
        return ObjectInfo(
            ObjectKind.OPTIMIZER, imported, None,
            evidence=f"the optimizer class `{imported}`, an optimizer by its name",
            basis=Basis.NAME,
        )  # fmt: skip
    return None


def _elements(table: ObjectTable, value: cst.BaseExpression, frame: Frame) -> Iterable[ObjectInfo]:
    """What the elements of a literal collection or comprehension are."""
    if isinstance(value, (cst.List, cst.Tuple, cst.Set)):
        items = [element.value for element in value.elements]
    elif isinstance(value, cst.Dict):
        items = [
            element.value for element in value.elements if isinstance(element, cst.DictElement)
        ]
    elif isinstance(value, (cst.ListComp, cst.GeneratorExp)):
        items = [value.elt]
    elif isinstance(value, cst.DictComp):
        items = [value.value]
    else:
        return ()
    return [info for item in items if (info := table.value_info(item, frame)) is not None]


def _tuple_kinds(
    table: ObjectTable, value: cst.BaseExpression, frame: Frame
) -> list[ObjectInfo | None]:
    """What each element of a tuple-unpacked value is, by position."""
    if isinstance(value, (cst.Tuple, cst.List)):
        return [table.value_info(element.value, frame) for element in value.elements]
    if not isinstance(value, cst.Call):
        return []
    func = value.func
    qualified = table.imports.qualify(func)
    if qualified in TUPLE_FACTORIES:
        return [
            ObjectInfo(kind, qualified, value, evidence=f"position {index} of `{qualified}(...)`")
            if kind is not None
            else None
            for index, kind in enumerate(TUPLE_FACTORIES[qualified])
        ]
    if isinstance(func, cst.Attribute) and func.attr.value in PASS_THROUGH_METHODS:
        receiver = dotted_name(func.value) or ""
        return [
            _passed_through(info, receiver) if info is not None else None
            for info in (table.value_info(arg.value, frame) for arg in value.args)
        ]
    if (
        isinstance(func, cst.Attribute)
        and func.attr.value in LIGHTNING_ACCESSORS
        and not value.args
    ):
        kind = LIGHTNING_ACCESSORS[func.attr.value]
        info = ObjectInfo(kind, func.attr.value, value, evidence=f"from `self.{func.attr.value}()`")
        return [info] * 8
    return []


def _passed_through(info: ObjectInfo, receiver: str) -> ObjectInfo:
    return replace(info, evidence=f"{info.evidence}, handed back by `{receiver}.prepare(...)`")


def _loop_targets(table: ObjectTable, event: LoopEvent, frame: Frame) -> bool:
    """`for opt in optimizers`, `for opt, sched in zip(opts, scheds)`, `.values()`, `.items()`."""
    node = event.node
    if not isinstance(node, cst.For):
        return False
    iterated = node.iter
    target = node.target
    sources: list[cst.BaseExpression | None]
    targets: list[cst.BaseExpression]
    if isinstance(iterated, cst.Call) and dotted_name(iterated.func) in ("zip", "enumerate"):
        sources = [arg.value for arg in iterated.args]
        if dotted_name(iterated.func) == "enumerate":
            sources = [None, *sources[:1]]
        targets = [e.value for e in target.elements] if isinstance(target, cst.Tuple) else []
    elif (
        isinstance(iterated, cst.Call)
        and isinstance(iterated.func, cst.Attribute)
        and (iterated.func.attr.value in ("values", "items"))
    ):
        base: cst.BaseExpression = iterated.func.value
        if iterated.func.attr.value == "items":
            sources, targets = (
                [None, base],
                ([e.value for e in target.elements] if isinstance(target, cst.Tuple) else []),
            )
        else:
            sources, targets = [base], [target]
    else:
        sources, targets = [iterated], [target]
    changed = False
    for source, bound in zip(sources, targets, strict=False):
        if source is None:
            continue
        container = table.scopes.identity(source, frame)
        identity = table.scopes.identity(bound, frame)
        if container is None or identity is None:
            continue
        for info in list(table.objects.get(container + "[]", ())):
            changed |= table.record(identity, info)
    return changed


def _constructor_attributes(
    table: ObjectTable, program: ModuleProgram, scopes: Scopes, call: cst.Call, frame: Frame
) -> bool:
    """`Trainer(model, opt)`: `self.optimizer = optimizer` in `__init__` holds `opt`."""
    if not isinstance(call.func, cst.Name):
        return False
    owner = program.classes.get(call.func.value)
    if owner is None:
        return False
    init = program.method(owner, "__init__")
    if init is None or init.self_name is None:
        return False
    env = {
        param: identity
        for param, value in parameters_of(init, call)
        if (identity := scopes.identity(value, frame)) is not None
    }
    changed = False
    class_self = scopes.class_self(owner)
    # Caller identities as the instance names them: `self.optimizer = optimizer`.
    attributes = {
        env[event.value.value]: f"{class_self}.{event.targets[0].attr.value}"
        for event in all_events(init.events)
        if isinstance(event, AssignEvent)
        and len(event.targets) == 1
        and isinstance(event.targets[0], cst.Attribute)
        and isinstance(event.value, cst.Name)
        and event.value.value in env
    }
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
        for info in list(table.objects.get(source, ())) if source else ():
            optimizer = attributes.get(info.optimizer) if info.optimizer is not None else None
            changed |= table.record(
                f"{class_self}.{target.attr.value}", replace(info, optimizer=optimizer)
            )
        if source is not None and source in table.classes:
            changed |= table.record_class(
                f"{class_self}.{target.attr.value}", table.classes[source]
            )
    return changed


def _call_arguments(table: ObjectTable, scopes: Scopes, call: cst.Call, frame: Frame) -> bool:
    """`train(model, SGD(...))`: the callee's parameter holds what the caller passes."""
    callee = scopes.callee(call, frame)
    if callee is None:
        return False
    function = callee[0]
    renames = call_arguments_renamed(scopes, function, call, frame)
    changed = False
    for param, value in parameters_of(function, call):
        identity = f"{function.qualname}:{param}"
        info = table.value_info(value, frame)
        if info is not None:
            translated = translate_sources(info.parameter_sources, renames)
            # A scheduler's optimizer as the callee names it (unknown when not passed).
            optimizer = renames.get(info.optimizer) if info.optimizer is not None else None
            info = replace(
                info, parameter_sources=info.parameter_sources | translated, optimizer=optimizer
            )
            changed |= table.record(identity, info)
        passed = scopes.identity(value, frame)
        if passed is not None and passed in table.classes:
            changed |= table.record_class(identity, table.classes[passed])
    return changed


# -- 3. roles in torch's APIs ---------------------------------------------------------------
_ROLE_EVIDENCE = {
    "scaled": "passed to `scaler.step()`/`scaler.unscale_()`",
    "scheduled": "a learning-rate scheduler is built over it",
    "groups": "has `.param_groups`",
    "protocol": "has both `.step()` and `.zero_grad()` called",
}


@dataclass(slots=True)
class _Uses:
    """What each identity is seen doing, read once from the module's calls."""

    stepped: set[str] = field(default_factory=set)
    cleared: set[str] = field(default_factory=set)
    last_lr: set[str] = field(default_factory=set)
    found: dict[str, str] = field(default_factory=dict)
    scheduler_calls: list[tuple[cst.Call, Frame]] = field(default_factory=list)
    """Calls spelled like a scheduler's construction, judged again each round."""


def _uses(table: ObjectTable, program: ModuleProgram, scopes: Scopes) -> _Uses:
    uses = _Uses()
    for function in program.functions:
        frame = Frame(function, {})
        for event in all_events(function.events):
            if not isinstance(event, CallEvent):
                continue
            call = event.node
            func = call.func
            for node in (func, *(arg.value for arg in call.args)):
                if isinstance(node, cst.Attribute) and node.attr.value == "param_groups":
                    owner = scopes.identity(node.value, frame)
                    if owner is not None:
                        uses.found.setdefault(owner, "groups")
            if call.args and _may_build_scheduler(table, func):
                uses.scheduler_calls.append((call, frame))
            if not isinstance(func, cst.Attribute):
                continue
            method = func.attr.value
            receiver = scopes.identity(func.value, frame)
            if receiver is None:
                continue
            if method == "step" and len(positional_args(call)) <= 1:
                uses.stepped.add(receiver)
            elif method == "zero_grad":
                uses.cleared.add(receiver)
            elif method in ("get_last_lr", "get_lr"):
                uses.last_lr.add(receiver)
            elif method == "add_param_group":
                uses.found.setdefault(receiver, "groups")
            if method in ("step", "unscale_") and "scaler" in receiver.lower():
                first = argument(call, 0, "optimizer")
                passed = scopes.identity(first, frame) if first is not None else None
                if passed is not None:
                    uses.found.setdefault(passed, "scaled")
    for identity in uses.stepped & uses.cleared:
        uses.found.setdefault(identity, "protocol")
    return uses


def _roles(table: ObjectTable, uses: _Uses) -> bool:
    """Optimizers and schedulers recognised by what is done with them."""
    found = dict(uses.found)
    for call, frame in uses.scheduler_calls:
        info = table.value_info(call, frame)
        if info is not None and info.kind is ObjectKind.SCHEDULER and info.optimizer:
            found.setdefault(info.optimizer, "scheduled")
    changed = False
    for identity, reason in found.items():
        if not table.kinds(identity):
            evidence = _ROLE_EVIDENCE[reason]
            basis = Basis.PROTOCOL if reason == "protocol" else Basis.ROLE
            info = ObjectInfo(
                ObjectKind.OPTIMIZER, "<used as optimizer>", None, evidence=evidence, basis=basis
            )
            changed |= table.record(identity, info)
    for identity in (uses.stepped & uses.last_lr) - uses.cleared:
        if not table.kinds(identity):
            changed |= table.record(
                identity,
                ObjectInfo(
                    ObjectKind.SCHEDULER, "<used as scheduler>", None,
                    evidence="has both `.step()` and `.get_last_lr()` called",
                    basis=Basis.PROTOCOL,
                ),
            )  # fmt: skip
    return changed


def _may_build_scheduler(table: ObjectTable, func: cst.BaseExpression) -> bool:
    """A cheap test before the full `constructed` look-up: spelled like a scheduler."""
    qualified = table.imports.qualify(func)
    if qualified is not None and constructed_kind(qualified) is ObjectKind.SCHEDULER:
        return True
    written = dotted_name(func)
    return written is not None and named_class_kind(written.rsplit(".", 1)[-1]) is (
        ObjectKind.SCHEDULER
    )


# -- 4. names, with structure -----------------------------------------------------------------
def _names(table: ObjectTable, program: ModuleProgram, scopes: Scopes) -> None:
    """Receivers named like optimizers or schedulers, stepped the way those are."""
    vetoed: set[str] = set()
    candidates: dict[str, ObjectKind] = {}
    for function in program.functions:
        frame = Frame(function, {})
        backward_seen = False
        for event in all_events(function.events):
            if not isinstance(event, CallEvent) or not isinstance(event.node.func, cst.Attribute):
                continue
            func = event.node.func
            if func.attr.value in ("backward", "manual_backward"):
                backward_seen = True
                continue
            if func.attr.value != "step":
                continue
            receiver = scopes.identity(func.value, frame)
            if receiver is None:
                continue
            args = positional_args(event.node)
            if len(args) >= 2:
                vetoed.add(receiver)
                continue
            name = receiver.rsplit(".", 1)[-1].rsplit(":", 1)[-1]
            if OPTIMIZER_NAME.match(name) and not event.node.args and backward_seen:
                candidates.setdefault(receiver, ObjectKind.OPTIMIZER)
            elif SCHEDULER_NAME.match(name) and lr_scheduler_name_ok(receiver):
                candidates.setdefault(receiver, ObjectKind.SCHEDULER)
    for identity, kind in candidates.items():
        if identity in vetoed or table.kinds(identity):
            continue
        evidence = (
            "named like an optimizer and stepped after a backward pass"
            if kind is ObjectKind.OPTIMIZER
            else "named like a learning-rate scheduler and stepped without arguments"
        )
        info = ObjectInfo(kind, f"<named {kind.value}>", None, evidence=evidence, basis=Basis.NAME)
        table.record(identity, info)
