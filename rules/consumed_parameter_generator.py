"""LL009: a `model.parameters()` generator kept in a variable and consumed twice."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import libcst as cst

from looplint.analysis.facts import Frame, ModuleFacts
from looplint.analysis.program import (
    AssignEvent,
    BranchEvent,
    CallEvent,
    Event,
    FunctionInfo,
    LoopEvent,
    WithEvent,
)
from looplint.analysis.syntax import source_of
from looplint.identity import CONSUMED_PARAMETER_GENERATOR
from looplint.rule import Fix, Rule, Violation

_GENERATORS = frozenset({"parameters", "named_parameters", "buffers", "named_buffers"})
_CONSUMING_BUILTINS = frozenset(
    {"list", "tuple", "set", "sorted", "sum", "any", "all", "max", "min", "dict", "enumerate"}
)
_CONSUMING_QUALIFIED = frozenset(
    {
        "torch.nn.utils.clip_grad_norm_",
        "torch.nn.utils.clip_grad_value_",
        "torch.nn.utils.parameters_to_vector",
        "torch.nn.utils.vector_to_parameters",
        "itertools.chain",
    }
)
_COMPREHENSIONS = (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp)


@dataclass(frozen=True, slots=True)
class _Use:
    node: cst.CSTNode
    consumer: str
    arms: tuple[tuple[int, int], ...]
    loops: tuple[int, ...]


def _generator_call(value: cst.BaseExpression | None) -> bool:
    return (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in _GENERATORS
    )


def _iterates(expression: cst.BaseExpression, name: str) -> bool:
    """`[p for p in name]` / `(p.numel() for p in name)`: a comprehension over `name`."""
    if not isinstance(expression, _COMPREHENSIONS):
        return False
    clause: cst.CompFor | None = expression.for_in
    while clause is not None:
        if isinstance(clause.iter, cst.Name) and clause.iter.value == name:
            return True
        clause = clause.inner_for_in
    return False


def _exclusive(a: _Use, b: _Use) -> bool:
    """Whether two uses sit in different arms of one branch, so at most one runs."""
    arms_a = dict(a.arms)
    return any(branch in arms_a and arms_a[branch] != arm for branch, arm in b.arms)


class ConsumedParameterGenerator(Rule):
    """
    ## What it does
    Reports the second consumption of a generator returned by
    `model.parameters()` (or `named_parameters()`, `buffers()`) that was stored
    in a variable: passing it to an optimizer and later to `clip_grad_norm_`,
    to two optimizers, iterating it twice — or consuming it once inside a loop
    that runs many times while the generator was created before the loop.

    Only uses that really iterate count: optimizer constructors,
    `clip_grad_norm_`/`clip_grad_value_`, `list`/`tuple`/`sum`/…, `for` loops and
    comprehensions. Uses in different arms of an `if`/`else` are not counted
    together. `params = list(model.parameters())` is the fix and is never
    reported.

    ## Why is this bad?
    A generator can be iterated once. The second consumer gets an empty
    sequence and does nothing, without error: gradient clipping silently stops
    clipping, a second optimizer gets no parameters (PyTorch raises only for an
    empty list given directly), a parameter count reads zero.

    ## References
    - [`nn.Module.parameters`](https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.parameters)
    """

    identity = CONSUMED_PARAMETER_GENERATOR
    fix_safety = """
        Safe. The fix stores `list(model.parameters())` instead of the generator: the
        same parameters, materialised once, so every consumer sees all of them.
        """
    FIXES = (
        (
            """
            import torch

            params = model.parameters()
            optimizer = torch.optim.SGD(params, lr=0.1)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            """,
            """
            import torch

            params = list(model.parameters())
            optimizer = torch.optim.SGD(params, lr=0.1)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            """,
        ),
    )
    INVALID = (
        """
        import torch

        params = model.parameters()
        optimizer = torch.optim.SGD(params, lr=0.1)
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)  # expect: LL009
            optimizer.step()
        """,
    )
    VALID = (
        """
        import torch

        params = list(model.parameters())
        optimizer = torch.optim.SGD(params, lr=0.1)
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        for function in facts.program.functions:
            yield from self._check_function(function, facts)

    def _check_function(self, function: FunctionInfo, facts: ModuleFacts) -> Iterator[Violation]:
        tracked: dict[str, tuple[cst.BaseExpression, tuple[int, ...], list[_Use]]] = {}
        reported: set[str] = set()

        def consumer_of(call: cst.Call, name: str) -> str | None:
            passes = any(
                isinstance(arg.value, cst.Name) and arg.value.value == name for arg in call.args
            )
            comprehended = any(_iterates(arg.value, name) for arg in call.args)
            if comprehended:
                return f"`{source_of(call.func)}(... for ... in {name})`"
            if not passes:
                return None
            func = call.func
            qualified = facts.imports.qualify(func) or ""
            if (
                qualified in _CONSUMING_QUALIFIED
                or (isinstance(func, cst.Name) and func.value in _CONSUMING_BUILTINS)
                or (
                    isinstance(func, cst.Attribute)
                    and func.attr.value in ("clip_grad_norm_", "clip_grad_value_")
                )
                or facts.constructed(call, Frame(function, {})) is not None
            ):
                return f"`{source_of(func)}(...)`"
            return None

        def use(
            name: str,
            node: cst.CSTNode,
            consumer: str,
            arms: tuple[tuple[int, int], ...],
            loops: tuple[int, ...],
        ) -> Iterator[Violation]:
            value, created_in, uses = tracked[name]
            new = _Use(node, consumer, arms, loops)
            repeated = len(loops) > len(created_in)
            earlier = next((u for u in uses if not _exclusive(u, new)), None)
            uses.append(new)
            if name in reported or (earlier is None and not repeated):
                return
            reported.add(name)
            if earlier is not None:
                why = f"{earlier.consumer} already consumed it"
            else:
                why = "it is consumed on every pass of a loop it was created outside of"
            wrapped = cst.Call(func=cst.Name("list"), args=[cst.Arg(value=value)])
            yield Violation(
                node,
                f"`{name}` is the generator `{source_of(value)}` and {why}, so {consumer} gets "
                f"nothing; store `list({source_of(value)})` instead",
                fix=lambda: Fix(((value, wrapped),)),
            )

        def walk(
            events: tuple[Event, ...], arms: tuple[tuple[int, int], ...], loops: tuple[int, ...]
        ) -> Iterator[Violation]:
            for event in events:
                if isinstance(event, CallEvent):
                    for name in list(tracked):
                        consumer = consumer_of(event.node, name)
                        if consumer is not None:
                            yield from use(name, event.node, consumer, arms, loops)
                elif isinstance(event, AssignEvent):
                    value = event.value
                    for name in list(tracked):
                        if value is not None and _iterates(value, name):
                            yield from use(name, value, "a comprehension", arms, loops)
                    for target in event.targets:
                        if isinstance(target, cst.Name):
                            tracked.pop(target.value, None)
                            reported.discard(target.value)
                            if (
                                len(event.targets) == 1
                                and _generator_call(value)
                                and not event.augmented
                                and isinstance(value, cst.Call)
                                and facts.hands_out_generator(value, Frame(function, {}))
                            ):
                                assert value is not None
                                tracked[target.value] = (value, loops, [])
                elif isinstance(event, LoopEvent):
                    node = event.node
                    if (
                        isinstance(node, cst.For)
                        and isinstance(node.iter, cst.Name)
                        and node.iter.value in tracked
                    ):
                        yield from use(node.iter.value, node, "a `for` loop", arms, loops)
                    yield from walk(event.body, arms, (*loops, id(node)))
                elif isinstance(event, WithEvent):
                    yield from walk(event.body, arms, loops)
                elif isinstance(event, BranchEvent):
                    for index, arm in enumerate(event.arms):
                        yield from walk(arm, (*arms, (id(event.node), index)), loops)

        yield from walk(function.events, (), ())
