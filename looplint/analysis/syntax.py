"""Cheap structural access to LibCST trees.

LibCST's visitor machinery costs about as much as parsing itself; the engine only
needs to read nodes, so it walks dataclass fields directly (about 14x cheaper) and
reads dotted names without building metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields

import libcst as cst

_SKIPPED_FIELD_PREFIXES = (
    "whitespace",
    "lpar",
    "rpar",
    "comma",
    "semicolon",
    "equal",
    "colon",
    "star",
    "dot",
    "header",
    "footer",
    "leading_lines",
    "lines_after",
    "empty_lines",
    "newline",
    "indent",
    "first_line",
    "operator",
    "lbracket",
    "rbracket",
    "lbrace",
    "rbrace",
    "asynchronous",
)
_CHILD_FIELDS: dict[type[cst.CSTNode], tuple[str, ...]] = {}


def _child_fields(node_type: type[cst.CSTNode]) -> tuple[str, ...]:
    names = _CHILD_FIELDS.get(node_type)
    if names is None:
        names = tuple(
            f.name for f in fields(node_type) if not f.name.startswith(_SKIPPED_FIELD_PREFIXES)
        )
        _CHILD_FIELDS[node_type] = names
    return names


_IS_NODE: dict[type, bool] = {}
"""Per type of field value: whether it is a LibCST node. `isinstance(value, cst.CSTNode)`
goes through `ABCMeta.__instancecheck__` (LibCST's nodes are ABCs) and was the largest
single cost of the analysis; a dictionary lookup by exact type is several times cheaper."""


def _learn(kind: type) -> bool:
    known = _IS_NODE[kind] = issubclass(kind, cst.CSTNode)
    return known


def children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The syntactic children of `node`, in source order, without whitespace nodes."""
    found: list[cst.CSTNode] = []
    is_node = _IS_NODE
    for name in _child_fields(node.__class__):
        value = getattr(node, name)
        kind = value.__class__
        if kind is tuple or kind is list:
            for item in value:
                flag = is_node.get(item.__class__)
                if flag is None:
                    flag = _learn(item.__class__)
                if flag:
                    found.append(item)
        else:
            flag = is_node.get(kind)
            if flag is None:
                flag = _learn(kind)
            if flag:
                found.append(value)
    return found


def descendants(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Every node below `node` (pre-order), without recursion so deep trees are safe."""
    stack = children(node)
    stack.reverse()
    while stack:
        current = stack.pop()
        yield current
        kids = children(current)
        kids.reverse()
        stack.extend(kids)


def dotted_name(node: cst.BaseExpression) -> str | None:
    """`a.b.c` for a chain of names and attributes, else None."""
    # Exact types: both classes are final in practice, and `isinstance` on LibCST's ABCs
    # costs several times more (this runs over a million times on a large codebase).
    if type(node) is cst.Name:
        return node.value
    parts: list[str] = []
    current: cst.BaseExpression = node
    while type(current) is cst.Attribute:
        parts.append(current.attr.value)
        current = current.value
    if type(current) is not cst.Name:
        return None
    parts.append(current.value)
    parts.reverse()
    return ".".join(parts)


def call_name(call: cst.Call) -> str | None:
    """The last name of the called thing: `step` for `opt.step()`, `SGD` for `SGD()`."""
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return None


def positional_args(call: cst.Call) -> list[cst.BaseExpression]:
    """The plain positional arguments of a call (no `*args`, no keywords)."""
    return [arg.value for arg in call.args if arg.keyword is None and not arg.star]


def keyword_arg(call: cst.Call, name: str) -> cst.BaseExpression | None:
    """The value of keyword argument `name`, if given."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg.value
    return None


def argument(call: cst.Call, index: int, name: str) -> cst.BaseExpression | None:
    """An argument given either by position `index` or by keyword `name`."""
    value = keyword_arg(call, name)
    if value is not None:
        return value
    positional = positional_args(call)
    if index < len(positional):
        return positional[index]
    return None


def called(expression: cst.BaseExpression) -> cst.BaseExpression:
    """`torch.no_grad` in `torch.no_grad()` (a decorator, a `with` item); the expression
    itself when it is no call (`@torch.no_grad`)."""
    return expression.func if isinstance(expression, cst.Call) else expression


def is_none(node: cst.BaseExpression) -> bool:
    """Whether `node` is the literal `None`."""
    return isinstance(node, cst.Name) and node.value == "None"


_EMPTY_MODULE = cst.Module(body=[])


def source_of(node: cst.CSTNode, limit: int = 60) -> str:
    """Short source text of a node for messages (`opt.step`, `StepLR(...)`)."""
    text = " ".join(_EMPTY_MODULE.code_for_node(node).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def call_display(call: cst.Call) -> str:
    """`opt.step()` / `scaler.step(opt)` / `optim.Adam(...)`, as a reader recognises the call."""
    func = source_of(call.func)
    if not call.args:
        return f"{func}()"
    args = source_of(call.args[0].value, 30)
    more = ", ..." if len(call.args) > 1 else ""
    return f"{func}({args}{more})"


def statement_of(module: cst.Module, call: cst.Call) -> tuple[cst.CSTNode, int] | None:
    """The block (module or indented block) whose body holds `call` as a bare statement.

    Returns the block and the statement's index; None when the call is part of a
    larger expression or statement. Walks the whole module: for fixes only.
    """
    for node in (module, *descendants(module)):
        if not isinstance(node, (cst.Module, cst.IndentedBlock)):
            continue
        for index, statement in enumerate(node.body):
            if (
                isinstance(statement, cst.SimpleStatementLine)
                and len(statement.body) == 1
                and isinstance(statement.body[0], cst.Expr)
                and statement.body[0].value is call
            ):
                return node, index
    return None


def with_item(node: cst.BaseExpression) -> cst.Call:
    """`node.item()`."""
    return cst.Call(func=cst.Attribute(value=node, attr=cst.Name("item")))


def is_none_check(test: cst.BaseExpression) -> bool:
    """`x is None` / `x is not None`, possibly negated: a guard against a missing object,
    not a schedule or a one-off condition."""
    while isinstance(test, cst.UnaryOperation):
        test = test.expression
    return isinstance(test, cst.Comparison) and any(
        isinstance(c.operator, (cst.Is, cst.IsNot)) and is_none(c.comparator)
        for c in test.comparisons
    )


SELF_RETURNING_METHODS = frozenset(
    {"to", "cuda", "cpu", "float", "half", "double", "bfloat16", "train", "eval", "requires_grad_"}
)
"""Module methods that return the module itself: `Net().to(device)` is still the `Net`."""


def unchained(expression: cst.BaseExpression) -> cst.BaseExpression:
    """`model` in `model.to(device).cuda()`: methods that return the module itself."""
    while (
        isinstance(expression, cst.Call)
        and isinstance(expression.func, cst.Attribute)
        and expression.func.attr.value in SELF_RETURNING_METHODS
    ):
        expression = expression.func.value
    return expression
