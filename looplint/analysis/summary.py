"""Module-wide textual facts: what is run as a model, frozen, or instantiated where;
how autograd is switched; what losses are divided by."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import libcst as cst

from looplint.analysis.naming import reads_by_name
from looplint.analysis.program import (
    AssignEvent,
    CallEvent,
    FunctionInfo,
    ModuleProgram,
    WithEvent,
    all_events,
)
from looplint.analysis.syntax import argument, descendants, dotted_name


@dataclass(frozen=True, slots=True)
class ModuleSummary:
    """Module-wide textual facts: what is called as a model, frozen, or instantiated."""

    called_chains: frozenset[str]
    freezes_parameters: bool
    has_backward: bool
    instances: Mapping[str, tuple[str, ...]]
    """Dotted target text (`model`, `self.net`) → same-module classes assigned to it."""
    handed_together: tuple[frozenset[str], ...] = ()
    """The dotted arguments of each call given two or more (`Trainer(model=model,
    optimizer=optimizer)`): what is handed along together."""
    switches_grad_outside_with: bool = False
    """`torch.set_grad_enabled(...)` called as a statement: autograd may be off for
    everything after it, where no `with` shows it."""
    takes_input_gradients: bool = False
    """`torch.autograd.grad(...)`, `x.requires_grad_()` or `x.requires_grad = True`:
    something other than parameters needs gradients (saliency, adversarial inputs)."""
    turns_requires_grad_off: bool = False
    """`requires_grad_(False)` or `.requires_grad = False` written out: a module may run
    without building any graph (unlike `freezes_parameters`, not guessed from names such
    as `print_trainable_parameters`)."""


_FREEZING_WORDS = ("freeze", "trainable")
_MOVES = frozenset({"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train"})


def unmoved(value: cst.BaseExpression) -> cst.BaseExpression:
    """`Net(...)` in `Net(...).to(device).train()`: moving a new model to a device or a mode
    returns the same instance."""
    while (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in _MOVES
    ):
        value = value.func.value
    return value


def _class_built(value: cst.BaseExpression, program: ModuleProgram) -> str | None:
    """The same-module class `value` builds an instance of (`Net(...).to(device)`)."""
    value = unmoved(value)
    if (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Name)
        and value.func.value in program.classes
    ):
        return value.func.value
    return None


def instances_bound(
    event: AssignEvent, function: FunctionInfo, program: ModuleProgram
) -> Iterator[tuple[str, str]]:
    """(target text, class) for each same-module instance an assignment binds: `model =
    Net()`, or `benchmark, model = prepare()` where the same-module `prepare` returns a
    tuple holding `Net(...)` at that position."""
    assert event.value is not None
    owner = _class_built(event.value, program)
    if owner is not None:  # `model = Net()`, `a = b = Net()`
        for target in event.targets:
            text = dotted_name(target)
            if text is not None:
                yield text, owner
        return
    value = event.value
    if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Name)):
        return
    helper = program.function_named(value.func.value, function)
    if helper is None:
        return
    for returned in helper.returns:
        if not isinstance(returned, cst.Tuple) or len(returned.elements) != len(event.targets):
            continue
        for target, element in zip(event.targets, returned.elements, strict=True):
            text = dotted_name(target)
            owner = _class_built(element.value, program)
            if text is not None and owner is not None:
                yield text, owner


def summarise(program: ModuleProgram) -> ModuleSummary:
    """Compute the `ModuleSummary` of a compiled module (one pass over its events)."""
    called: set[str] = set()
    freezes = False
    has_backward = False
    instances: dict[str, list[str]] = {}
    together: list[frozenset[str]] = []
    switches_outside_with = False
    input_gradients = False
    requires_grad_off = False
    with_items: set[int] = set()
    for function in program.functions:
        for event in all_events(function.events):
            if isinstance(event, WithEvent):
                with_items.update(id(context) for context in event.contexts)
            elif isinstance(event, CallEvent):
                call = event.node
                func = call.func
                last = (
                    func.attr.value
                    if isinstance(func, cst.Attribute)
                    else getattr(func, "value", "")
                )
                if last in ("backward", "manual_backward"):
                    has_backward = True
                if last == "requires_grad_":
                    # `model.eval().requires_grad_(False)` too: no dotted chain needed.
                    first = argument(call, 0, "requires_grad")
                    off = isinstance(first, cst.Name) and first.value == "False"
                    freezes |= off
                    requires_grad_off |= off
                    input_gradients |= first is None or _is_true(first)
                chain = dotted_name(func)
                if chain is None:
                    continue
                if last == "set_grad_enabled" and id(call) not in with_items:
                    switches_outside_with = True
                if (program.imports.qualify(func) or chain).endswith("autograd.grad"):
                    input_gradients = True
                if last != "requires_grad_" and any(
                    word in last.lower() for word in _FREEZING_WORDS
                ):
                    freezes = True
                called.add(chain.removesuffix(".forward"))
                handed = frozenset(
                    text for arg in call.args if (text := dotted_name(arg.value)) is not None
                )
                if len(handed) >= 2 and not reads_by_name(last):  # not `save(model, opt)`
                    together.append(handed)
            elif isinstance(event, AssignEvent) and event.value is not None:
                for target in event.targets:
                    if isinstance(target, cst.Attribute) and target.attr.value == "requires_grad":
                        off = isinstance(event.value, cst.Name) and event.value.value == "False"
                        freezes |= off
                        requires_grad_off |= off
                        input_gradients |= _is_true(event.value)
                for text, owner in instances_bound(event, function, program):
                    instances.setdefault(text, []).append(owner)
    return ModuleSummary(
        frozenset(called),
        freezes,
        has_backward,
        {key: tuple(value) for key, value in instances.items()},
        tuple(together),
        switches_outside_with,
        input_gradients,
        requires_grad_off,
    )


def mode_switched(program: ModuleProgram) -> frozenset[str]:
    """What the module switches between train and eval mode, as written (`model`,
    `self.net`; `model.to(device).eval()` counts for `model`): calling one of these runs
    a model forward."""
    found: set[str] = set()
    for function in program.functions:
        for event in all_events(function.events):
            if not (
                isinstance(event, CallEvent)
                and isinstance(event.node.func, cst.Attribute)
                and event.node.func.attr.value in ("train", "eval")
            ):
                continue
            receiver = event.node.func.value
            while (
                isinstance(receiver, cst.Call)
                and isinstance(receiver.func, cst.Attribute)
                and receiver.func.attr.value in _MODULE_RETURNING
            ):
                receiver = receiver.func.value
            name = dotted_name(receiver)
            if name is not None:
                found.add(name)
    return frozenset(found)


_MODULE_RETURNING = frozenset({"to", "cuda", "cpu", "float", "half", "double", "train", "eval"})


def _is_true(node: cst.BaseExpression) -> bool:
    return isinstance(node, cst.Name) and node.value == "True"


def divisors(module: cst.Module) -> frozenset[str]:
    """The names a loss is divided by anywhere in the module: `accum_steps` (and `args`)
    for `loss / args.accum_steps`, `loss /= accum_steps`, `loss.div(accum_steps)` or
    `outputs.loss * (1.0 / accum_steps)`; integers by their text (`loss / 4` → `4`). Only
    divisions whose dividend (or target) mentions a loss count: `1 / accum_steps` kept
    for logging says nothing about the loss."""
    found: set[str] = set()
    for node in descendants(module):
        divisor: cst.BaseExpression | None = None
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Divide):
            if _mentions_loss(node.left):
                divisor = node.right
        elif isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Multiply):
            if _mentions_loss(node.left) or _mentions_loss(node.right):
                divisor = node.right if _mentions_loss(node.left) else node.left
        elif isinstance(node, cst.AugAssign) and isinstance(
            node.operator, (cst.DivideAssign, cst.MultiplyAssign)
        ):
            if _mentions_loss(node.target):
                divisor = node.value
        elif (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in ("div", "div_", "true_divide", "mul", "mul_")
            and node.args
            and _mentions_loss(node.func.value)
        ):
            divisor = node.args[-1].value
        if divisor is not None:
            found |= named_parts(divisor)
    return frozenset(found)


def named_parts(expression: cst.BaseExpression) -> set[str]:
    """The last name of every name chain in an expression (`accum` for `args.accum`, not
    `args`), and integers by their text: how a divisor is matched to a window."""
    found: set[str] = set()
    parts = (expression, *descendants(expression))
    heads = {id(p.value) for p in parts if isinstance(p, cst.Attribute)}
    heads |= {id(p.attr) for p in parts if isinstance(p, cst.Attribute)}  # read via its chain
    heads |= {id(p.func) for p in parts if isinstance(p, cst.Call)}  # `float(n)`: `n`
    for part in parts:
        if id(part) in heads:
            continue
        if isinstance(part, cst.Attribute):
            found.add(part.attr.value)
        elif isinstance(part, (cst.Integer, cst.Name)):
            found.add(part.value)
    return found


def _mentions_loss(node: cst.CSTNode) -> bool:
    return "loss" in cst.Module([]).code_for_node(node).lower()
