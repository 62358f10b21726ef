"""The vocabulary of resolved training-loop operations, and where each one runs.

`looplint.analysis.facts` turns a function's events into these values (an optimizer step, a
gradient clear, a backward pass, …) with every object named by its identity;
`Site` places each one in its loops, branches and `with` blocks, in execution
order. Rules read nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar

import libcst as cst

from looplint.analysis.catalog import ObjectKind
from looplint.analysis.syntax import descendants, dotted_name, is_none_check


@dataclass(frozen=True, slots=True)
class Backward:
    """A backward pass: gradients accumulate into `.grad`.

    `tensor` is what is differentiated (`loss` in `loss.backward()`,
    `accelerator.backward(loss)` or `scaler.scale(loss).backward()`); `scaled`
    says it went through `scaler.scale(...)` first.
    """

    node: cst.Call
    tensor: str | None = None
    scaled: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """An optimizer step (`opt.step()` or `scaler.step(opt)`)."""

    node: cst.Call
    optimizer: str
    closure: tuple[Item, ...] = ()
    via_scaler: bool = False


@dataclass(frozen=True, slots=True)
class Clear:
    """Gradients cleared: of one optimizer, or (`optimizer=None`) of a model or parameters.

    `module` names the model whose `zero_grad()` was called, when that is known.
    """

    node: cst.CSTNode
    optimizer: str | None
    module: str | None = None


@dataclass(frozen=True, slots=True)
class ModeSwitch:
    """`model.train()` / `model.eval()`: dropout and batch-norm behaviour changes."""

    node: cst.Call
    module: str
    training: bool


@dataclass(frozen=True, slots=True)
class SchedulerStep:
    """`scheduler.step(...)`: never an optimizer step."""

    node: cst.Call
    scheduler: str
    has_metric: bool


@dataclass(frozen=True, slots=True)
class Construct:
    """An optimizer, scheduler or scaler being built."""

    node: cst.Call
    kind: ObjectKind
    qualified: str
    parameter_sources: frozenset[str]
    optimizer: str | None


@dataclass(frozen=True, slots=True)
class Assign:
    """An identity bound to a new value; `fresh` unless derived from itself or parameters."""

    node: cst.CSTNode
    target: str
    fresh: bool
    sources: frozenset[str]
    augmented: bool = False
    detached: bool = False
    """The value goes through `.item()`, `.detach()`, `float()`, … (it keeps no graph)."""


@dataclass(frozen=True, slots=True)
class Append:
    """`container.append(value)`: the value outlives the iteration."""

    node: cst.Call
    container: str
    sources: frozenset[str]
    detached: bool


@dataclass(frozen=True, slots=True)
class ScalerCall:
    """`scaler.scale(...)`, `scaler.unscale_(opt)` or `scaler.update()`."""

    node: cst.Call
    scaler: str
    method: str
    optimizer: str | None


@dataclass(frozen=True, slots=True)
class Clip:
    """`torch.nn.utils.clip_grad_norm_/clip_grad_value_`: reads and rescales `.grad`."""

    node: cst.Call


@dataclass(frozen=True, slots=True)
class Forward:
    """`model(x)`: a module that is switched between train and eval mode somewhere in
    the module, run forward (its autograd graph is built unless gradients are off)."""

    node: cst.Call
    module: str


@dataclass(frozen=True, slots=True)
class Save:
    """`torch.save(payload, ...)`: `states` are the objects whose `state_dict()` it holds."""

    node: cst.Call
    states: frozenset[str]
    keys: frozenset[str]
    literal: bool
    """Whether the payload is written out here (a dict or `x.state_dict()`), not a name."""
    payload: str | None = None
    """The identity of a payload given by name (`torch.save(state, path)`)."""


@dataclass(frozen=True, slots=True)
class LoadState:
    """`target.load_state_dict(...)`."""

    node: cst.Call
    target: str


@dataclass(frozen=True, slots=True)
class Reinit:
    """A model's weights re-initialised in place (`reset_parameters()`, `apply(init)`,
    `nn.init.normal_(p)`, `p.data.normal_()`): as good as a new model."""

    node: cst.Call
    module: str


@dataclass(frozen=True, slots=True)
class Escape:
    """An optimizer handed to code looplint cannot see; it may be stepped or cleared there."""

    node: cst.Call
    optimizer: str
    first: str | None = None
    """The identity of the call's first positional argument, when it is not the optimizer:
    the loss that timm-style scalers (`loss_scaler(loss, optimizer, update_grad=...)`)
    backpropagate before they step."""


@dataclass(frozen=True, slots=True)
class Loop:
    """A loop with its resolved body; `targets` are rebound every iteration.

    `node` is the `for`/`while` statement, or the method itself for a per-batch method
    (`training_step`) that a framework or a base class calls once per batch.
    """

    node: cst.For | cst.While | cst.FunctionDef
    targets: frozenset[str]
    body: tuple[Item, ...]
    iterates: str | None = None
    """The identity a `for` loop iterates (`loader` in `for x, y in enumerate(loader):`)."""

    @property
    def runs_once(self) -> bool:
        """`for x, y in loader: ...; break`: the body ends with an unconditional `break`,
        so it runs at most once (a peek at one batch, not a loop)."""
        node = self.node
        if isinstance(node, cst.FunctionDef) or not isinstance(node.body, cst.IndentedBlock):
            return False
        last = node.body.body[-1] if node.body.body else None
        return isinstance(last, cst.SimpleStatementLine) and any(
            isinstance(small, cst.Break) for small in last.body
        )


@dataclass(frozen=True, slots=True)
class Branch:
    """A conditional: each arm may or may not run."""

    node: cst.CSTNode
    test: cst.BaseExpression | None
    arms: tuple[tuple[Item, ...], ...]


@dataclass(frozen=True, slots=True)
class Context:
    """A `with` block and what it enters; or a function's grad-mode decorators
    (`@torch.no_grad()`), which hold around its whole body."""

    node: cst.With | cst.FunctionDef
    contexts: tuple[str, ...]
    body: tuple[Item, ...]


Operation = (
    Backward
    | Step
    | Clear
    | SchedulerStep
    | Construct
    | Assign
    | Escape
    | ModeSwitch
    | Append
    | ScalerCall
    | Clip
    | Forward
    | Save
    | LoadState
    | Reinit
)
Item = Operation | Loop | Branch | Context
OperationT = TypeVar("OperationT", bound=Operation)


@dataclass(frozen=True, slots=True)
class Site:
    """An operation in its place: the loops and branches around it, in execution order."""

    op: Operation
    order: int
    loops: tuple[Loop, ...]
    guards: tuple[Branch, ...]
    in_closure: bool
    contexts: tuple[str, ...] = ()
    """Qualified names of the `with` contexts around it (`torch.no_grad`, …)."""
    arms: tuple[tuple[int, int], ...] = ()
    """(id of branch, index of arm) for each branch around it."""
    conditions: tuple[tuple[str, bool], ...] = ()
    """(condition, whether it holds here) for each simple `if` around it."""

    def exclusive_with(self, other: Site) -> bool:
        """Whether at most one of the two runs: they sit in different arms of one branch,
        or under opposite outcomes of the same simple condition (`if self.args.fp16:`
        written twice, once for the backward pass and once for the step)."""
        mine = dict(self.arms)
        if any(branch in mine and mine[branch] != arm for branch, arm in other.arms):
            return True
        held = dict(self.conditions)
        return any(
            condition in held and held[condition] != holds for condition, holds in other.conditions
        )

    @property
    def loop(self) -> Loop | None:
        """The innermost enclosing loop."""
        return self.loops[-1] if self.loops else None

    def guards_within(self, loop: Loop) -> tuple[Branch, ...]:
        """The branches between `loop` and this operation."""
        inside = _branches_inside(loop)
        return tuple(guard for guard in self.guards if id(guard) in inside)


def _branches_inside(loop: Loop) -> set[int]:
    found: set[int] = set()
    pending: list[Item] = list(loop.body)
    while pending:
        item = pending.pop()
        if isinstance(item, Branch):
            found.add(id(item))
            for arm in item.arms:
                pending.extend(arm)
        elif isinstance(item, (Loop, Context)):
            pending.extend(item.body)
        elif isinstance(item, Step):
            pending.extend(item.closure)
    return found


@dataclass(frozen=True, slots=True)
class _Place:
    loops: tuple[Loop, ...] = ()
    guards: tuple[Branch, ...] = ()
    in_closure: bool = False
    contexts: tuple[str, ...] = ()
    arms: tuple[tuple[int, int], ...] = ()
    conditions: tuple[tuple[str, bool], ...] = ()


def condition_of(test: cst.BaseExpression | None) -> tuple[str, bool] | None:
    """A simple `if` test as (condition, polarity): `use_amp` → ("use_amp", True),
    `not use_amp` → ("use_amp", False), `scaler is None` → ("scaler", False)."""
    holds = True
    while isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        test = test.expression
        holds = not holds
    if test is None:
        return None
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1 and is_none_check(test):
        if isinstance(test.comparisons[0].operator, cst.Is):
            holds = not holds
        test = test.left
    name = dotted_name(test)
    if name is None and not any(isinstance(node, cst.Call) for node in descendants(test)):
        name = cst.Module([]).code_for_node(test)  # `args["fp16"]`: no call, same value
    return (name, holds) if name is not None else None


def conditions_holding(
    test: cst.BaseExpression | None, outcome: bool
) -> tuple[tuple[str, bool], ...]:
    """The simple conditions known to hold (and how) when `test` comes out as `outcome`:
    `not train and args.valid` true gives `train` false and `args.valid` true; `a or b`
    false gives both false; anything else, its own `condition_of`."""
    if isinstance(test, cst.BooleanOperation):
        if isinstance(test.operator, cst.And) == outcome:
            return (
                *conditions_holding(test.left, outcome),
                *conditions_holding(test.right, outcome),
            )
        return ()
    condition = condition_of(test)
    if condition is None:
        return ()
    return ((condition[0], condition[1] if outcome else not condition[1]),)


def _flatten(items: tuple[Item, ...], place: _Place, out: list[Site]) -> None:
    for item in items:
        if isinstance(item, Loop):
            _flatten(item.body, replace(place, loops=(*place.loops, item)), out)
        elif isinstance(item, Branch):
            for index, arm in enumerate(item.arms):
                conditions = place.conditions
                if len(item.arms) <= 2:
                    conditions = (*conditions, *conditions_holding(item.test, index == 0))
                inner = replace(
                    place,
                    guards=(*place.guards, item),
                    arms=(*place.arms, (id(item.node), index)),
                    conditions=conditions,
                )
                _flatten(arm, inner, out)
        elif isinstance(item, Context):
            _flatten(item.body, replace(place, contexts=(*place.contexts, *item.contexts)), out)
        else:
            if isinstance(item, Step) and item.closure:
                _flatten(item.closure, replace(place, in_closure=True), out)
            out.append(
                Site(
                    item,
                    len(out),
                    place.loops,
                    place.guards,
                    place.in_closure,
                    place.contexts,
                    place.arms,
                    place.conditions,
                )
            )


@dataclass(slots=True)
class LoopView:
    """The operations one loop runs per iteration (inner loops and inlined calls included)."""

    loop: Loop
    sites: list[Site] = field(default_factory=list)

    def ops(self, kind: type[Operation]) -> Iterator[Site]:
        """Sites of one operation type."""
        return (site for site in self.sites if isinstance(site.op, kind))

    def following(self, site: Site) -> Iterator[Site]:
        """What runs after `site`: the rest of this iteration, then the next iteration
        from its start up to `site` (closure bodies left out: the step runs them)."""
        later = [s for s in self.sites if s.order > site.order]
        earlier = [s for s in self.sites if s.order < site.order]
        return (s for s in (*later, *earlier) if not s.in_closure)


def loop_views(sites: list[Site]) -> dict[int, LoopView]:
    """Group sites by every loop that encloses them (keyed by `id(loop)`)."""
    views: dict[int, LoopView] = {}
    for site in sites:
        for loop in site.loops:
            view = views.get(id(loop))
            if view is None:
                view = views[id(loop)] = LoopView(loop)
            view.sites.append(site)
    return views


def display_name(identity: str) -> str:
    """How an identity reads in a message: `train:opt` → `opt`, `T.self.opt` → `self.opt`."""
    if ":" in identity:
        return identity.split(":", 1)[1]
    if ".self" in identity:
        return "self" + identity.split(".self", 1)[1]
    return identity
