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

from looplint.analysis.catalog import PASS_THROUGH_METHODS, ObjectKind, takes_model_not_parameters
from looplint.analysis.program import AssignEvent, CallEvent, all_events
from looplint.analysis.scopes import Frame, Scopes
from looplint.analysis.syntax import argument, children, descendants, dotted_name


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
            bound = _comprehension_names(value)
            for chain in maximal_chains(value):
                if _root_name(chain) in bound:
                    continue  # `p` in `[p for n, p in model.named_parameters()]`
                identity = scopes.identity(chain, frame)
                if identity is not None and identity not in found:
                    found.add(identity)
                    if identity.startswith(local):
                        pending.append(identity)
    return found


def _unpacked(event: AssignEvent, index: int) -> cst.BaseExpression:
    """What target `index` of an assignment receives: its own element when a flat tuple is
    unpacked from a tuple (`a, b = x, y`) or from a call handing its arguments back in
    order (`model, opt = accelerator.prepare(model, opt)`), else the whole value. Without
    this, `model` would count as built from `opt`."""
    value = event.value
    assert value is not None
    node = event.node
    if not (isinstance(node, cst.Assign) and len(node.targets) == 1):
        return value
    target = node.targets[0].target
    if not isinstance(target, (cst.Tuple, cst.List)) or any(
        isinstance(element, cst.StarredElement)
        or isinstance(element.value, (cst.Tuple, cst.List))
        for element in target.elements
    ):
        return value
    count = len(target.elements)
    if isinstance(value, (cst.Tuple, cst.List)):
        parts = [element.value for element in value.elements]
        if len(parts) == count and not any(
            isinstance(element, cst.StarredElement) for element in value.elements
        ):
            return parts[index]
    if (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in PASS_THROUGH_METHODS
        and len(value.args) == count
        and all(arg.keyword is None and not arg.star for arg in value.args)
    ):
        return value.args[index].value
    return value


def _comprehension_names(value: cst.CSTNode) -> set[str]:
    """Names the comprehensions inside `value` bind (`n`, `p` in `for n, p in ...`): they
    live only there, so a local of the same name elsewhere is another variable."""
    names: set[str] = set()
    for node in (value, *descendants(value)):
        if isinstance(node, cst.CompFor):
            names.update(
                n.value for n in (node.target, *descendants(node.target)) if isinstance(n, cst.Name)
            )
    return names


def _root_name(chain: cst.BaseExpression) -> str | None:
    while isinstance(chain, cst.Attribute):
        chain = chain.value
    return chain.value if isinstance(chain, cst.Name) else None


def _fillers(identity: str, frame: Frame, scopes: Scopes) -> Iterator[cst.BaseExpression]:
    """Every value assigned, appended or extended into `identity` in the function."""
    for event in all_events(frame.function.events):
        if isinstance(event, AssignEvent) and event.value is not None:
            for index, target in enumerate(event.targets):
                holder = target.value if isinstance(target, cst.Subscript) else target
                if scopes.identity(holder, frame) == identity:
                    yield _unpacked(event, index)
        elif (
            isinstance(event, CallEvent)
            and isinstance(event.node.func, cst.Attribute)
            and event.node.func.attr.value in ("append", "extend", "insert", "update")
            and scopes.identity(event.node.func.value, frame) == identity
        ):
            yield from (arg.value for arg in event.node.args)
