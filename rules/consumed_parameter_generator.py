"""LL009: a `model.parameters()` generator kept in a variable and consumed twice."""

from __future__ import annotations

import ast
import re
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
    all_events,
)
from looplint.analysis.syntax import children, dotted_name, source_of
from looplint.files.screening import Glance, Screen
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


_Tracked = dict[str, tuple[cst.BaseExpression, tuple[int, ...], list["_Use"]]]
"""A generator's name → (its creating expression, the loops it was created in, its uses)."""


_LAZY_WRAPPERS = frozenset({"filter", "map", "iter"})
"""Builtins that return another one-shot iterator over their (last) argument."""


_BRACKET_OR_ASSIGNMENT = re.compile(r"[()\[\]{}]|(?<![=!<>:+\-*/%&|^@])=(?!=)")
"""A bracket, or an `=` that can bind a name (not `==`, `<=`, `:=`, `+=`, ...)."""
_CALLED_NAME = re.compile(r"\s*([A-Za-z_][\w.]*)\s*\(")
_STATEMENT_ONLY = re.compile(
    r"\s*(?:(?:return|assert|del|raise|elif|while|with|async\s+with)\b"
    r"|(?:for|async\s+for|if)\b[^\n]*:\s*$)"
)
"""Lines that start a statement whatever the brackets before them seem to say: keywords
that never continue an expression, and a `for`/`if` header ending its line with `:` (a
comprehension's `for`/`if` clause cannot end in `:`)."""
_ATTRIBUTES = re.compile(r"(?:\s*\.\s*\w+)+\s*(?:#.*)?")


class _StoredGeneratorWords:
    """Stage 1: `parameters(` / `buffers(` (and the `named_` ones) where a store can take
    the generator, as `_stores_a_generator` asks. Most occurrences in model code cannot:
    `for p in self.parameters():`, `clip_grad_norm_(model.parameters(), 1.0)`,
    `n = sum(p.numel() for p in self.parameters())`, `next(m.parameters()).device`, a
    comment. A call is passed over only when its line surely starts a statement (a keyword
    no expression continues with, a `for`/`if` header, or no bracket open before the line
    and no backslash above it) in which no assignment `=` comes before the call, or in
    which the value assigned is one call, closed on the line, of a name that is neither
    `filter`/`map`/`iter` nor a generator method, perhaps followed by attributes. Anything
    else (a continuation line, a string before the call, a parenthesised value) is passed
    on to the syntax stage, which decides."""

    _CALL = re.compile(r"(?:parameters|buffers)\s*\(")

    def search(self, string: str) -> object | None:
        depth = scanned = 0  # brackets open at `scanned`, counted once through the file
        for call in self._CALL.finditer(string):
            start = call.start()
            line_start = string.rfind("\n", 0, start) + 1
            if line_start > scanned:
                count = string.count
                depth += sum(count(bracket, scanned, line_start) for bracket in "([{")
                depth -= sum(count(bracket, scanned, line_start) for bracket in ")]}")
                scanned = line_start
            head = string[line_start:start]
            if "#" in head and "'" not in head and '"' not in head:
                continue  # in a comment
            line_end = string.find("\n", start)
            line = string[line_start : len(string) if line_end < 0 else line_end]
            if _STATEMENT_ONLY.match(line) is None and (
                depth != 0
                or string[max(0, line_start - 3) : line_start].rstrip("\r\n").endswith("\\")
            ):
                return call  # maybe a continuation line (or a string made it look like one)
            if not self._cannot_be_stored(head, line[len(head) :]):
                return call
        return None

    @staticmethod
    def _cannot_be_stored(head: str, rest: str) -> bool:
        """Whether a statement starting its line with `head`, the call's line before it
        (`rest` from the call on), cannot store the call's generator."""
        if "'" in head or '"' in head:
            return False
        assignment = _first_assignment(head)
        if assignment is None:
            return True  # the statement binds nothing before the call
        return _one_plain_call(head[assignment + 1 :] + rest)


