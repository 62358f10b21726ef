"""Whether a condition inside a loop holds on one iteration or on many.

A construction under `if epoch == k:` or `if optimizer is None:` runs once; under
`if epoch % 10 == 0:` it runs periodically, and under a condition the loop never changes
(`if args.optim == "sgd":`) on every iteration or on none. LL002 needs the difference: only
a once-condition makes rebuilding an optimizer inside a training loop deliberate.
"""

from __future__ import annotations

import libcst as cst

from looplint.analysis.syntax import descendants


def _root(node: cst.BaseExpression) -> str | None:
    """`args` in `args.lr`, `cfg["optim"]`, `args.opt.name`."""
    while isinstance(node, (cst.Attribute, cst.Subscript)):
        node = node.value
    return node.value if isinstance(node, cst.Name) else None


def _roots_in(expression: cst.CSTNode) -> set[str]:
    """Root names of the outermost chains in `expression` (`args`, not `optim`, for
    `args.optim`); names inside a subscript's index count too (`cfg[key]`)."""
    roots: set[str] = set()
    pending: list[cst.CSTNode] = [expression]
    while pending:
        node = pending.pop()
        if isinstance(node, (cst.Name, cst.Attribute, cst.Subscript)):
            root = _root(node)
            if root is not None:
                roots.add(root)
            while isinstance(node, (cst.Attribute, cst.Subscript)):
                if isinstance(node, cst.Subscript):
                    pending.extend(node.slice)
                node = node.value
            if not isinstance(node, cst.Name):
                pending.append(node)
            continue
        pending.extend(node.children)
    return roots - {"True", "False", "None"}


_PURE_STRING_METHODS = frozenset(
    {"lower", "upper", "casefold", "strip", "lstrip", "rstrip", "startswith", "endswith"}
)
"""String methods whose answer depends only on the string and the arguments: a factory's
dispatch `if optimizer_type == "AdamW".lower():` is decided by configuration alone."""


def _pure_call(node: cst.CSTNode) -> bool:
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value in _PURE_STRING_METHODS
    )


def _read_roots(test: cst.BaseExpression) -> set[str] | None:
    """The root names a condition reads; None when it calls something (a call's answer
    may change from one iteration to the next) other than a pure string method."""
    if any(
        isinstance(node, (cst.Lambda, cst.NamedExpr, cst.Await))
        or (isinstance(node, cst.Call) and not _pure_call(node))
        for node in (test, *descendants(test))
    ):
        return None
    return _roots_in(test)


def _changed_in(loop: cst.For | cst.While) -> set[str]:
    """Root names the loop may change: its targets, whatever its body assigns, and the
    receivers of method calls it makes (`state.advance()`)."""
    changed: set[str] = set()
    targets: list[cst.BaseExpression] = [loop.target] if isinstance(loop, cst.For) else []
    for node in descendants(loop.body):
        if isinstance(node, cst.AssignTarget):
            targets.append(node.target)
        elif isinstance(node, (cst.AugAssign, cst.AnnAssign)):
            targets.append(node.target)
        elif isinstance(node, (cst.For, cst.CompFor)):
            targets.append(node.target)
        elif isinstance(node, cst.AsName):
            targets.append(node.name)
        elif isinstance(node, cst.NamedExpr):
            targets.append(node.target)
        elif isinstance(node, cst.Del):
            targets.append(node.target)
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute):
            if not _pure_call(node):
                targets.append(node.func.value)
        elif isinstance(node, (cst.Global, cst.Nonlocal)):
            changed.update(n.name.value for n in node.names)
    for target in targets:
        root = _root(target)
        if root is not None:
            changed.add(root)
        elif isinstance(target, (cst.Tuple, cst.List)):
            changed |= _roots_in(target)
    return changed


def holds_on_many_iterations(test: cst.BaseExpression | None, loop: cst.CSTNode) -> bool:
    """Whether `if test:` inside `loop` is taken on many iterations, not once: a periodic
    test (`step % k == 0`), or one that reads nothing the loop changes (`args.use_sgd`,
    `cfg["optim"] == "adam"`), so its arm runs on every iteration or on none.

    Everything else (`epoch == k`, `optimizer is None`, a flag the loop sets, a call) is
    taken as a one-off: a false "rebuilt every time" costs more than a missed one."""
    if test is None:
        return False
    if any(
        isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo)
        for node in (test, *descendants(test))
    ):
        return True
    return is_loop_invariant(test, loop)


def is_loop_invariant(test: cst.BaseExpression, loop: cst.CSTNode) -> bool:
    """Whether `test` reads only names that `loop` never changes (configuration, constants):
    it has the same value on every iteration. Calls, `self` and per-batch methods count as
    changing."""
    if not isinstance(loop, (cst.For, cst.While)):
        return False
    roots = _read_roots(test)
    if not roots or "self" in roots or "cls" in roots:
        return False
    return not (roots & _changed_in(loop))
