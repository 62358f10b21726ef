"""Event handlers of training engines: what pytorch-ignite runs around each update.

An ignite `Engine` calls its update function once per iteration and fires events around it:
`ITERATION_STARTED` before the update, `ITERATION_COMPLETED` after it, `EPOCH_STARTED`
before an epoch's first update. Handlers are attached with a decorator
(`@trainer.on(Events.ITERATION_STARTED)`), a call (`trainer.add_event_handler(
Events.EPOCH_COMPLETED, lambda _: scheduler.step())`) or `trainer.on(event)(handler)`. Where
a handler runs relative to the update decides, for instance, whether a scheduler steps
before or after the optimizer; this module finds the handlers and the engines that train.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from looplint.analysis.program import (
    AssignEvent,
    CallEvent,
    FunctionInfo,
    ModuleProgram,
    all_events,
)
from looplint.analysis.scopes import Frame, Scopes
from looplint.analysis.syntax import argument, dotted_name

ENGINE_CLASSES = frozenset({"ignite.engine.Engine", "ignite.engine.engine.Engine"})
"""An engine built over an update function of the codebase: `Engine(train_step)`."""
TRAINER_FACTORIES = frozenset(
    {
        "ignite.engine.create_supervised_trainer",
        "ignite.engine.supervised_training_step",
        "ignite.engine.supervised_training_step_amp",
    }
)
"""Engines (or update functions) built by ignite itself, stepping the `optimizer` handed in."""
BEFORE_UPDATE = frozenset({"ITERATION_STARTED", "EPOCH_STARTED"})
"""Events fired, every time, before an update of the same iteration or epoch."""


@dataclass(frozen=True, slots=True)
class Handler:
    """A handler attached to an engine's event."""

    engine: str
    """Identity of the engine (`main:trainer`)."""
    event: str
    """The event's name (`ITERATION_STARTED`)."""
    once: bool
    """Filtered to fire once (`Events.EPOCH_STARTED(once=1)`): a one-off, not a cadence."""
    node: cst.CSTNode
    """The decorator or the `add_event_handler` call, where a finding belongs."""
    function: FunctionInfo | None
    """The handler, when it is a function of this module."""
    body: cst.BaseExpression | None
    """The handler's expression, when it is a lambda's (`lambda _: scheduler.step()`)."""
    frame: Frame
    """Where names in `body` resolve."""


@dataclass(frozen=True, slots=True)
class TrainingEngine:
    """An engine whose update steps an optimizer."""

    identity: str
    update: FunctionInfo | None
    """The update function of this module (`Engine(update)`), else None."""
    optimizer: str | None
    """The optimizer handed to ignite's own trainer factory, when that built it."""


def _event_of(expression: cst.BaseExpression) -> tuple[str, bool] | None:
    """`("ITERATION_STARTED", False)` for `Events.ITERATION_STARTED` or
    `ignite.engine.Events.ITERATION_STARTED(every=10)`; `once` for `(once=...)`."""
    once = False
    if isinstance(expression, cst.Call):
        once = any(
            arg.keyword is not None and arg.keyword.value == "once" for arg in expression.args
        )
        expression = expression.func
    name = dotted_name(expression)
    if name is None or "." not in name:
        return None
    holder, _, event = name.rpartition(".")
    if holder.rsplit(".", 1)[-1] != "Events":
        return None
    return event, once


def _attachment(
    call: cst.Call, frame: Frame, scopes: Scopes
) -> tuple[str, str, bool, cst.BaseExpression | None] | None:
    """(engine, event, once, handler expression) of `engine.on(event)` (no handler: it is
    decorated or called next) or `engine.add_event_handler(event, handler)`."""
    func = call.func
    if not isinstance(func, cst.Attribute) or func.attr.value not in ("on", "add_event_handler"):
        return None
    first = argument(call, 0, "event_name")
    found = _event_of(first) if first is not None else None
    engine = scopes.identity(func.value, frame)
    if found is None or engine is None:
        return None
    handler = argument(call, 1, "handler") if func.attr.value == "add_event_handler" else None
    return engine, found[0], found[1], handler


def handlers(program: ModuleProgram, scopes: Scopes) -> Iterator[Handler]:
    """Every handler the module attaches to an engine's event."""
    for function in program.functions:
        node = function.node
        if isinstance(node, cst.FunctionDef):
            outer = Frame(function.parent or program.body, {})
            for decorator in node.decorators:
                if isinstance(decorator.decorator, cst.Call):
                    found = _attachment(decorator.decorator, outer, scopes)
                    if found is not None:
                        engine, event, once, _ = found
                        yield Handler(engine, event, once, decorator, function, None, outer)
        frame = Frame(function, {})
        for item in all_events(function.events):
            if not isinstance(item, CallEvent):
                continue
            call = item.node
            attached = call.func if isinstance(call.func, cst.Call) else call
            found = _attachment(attached, frame, scopes)
            if found is None:
                continue
            engine, event, once, handler = found
            if attached is not call:  # `trainer.on(event)(handler)`
                handler = argument(call, 0, "handler")
            if handler is None:
                continue
            if isinstance(handler, cst.Lambda):
                yield Handler(engine, event, once, call, None, handler.body, frame)
            elif isinstance(handler, cst.Name):
                target = program.function_named(handler.value, function)
                if target is not None:
                    yield Handler(engine, event, once, call, target, None, frame)


def training_engines(program: ModuleProgram, scopes: Scopes) -> Iterator[TrainingEngine]:
    """Engines the module builds: `Engine(update)` over a function of the module, or
    ignite's `create_supervised_trainer(model, optimizer, loss)`."""
    for function in program.functions:
        frame = Frame(function, {})
        for item in all_events(function.events):
            if not isinstance(item, AssignEvent) or len(item.targets) != 1:
                continue
            value = item.value
            if not isinstance(value, cst.Call):
                continue
            qualified = program.imports.qualify(value.func)
            identity = scopes.identity(item.targets[0], frame)
            if identity is None or qualified is None:
                continue
            if qualified in ENGINE_CLASSES:
                update = argument(value, 0, "process_function")
                target = (
                    program.function_named(update.value, function)
                    if isinstance(update, cst.Name)
                    else None
                )
                if target is not None:
                    yield TrainingEngine(identity, target, None)
            elif qualified in TRAINER_FACTORIES:
                optimizer = argument(value, 1, "optimizer")
                stepped = scopes.identity(optimizer, frame) if optimizer is not None else None
                yield TrainingEngine(identity, None, stepped)
