"""The screen of LL012: can a loss call of this module get the wrong activation?

`activations` traces a loss call's input back, through value-preserving steps only, to the
activation applied last. Most modules that name a loss never give it a wrong one: a
transformers model file computes `CrossEntropyLoss()(logits, labels)` on the output of an
`nn.Linear`, while its softmax sits in the attention, far from any loss. Parsing such a file
with LibCST costs more than everything else looplint does to it.

This screen repeats the tracing on the standard library's `ast` tree, over-approximating at
every step the analysis could take (every assignment of a name counts, in any order; a
function's every return; a class's every attribute assignment), and says yes whenever it
cannot follow a step as the analysis would:

- `NLLLoss` / `BCELoss` calls: always (raw logits, which any final `nn.Linear` gives, are
  wrong for them);
- `CrossEntropyLoss` / `BCEWithLogitsLoss` calls: when the input may come from a softmax or
  sigmoid (function, method or layer), from the model of another module (an imported class;
  its `forward` is not visible here), or through a step this screen does not model.

Values the analysis cannot follow either (a subscript, arithmetic, an unknown name) end the
trace with no activation, as there.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field

from looplint.files.screening import Glance

_ALWAYS_SUSPECT_LOSSES = frozenset({"nll_loss", "binary_cross_entropy", "NLLLoss", "BCELoss"})
"""Losses any final linear layer (raw logits) feeds wrongly."""
_LOSS_FUNCTIONS = frozenset(
    {"cross_entropy", "binary_cross_entropy_with_logits", "nll_loss", "binary_cross_entropy"}
)
_LOSS_CLASSES = frozenset({"CrossEntropyLoss", "BCEWithLogitsLoss", "NLLLoss", "BCELoss"})
_ACTIVATIONS = frozenset({"softmax", "sigmoid", "expit", "Softmax", "Sigmoid"})
"""What a loss that applies its own activation must not get (log-softmax is harmless)."""
SHAPE_METHODS = frozenset(
    {
        "view", "reshape", "squeeze", "unsqueeze", "flatten", "contiguous", "permute",
        "transpose", "float", "double", "half", "to", "cuda", "cpu", "clone", "view_as",
        "reshape_as", "type_as",
    }
)  # fmt: skip
"""Methods that change a tensor's layout, not its values (`activations` imports these:
the screen must follow exactly the steps the analysis follows)."""
_WRAPPERS = frozenset({"DataParallel", "DistributedDataParallel", "compile"})
MAX_DEPTH = 5
"""How many steps back `activations` traces (it imports this). Each step here counts at
most what the same step counts there, so a path too deep here is too deep there too, and
leads to no finding."""

_Function = ast.FunctionDef | ast.AsyncFunctionDef


def loss_may_get_wrong_activation(glance: Glance) -> bool:
    """Whether LL012 can fire on this module (see the module docstring)."""
    tracer = _LossTracer(glance)
    return any(tracer.suspect(call, scope) for call, scope in tracer.loss_calls())


@dataclass(slots=True)
class _Scope:
    """A function (or the module body): its assignments by target text, its parameters,
    its returns and its calls."""

    node: ast.AST
    owner: ast.ClassDef | None
    parent: _Scope | None
    assigned: dict[str, list[ast.expr]] = field(default_factory=dict)
    params: tuple[str, ...] = ()
    returns: list[ast.expr] = field(default_factory=list)
    calls: list[ast.Call] = field(default_factory=list)


class _ModuleIndex:
    """One walk of the tree: scopes, classes, functions, imports and attribute stores."""

    def __init__(self, glance: Glance) -> None:
        self.imported: set[str] = set()
        self.from_torch: set[str] = set()
        """Names bound to torch or something in it (`torch`, `nn`, `F`, `Linear`)."""
        for node in glance.nodes(ast.Import):
            for alias in node.names:
                bound = alias.asname or alias.name.split(".")[0]
                self.imported.add(bound)
                if alias.name.split(".")[0] == "torch":
                    self.from_torch.add(bound)
        for found in glance.nodes(ast.ImportFrom):
            bound_names = {a.asname or a.name for a in found.names}
            self.imported.update(bound_names)
            if (found.module or "").split(".")[0] == "torch":
                self.from_torch.update(bound_names)
        self.classes: dict[str, list[ast.ClassDef]] = {}
        self.functions: dict[str, list[_Scope]] = {}
        self.attributes: dict[str, list[tuple[ast.expr, _Scope]]] = {}
        """`self.name` stores, by attribute name, across every class of the module."""
        self.scopes: list[_Scope] = []
        self.loss_holders: set[str] = set()
        """Last names of what a loss is stored in (`criterion`, `self.loss_fct`)."""
        self.calls_by_name: dict[str, list[tuple[ast.Call, _Scope]]] = {}
        """Every call by the last name of what it calls, with its scope."""
        self.module = _Scope(glance.tree, None, None)
        self.scopes.append(self.module)
        self._index(glance)

    def _index(self, glance: Glance) -> None:
        """File every store, return and call under its function, found by line: the
        innermost function whose lines hold the node's first line. No walk of the tree
        beyond the one `Glance` already made."""
        for cls in glance.nodes(ast.ClassDef):
            self.classes.setdefault(cls.name, []).append(cls)
        owners = {
            id(item): cls
            for cls in glance.nodes(ast.ClassDef)
            for item in cls.body
            if isinstance(item, _Function)
        }
        functions: list[_Function] = [
            *glance.nodes(ast.FunctionDef),
            *glance.nodes(ast.AsyncFunctionDef),
        ]
        last = max((f.end_lineno or f.lineno for f in functions), default=0)
        by_line = [self.module] * (last + 2)
        for function in sorted(functions, key=lambda f: (f.lineno, -(f.end_lineno or 0))):
            end = function.end_lineno or function.lineno
            arguments = function.args
            scope = _Scope(function, owners.get(id(function)), by_line[function.lineno])
            scope.params = tuple(
                a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)
            )
            self.functions.setdefault(function.name, []).append(scope)
            self.scopes.append(scope)
            by_line[function.lineno : end + 1] = [scope] * (end + 1 - function.lineno)

        def scope_of(node: ast.AST) -> _Scope:
            line: int = getattr(node, "lineno", 0)
            return by_line[line] if line < len(by_line) else self.module

        for assign in glance.nodes(ast.Assign):
            for target in assign.targets:
                self._store(scope_of(assign), target, assign.value)
        for annotated in glance.nodes(ast.AnnAssign):
            if annotated.value is not None:
                self._store(scope_of(annotated), annotated.target, annotated.value)
        for named in glance.nodes(ast.NamedExpr):
            self._store(scope_of(named), named.target, named.value)
        for returned in glance.nodes(ast.Return):
            if returned.value is not None:
                scope_of(returned).returns.append(returned.value)
        for call in glance.nodes(ast.Call):
            scope = scope_of(call)
            scope.calls.append(call)
            name = _last_name(call.func)
            if name:
                self.calls_by_name.setdefault(name, []).append((call, scope))

    def _store(self, scope: _Scope, target: ast.expr, value: ast.expr) -> None:
        built = _shape_only(value)
        if isinstance(built, ast.Call) and _last_name(built.func) in _LOSS_CLASSES:
            self.loss_holders.add(_last_name(target))
        if isinstance(target, ast.Name):
            scope.assigned.setdefault(target.id, []).append(value)
        elif isinstance(target, ast.Attribute):
            if isinstance(target.value, ast.Name) and target.value.id in ("self", "cls"):
                self.attributes.setdefault(target.attr, []).append((value, scope))
            else:
                scope.assigned.setdefault(ast.unparse(target), []).append(value)
        # Tuple targets: the analysis follows single targets only.

    # -- losses ------------------------------------------------------------------------

    def _forwards(self, class_name: str) -> list[_Scope] | None:
        """The `forward` methods a class of this module may run (None: not found here)."""
        seen: set[str] = set()
        pending = [class_name]
        while pending:
            name = pending.pop(0)
            if name in seen or name not in self.classes:
                continue
            seen.add(name)
            found = [
                s
                for s in self.functions.get("forward", [])
                if s.owner is not None and s.owner.name == name
            ]
            if found:
                return found
            for cls in self.classes[name]:
                pending.extend(_last_name(b) for b in cls.bases)
        return None

    def _callee(self, func: ast.expr, scope: _Scope) -> list[_Scope] | None:
        """The same-module functions `func(...)` may reach (None: not one of them)."""
        if isinstance(func, ast.Name):
            found = self.functions.get(func.id)
            return [s for s in found if s.owner is None] or None if found else None
        if isinstance(func, ast.Attribute):
            # `self.method(...)`, or `obj.method(...)` on an instance of a class of this
            # module: any class's method of that name may be the one.
            methods = [s for s in self.functions.get(func.attr, []) if s.owner is not None]
            return methods or None
        return None

    def _values(self, name: ast.expr, scope: _Scope) -> list[tuple[ast.expr, _Scope]] | None:
        """What a name or attribute may hold: its stores in this function, an enclosing
        one or the module; for `self.x`, every class's `self.x = ...`."""
        if (
            isinstance(name, ast.Attribute)
            and isinstance(name.value, ast.Name)
            and (name.value.id in ("self", "cls"))
        ):
            return self.attributes.get(name.attr)
        if isinstance(name, ast.Name):
            key = name.id
        elif isinstance(name, ast.Attribute):
            key = ast.unparse(name)
        else:
            return None
        current: _Scope | None = scope
        while current is not None:
            if key in current.assigned:
                return [(v, current) for v in current.assigned[key]]
            current = current.parent
        return None

    def _passed(self, scope: _Scope, param: str) -> Iterator[tuple[ast.expr | None, _Scope]]:
        """What each same-module call of `scope`'s function passes for `param` (None: it
        cannot be told, `*args`), with the calling scope. Calls are matched by name."""
        node = scope.node
        if not isinstance(node, _Function):
            return
        position = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
        if scope.owner is not None and position[:1] in (["self"], ["cls"]):
            position = position[1:]
        for call, caller in self.calls_by_name.get(node.name, ()):
            if any(isinstance(a, ast.Starred) for a in call.args) or any(
                k.arg is None for k in call.keywords
            ):
                yield None, caller
                continue
            passed = next((k.value for k in call.keywords if k.arg == param), None)
            if passed is None and param in position:
                at = position.index(param)
                passed = call.args[at] if at < len(call.args) else None
            if passed is not None:
                yield passed, caller