def _first_assignment(line: str) -> int | None:
    """Where the first assignment `=` of `line` is, outside any bracket (None: nowhere)."""
    depth = 0
    for found in _BRACKET_OR_ASSIGNMENT.finditer(line):
        token = found.group()
        if token in "([{":
            depth += 1
        elif token in ")]}":
            depth -= 1
        elif depth == 0:
            return found.start()
    return None


def _one_plain_call(value: str) -> bool:
    """Whether `value` (the rest of a line after `=`) is exactly one call, closed on the
    line, of a name that makes no generator (`sum(...)`, `torch.optim.SGD(...)`)."""
    called = _CALLED_NAME.match(value)
    if called is None or "'" in value or '"' in value:
        return False
    name = called.group(1)
    if name.rpartition(".")[2] in _GENERATORS or name in _LAZY_WRAPPERS:
        return False
    depth = 0
    for index in range(called.end() - 1, len(value)):
        character = value[index]
        if character in "([{":
            depth += 1
        elif character in ")]}":
            depth -= 1
            if depth == 0:
                rest = value[index + 1 :].strip()
                # nothing after it, or plain attributes (`next(m.parameters()).device`)
                return rest == "" or rest.startswith("#") or _ATTRIBUTES.fullmatch(rest) is not None
    return False


def _stores_a_generator(glance: Glance) -> bool:
    """Whether a single-target assignment stores a generator as the rule tracks one
    (`_generator_call`): `params = model.parameters()`, `self.params = filter(f,
    model.parameters())`, `(p for p in model.parameters())`. The rule starts from such a
    store, and needs no optimizer; `sum(p.numel() for p in model.parameters())` is none."""
    stores: list[ast.Assign | ast.AnnAssign] = [
        *(node for node in glance.nodes(ast.Assign) if len(node.targets) == 1),
        *glance.nodes(ast.AnnAssign),
    ]
    return any(store.value is not None and _makes_a_generator(store.value) for store in stores)


def _makes_a_generator(value: ast.expr) -> bool:
    """`_generator_call` on the standard library's tree."""
    if isinstance(value, ast.Call):
        func = value.func
        if isinstance(func, ast.Attribute):
            return func.attr in _GENERATORS
        if isinstance(func, ast.Name) and func.id in _LAZY_WRAPPERS and value.args:
            return _makes_a_generator(value.args[-1])
        return False
    if isinstance(value, ast.GeneratorExp):
        return _makes_a_generator(value.generators[0].iter)
    return False


def _generator_call(value: cst.BaseExpression | None) -> bool:
    """`model.parameters()`, and what stays a one-shot iterator over it:
    `filter(lambda p: p.requires_grad, model.parameters())`, `map(...)`,
    `(p for p in model.parameters() if ...)`."""
    if isinstance(value, cst.Call):
        func = value.func
        if isinstance(func, cst.Attribute):
            return func.attr.value in _GENERATORS
        if isinstance(func, cst.Name) and func.value in _LAZY_WRAPPERS and value.args:
            return _generator_call(value.args[-1].value)
        return False
    if isinstance(value, cst.GeneratorExp):
        return _generator_call(value.for_in.iter)
    return False


def _iterates(expression: cst.BaseExpression, name: str) -> bool:
    """`[p for p in name]` / `(p.numel() for p in name)`: a comprehension over `name`."""
    if not isinstance(expression, _COMPREHENSIONS):
        return False
    clause: cst.CompFor | None = expression.for_in
    while clause is not None:
        if dotted_name(clause.iter) == name:
            return True
        clause = clause.inner_for_in
    return False


