"""What an optimizer updates: the parameters its construction is given.

`Adam(model.parameters())` updates `model`; real code hands over parameter groups built
up in the function first (`groups.append({"params": [p for n, p in
model.named_parameters() if ...]})`) or through an alias (`self.model = model`). Rules
need this to tell whether `model.zero_grad()` clears what an optimizer steps on (LL001,
LL005, LL010) and whether an optimizer covers the whole model (LL003).
"""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from looplint.analysis.catalog import ObjectKind, takes_model_not_parameters
from looplint.analysis.program import AssignEvent, CallEvent, LoopEvent, all_events
from looplint.analysis.scopes import Frame, Scopes
from looplint.analysis.syntax import argument, children, dotted_name


def maximal_chains(expression: cst.CSTNode) -> Iterator[cst.BaseExpression]:
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


def parameter_sources(
    call: cst.Call, kind: ObjectKind, qualified: str, frame: Frame, scopes: Scopes
) -> frozenset[str]:
    """What an optimizer built by `call` updates: the names and attributes its parameter
    argument is built from, through the function's own locals and aliases."""
    if kind is not ObjectKind.OPTIMIZER:
        return frozenset()
    name = "model" if takes_model_not_parameters(qualified) else "params"
    params = argument(call, 0, name)
    if params is None:
        return frozenset()
    sources = {
        identity
        for chain in maximal_chains(params)
        if (identity := scopes.identity(chain, frame)) is not None
    }
    # `self.model = model` in the same function: the optimizer also updates `self.model`.
    for event in all_events(frame.function.events):
        if (
            isinstance(event, AssignEvent)
            and len(event.targets) == 1
            and isinstance(event.value, cst.Name)
        ):
            alias = scopes.identity(event.targets[0], frame)
            original = scopes.identity(event.value, frame)
            if alias is None or original is None:
                continue
            sources |= {
                alias + source[len(original) :]
                for source in list(sources)
                if source == original or source.startswith(original + ".")
            }
    return frozenset(sources | _built_from(sources, frame, scopes))


def _built_from(sources: set[str], frame: Frame, scopes: Scopes) -> set[str]:
    """What the function's own locals among `sources` are filled from: parameter
    groups built up with `groups.append({"params": [p for n, p in
    model.named_parameters() if ...]})`, `group["params"] = decay`, or assignment."""
    local = f"{frame.function.qualname}:"
    found: set[str] = set()
    pending = [s for s in sources if s.startswith(local)]
    seen: set[str] = set()
    while pending and len(seen) < 16:
        wanted = pending.pop()
        if wanted in seen:
            continue
        seen.add(wanted)
        for value in _fillers(wanted, frame, scopes):
            for chain in maximal_chains(value):
                identity = scopes.identity(chain, frame)
                if identity is not None and identity not in found:
                    found.add(identity)
                    if identity.startswith(local):
                        pending.append(identity)
    return found


def _fillers(identity: str, frame: Frame, scopes: Scopes) -> Iterator[cst.BaseExpression]:
    """Every value assigned, appended or extended into `identity` in the function, and
    what a loop over it iterates (`for param in model.parameters(): decay.append(param)`)."""
    for event in all_events(frame.function.events):
        if isinstance(event, LoopEvent) and isinstance(event.node, cst.For):
            if any(scopes.identity(target, frame) == identity for target in event.targets):
                yield event.node.iter
        elif isinstance(event, AssignEvent) and event.value is not None:
            for target in event.targets:
                holder = target.value if isinstance(target, cst.Subscript) else target
                if scopes.identity(holder, frame) == identity:
                    yield event.value
        elif (
            isinstance(event, CallEvent)
            and isinstance(event.node.func, cst.Attribute)
            and event.node.func.attr.value in ("append", "extend", "insert", "update")
            and scopes.identity(event.node.func.value, frame) == identity
        ):
            yield from (arg.value for arg in event.node.args)