class _LossTracer(_ModuleIndex):
    """The index, traced back from each loss call as `activations` does."""

    def __init__(self, glance: Glance) -> None:
        super().__init__(glance)
        self._visited: dict[tuple[int, bool], int] = {}
        """(value, as a module) → the least depth it was traced at, for the current loss
        call: a cycle (`x = x.view(-1)`) or a longer second path to a value adds nothing."""

    # -- losses ------------------------------------------------------------------------
    def loss_calls(self) -> Iterator[tuple[ast.Call, _Scope]]:
        for scope in self.scopes:
            for call in scope.calls:
                if self._is_loss(call, scope):
                    yield call, scope

    def _is_loss(self, call: ast.Call, scope: _Scope) -> bool:
        func = call.func
        if _last_name(func) in _LOSS_FUNCTIONS:
            return True
        if isinstance(func, ast.Call):
            built = _shape_only(func)
            return isinstance(built, ast.Call) and _last_name(built.func) in _LOSS_CLASSES
        if isinstance(func, ast.Name) and func.id in scope.params:
            if scope.owner is not None and func.id == scope.params[0]:
                return False  # `self(...)`: the module's own forward
            return self._passed_a_loss(scope, func.id)
        if _last_name(func) not in self.loss_holders:
            return False
        for stored, _ in self._values(func, scope) or ():
            built = _shape_only(stored)
            if isinstance(built, ast.Call) and _last_name(built.func) in _LOSS_CLASSES:
                return True
        return False

    def suspect(self, call: ast.Call, scope: _Scope) -> bool:
        """Whether `call`'s input may carry an activation its loss must not get."""
        func = call.func
        built = _shape_only(func) if isinstance(func, ast.Call) else None
        names = {_last_name(func), _last_name(built.func) if isinstance(built, ast.Call) else ""}
        for stored, _ in self._values(func, scope) or ():
            stored = _shape_only(stored)
            if isinstance(stored, ast.Call):
                names.add(_last_name(stored.func))
        if names & _ALWAYS_SUSPECT_LOSSES or (
            isinstance(func, ast.Name) and func.id in scope.params
        ):
            return True  # (a loss handed in: any of them)
        self._visited.clear()
        value = call.args[0] if call.args else None
        if value is None:
            value = next((k.value for k in call.keywords if k.arg == "input"), None)
        if value is None:
            return any(k.arg is None for k in call.keywords) or any(
                isinstance(a, ast.Starred) for a in call.args
            )
        if isinstance(value, ast.Starred):
            return True
        return self._origin(value, scope, 0)

    # -- tracing -----------------------------------------------------------------------
    def _origin(self, value: ast.expr, scope: _Scope, depth: int) -> bool:
        """Whether `value` may have gone through a forbidden activation last."""
        if depth > MAX_DEPTH or not self._first_visit((id(value), False), depth):
            return False
        value = _shape_only(value)
        if isinstance(value, (ast.Name, ast.Attribute)):
            values = self._values(value, scope)
            if any(self._origin(v, home, depth + 1) for v, home in values or ()):
                return True
            return (
                isinstance(value, ast.Name)
                and value.id in scope.params
                and self._arguments(scope, value.id, depth)
            )
        if not isinstance(value, ast.Call):
            return False
        func = value.func
        name = _last_name(func)
        if name in _ACTIVATIONS:
            return True
        if isinstance(func, ast.Call):
            return self._module_output(func, scope, depth + 1)
        if _root_name(func) in self.imported:
            return False  # a library function (the analysis knows no activation it applies)
        callee = self._callee(func, scope)
        if callee is not None:
            return any(self._origin(r, s, depth + 1) for s in callee for r in s.returns)
        values = self._values(func, scope)
        return any(self._module_output(v, s, depth + 1) for v, s in values or ())

    def _first_visit(self, key: tuple[int, bool], depth: int) -> bool:
        """Whether `key` was not yet traced from this close to the loss."""
        if self._visited.get(key, MAX_DEPTH + 1) <= depth:
            return False
        self._visited[key] = depth
        return True

    def _module_output(self, built: ast.expr, scope: _Scope, depth: int) -> bool:
        """Whether calling the module `built` constructs may return a forbidden activation."""
        if depth > MAX_DEPTH or not self._first_visit((id(built), True), depth):
            return False
        built = _shape_only(built)
        if not isinstance(built, ast.Call):
            return False
        name = _last_name(built.func)
        if name in _WRAPPERS and built.args:
            return self._module_output(built.args[0], scope, depth + 1)
        if name in _ACTIVATIONS:
            return True
        if name == "Sequential":
            if any(isinstance(a, ast.Starred) for a in built.args):
                return False  # the analysis gives up here too
            last = built.args[-1] if built.args else None
            if isinstance(last, (ast.Name, ast.Attribute)):
                values = self._values(last, scope)
                return any(self._module_output(v, s, depth + 1) for v, s in values or ())
            return last is not None and self._module_output(last, scope, depth + 1)
        if isinstance(built.func, ast.Name) and built.func.id in self.classes:
            forwards = self._forwards(built.func.id)
            if forwards is None:
                return True
            return any(self._origin(r, s, depth + 1) for s in forwards for r in s.returns)
        root = _root_name(built.func)
        # torch's own layers are known (above); an imported class is another module's, and
        # its `forward` is out of sight here; anything else the analysis cannot follow.
        return root in self.imported and root not in self.from_torch

    def _arguments(self, scope: _Scope, param: str, depth: int) -> bool:
        """A parameter: what same-module calls pass for it (unknown calls: yes)."""
        return any(
            passed is None or self._origin(passed, caller, depth + 1)
            for passed, caller in self._passed(scope, param)
        )

    def _passed_a_loss(self, scope: _Scope, param: str) -> bool:
        """Whether a same-module call may pass a loss (or something unknown) for `param`:
        what lets the analysis call `param(...)` a loss."""
        for passed, caller in self._passed(scope, param):
            if passed is None:
                return True
            values = [(passed, caller)]
            if isinstance(passed, (ast.Name, ast.Attribute)):
                values = self._values(passed, caller) or []
            for value, _ in values:
                built = _shape_only(value)
                if isinstance(built, ast.Call) and _last_name(built.func) in _LOSS_CLASSES:
                    return True
        return False


def _shape_only(value: ast.expr) -> ast.expr:
    """`out` in `out.view(-1, n).float()`: methods that change layout, not values."""
    while (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Attribute)
        and value.func.attr in SHAPE_METHODS
    ):
        value = value.func.value
    return value


def _last_name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _root_name(func: ast.expr) -> str:
    while isinstance(func, ast.Attribute):
        func = func.value
    return func.id if isinstance(func, ast.Name) else ""