def _comprehensions_over(value: cst.BaseExpression, name: str) -> Iterator[cst.BaseExpression]:
    """Every comprehension over `name` inside `value`, outermost first: the parameter groups
    of one literal (`[{"params": [p for n, p in params if ...]}, {"params": [...]}]`) iterate
    it once each. Lambdas are not entered (they run later, or never), nor calls (each call is
    an event of its own, whose comprehension arguments `consumer_of` counts)."""
    stack: list[cst.CSTNode] = [value]
    while stack:
        node = stack.pop(0)
        if isinstance(node, (cst.Lambda, cst.Call)):
            continue
        if isinstance(node, cst.BaseExpression) and _iterates(node, name):
            yield node
            continue
        stack.extend(children(node))


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
    The generator is followed through aliases, `filter`/`map`/generator
    expressions over it, every comprehension of one literal (parameter groups),
    and `self.` attributes set in `__init__` and used in other methods.

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
    screen = Screen(_StoredGeneratorWords(), _stores_a_generator)
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
            yield from self._check_function(function, facts, {}, set(), attributes=False)
        for owner in facts.program.classes.values():
            yield from self._check_class_attributes(owner.methods, facts)

    def _check_class_attributes(
        self, methods: dict[str, FunctionInfo], facts: ModuleFacts
    ) -> Iterator[Violation]:
        """`self.params = model.parameters()` in `__init__`, consumed there by the optimizer
        and again in the method that clips: the attribute holds the same spent generator
        in every method. Each other method starts from the state `__init__` leaves."""
        init = methods.get("__init__")
        if init is None:
            return
        tracked: _Tracked = {}
        reported: set[str] = set()
        yield from self._check_function(init, facts, tracked, reported, attributes=True)
        others = [m for name, m in methods.items() if name != "__init__"]
        reassigned = {
            dotted_name(target)
            for method in others
            for event in all_events(method.events)
            if isinstance(event, AssignEvent)
            for target in event.targets
        }
        for method in others:
            state = {
                key: (v, loops, list(uses))
                for key, (v, loops, uses) in tracked.items()
                if key not in reassigned  # another method may renew it first
            }
            if not state:
                continue
            yield from self._check_function(method, facts, state, reported, attributes=True)

    def _check_function(
        self,
        function: FunctionInfo,
        facts: ModuleFacts,
        tracked: _Tracked,
        reported: set[str],
        attributes: bool,
    ) -> Iterator[Violation]:
        """Walk one function's events in order; `attributes` tracks `self.x` generators
        (across methods, see `_check_class_attributes`), else local names."""

        def consumer_of(call: cst.Call, name: str) -> str | None:
            passes = any(dotted_name(arg.value) == name for arg in call.args)
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
                        for comprehension in _comprehensions_over(value, name) if value else ():
                            yield from use(name, comprehension, "a comprehension", arms, loops)
                    alias = dotted_name(value) if value is not None else None
                    for target in event.targets:
                        key = dotted_name(target)
                        if key is None or (
                            not key.startswith("self.") if attributes else "." in key
                        ):
                            continue
                        tracked.pop(key, None)
                        reported.discard(key)
                        if len(event.targets) != 1 or event.augmented:
                            continue
                        if (
                            value is not None
                            and _generator_call(value)
                            and (
                                not isinstance(value, cst.Call)
                                or facts.hands_out_generator(value, Frame(function, {}))
                            )
                        ):
                            tracked[key] = (value, loops, [])
                        elif alias is not None and alias in tracked:
                            tracked[key] = tracked[alias]  # one generator, two names
                elif isinstance(event, LoopEvent):
                    node = event.node
                    iterated = dotted_name(node.iter) if isinstance(node, cst.For) else None
                    if iterated is not None and iterated in tracked:
                        yield from use(iterated, node, "a `for` loop", arms, loops)
                    yield from walk(event.body, arms, (*loops, id(node)))
                elif isinstance(event, WithEvent):
                    yield from walk(event.body, arms, loops)
                elif isinstance(event, BranchEvent):
                    for index, arm in enumerate(event.arms):
                        yield from walk(arm, (*arms, (id(event.node), index)), loops)

        yield from walk(function.events, (), ())
