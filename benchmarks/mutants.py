"""Find the training loops of a real source file and inject one known bug into one of them.

Why: a linter's recall can only be measured on bugs whose presence is known. Fixtures are
written the textbook way; real code builds its optimizer in `__init__`, steps it in a
per-batch method and clears it through `model.zero_grad()`. This module reads a file the way
a reviewer does — on its own, with its own (deliberately generous) recognition of optimizers,
schedulers and scalers by name and role, never with looplint's analysis — and writes *mutants*:
copies of the file's text with exactly one bug of one rule injected. A mutation that would not
be a real bug is not a mutant but an `Exclusion` with its reason (see `EXCLUSION_CRITERIA`).

A *training unit* is where one optimizer is stepped repeatedly: the innermost loop (of the
function or module scope) around its `step()`, which must also contain a backward pass; or a
per-batch function with a backward pass and the step, called by name from a loop elsewhere
in the same file (`self._train_step(batch)` inside `fit`).
"""

from __future__ import annotations

import builtins
import re
import textwrap
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

RULES: tuple[str, ...] = (
    "LL001", "LL002", "LL004", "LL005", "LL006", "LL007", "LL010", "LL011", "LL012", "LL013",
    "LL014", "LL016",
)  # fmt: skip
"""The rules with a natural mutation, in report order."""

EXCLUSION_CRITERIA: dict[str, str] = {
    "already-flagged": "any rule: the unmutated file already has a finding of this rule (a "
    "verified real bug), so a second one in the same loop cannot be told apart from it",
    "helper-may-clear": "LL001: the unit still calls a helper that may clear gradients (a call "
    "named like `*zero_grad*`/`*clear_grad*`, or a function of the same file that clears)",
    "grads-assigned": "LL001: gradients are assigned (`p.grad = g`), not accumulated, so clears "
    "are not needed",
    "model-clear-shared": "LL001: several optimizers share the unit and a `model.zero_grad()` "
    "that may cover this one stays",
    "no-construction": "LL002: no construction of the optimizer is visible in the function or "
    "(for `self.x`) in its class, e.g. it is a parameter",
    "names-not-in-scope": "LL002: the construction uses names the loop's function does not have",
    "rebuilt-with-model": "LL002: the loop already rebuilds the optimizer or what it is built "
    "over (a fresh model needs a fresh optimizer)",
    "sched-nested-apart": "LL004: the scheduler step sits in a nested block apart from the "
    "optimizer step, so no move keeps the rest of the code as it is",
    "sched-already-first": "LL004: the scheduler is already stepped before the optimizer",
    "closure-step": "LL005: the step takes a closure that clears and backpropagates itself",
    "still-a-number": "LL006: the accumulated value is still converted to a Python number",
    "reset-each-iteration": "LL006: the total is reset inside the loop, so no history builds up",
    "no-clip": "LL007: nothing clips between `unscale_` and `step` (removing it changes nothing)",
    "update-elsewhere": "LL007: another `scaler.update()` stays in the unit",
    "backward-under-if": "LL010: the backward pass runs under the same condition as the step "
    "(e.g. an `n_critic` schedule), so clearing there is required",
    "helper-may-train": "LL011: the loop calls a helper that may switch back to train mode",
    "train-in-chain": "LL011: `.train()` ends a call chain (`model.to(d).train()`) that cannot "
    "be removed alone",
    "gradients-wanted": "LL014: the file asks for gradients outside training "
    "(`torch.autograd.grad`, `requires_grad_()`, `.requires_grad = True`) or freezes parameters "
    "(`requires_grad_(False)`): without `no_grad` the evaluation may build no graph, or need one",
    "backward-after-eval": "LL014: the function runs a backward pass after `eval()`: the "
    "evaluation's outputs may be what it differentiates",
    "engine-backward": "LL013: the backward pass is an engine's (`accelerator.backward(loss)`, "
    "`engine.backward(loss)`), which divides by the accumulation steps it is configured with: "
    "whether the manual division is needed depends on that configuration",
    "loss-not-known": "LL012: the name the loss is called through is also bound to another "
    "loss, or bound in another scope (a parameter): which loss it computes is not known",
    "several-optimizers": "LL016: other optimizers step in the same loop: the clip moved after "
    "one step may still precede another optimizer's backward and step",
}


@dataclass(frozen=True, slots=True)
class Mutant:
    """One injected bug: the whole mutated text of the file and where/what was changed."""

    rule: str
    line: int
    """Line of the mutation site in the original file (the step, clear, ... it is about)."""
    description: str
    text: str
    subject: str = ""
    """The object the bug is about: the optimizer, scheduler, scaler, total or model."""
    shape: str = "loop"
    """`loop`, or `per-batch function` (called from a loop elsewhere in the file)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "description", " ".join(self.description.split()))


@dataclass(frozen=True, slots=True)
class Exclusion:
    """A mutation site that would not produce a real bug, with the criterion that says so."""

    rule: str
    line: int
    reason: str
    """A key of `EXCLUSION_CRITERIA`."""


@dataclass(slots=True)
class FileMutations:
    """Everything one file yields."""

    mutants: list[Mutant] = field(default_factory=list)
    exclusions: list[Exclusion] = field(default_factory=list)


# --------------------------------------------------------------------------- recognition

_OPT_WORD = re.compile(r"optim|(^|_)opts?($|_)|^o$", re.IGNORECASE)
_SCHED_WORD = re.compile(r"sched", re.IGNORECASE)
_SCALER_WORD = re.compile(r"scaler", re.IGNORECASE)
_OPT_CLASSES = re.compile(
    r"^(SGD|Adam|AdamW|Adamax|NAdam|RAdam|Adagrad|Adadelta|RMSprop|Rprop|ASGD|LBFGS|SparseAdam|"
    r"Lamb|LAMB|Lion|Adafactor|Lars|LARS|Novograd|NovoGrad|Ranger|AdaBelief|Muon|Shampoo|"
    r"FusedAdam|FusedLAMB|AdamW8bit|Adam8bit|PagedAdamW.*|Sophia.*)$"
)
_CLIP = re.compile(r"clip_grad|clip_gradients|clip_grad_norm")
_NUMBER = re.compile(r"\.item\(\)|\.tolist\(\)|\.numpy\(\)|\bfloat\(|\bint\(|\.detach\(|\.data\b")
_BUILTINS = frozenset(dir(builtins)) | {"self", "cls", "__file__", "__name__"}


def _last(expr: str) -> str:
    """The last name of a dotted/subscripted expression: `self.opts[0]` -> `opts`."""
    expr = re.sub(r"\[[^\]]*\]$", "", expr)
    return re.split(r"[.\s]", expr)[-1]


def is_optimizer_expr(expr: str) -> bool:
    name = _last(expr)
    return bool(_OPT_WORD.search(name)) and not _SCHED_WORD.search(name) and "(" not in expr


def is_scheduler_expr(expr: str) -> bool:
    name = _last(expr)
    return bool(_SCHED_WORD.search(name)) and "noise" not in expr.lower() and "(" not in expr


def is_scaler_expr(expr: str) -> bool:
    return bool(_SCALER_WORD.search(_last(expr))) and "(" not in expr


def _method(call: cst.Call) -> str | None:
    return call.func.attr.value if isinstance(call.func, cst.Attribute) else None


def _callee_name(call: cst.Call) -> str:
    func = call.func
    if isinstance(func, cst.Attribute):
        return func.attr.value
    if isinstance(func, cst.Name):
        return func.value
    return ""


def _is_backward(call: cst.Call) -> bool:
    return _callee_name(call) in {"backward", "manual_backward"}


def _is_model_clear(call: cst.Call, code: str) -> bool:
    """`model.zero_grad()`, `self.zero_grad()`: a clear not made through an optimizer."""
    if _method(call) != "zero_grad":
        return False
    receiver = code[: code.rfind(".zero_grad")]
    return not is_optimizer_expr(receiver) and not is_scheduler_expr(receiver)


_SCOPES = (cst.FunctionDef, cst.ClassDef, cst.Lambda)
_LOOPS = (cst.For, cst.While)


class _Index:
    """Positions, parents and code of every node of one parsed file."""

    def __init__(self, text: str) -> None:
        self.module = cst.parse_module(text)
        wrapper = MetadataWrapper(self.module, unsafe_skip_copy=True)
        self.pos = wrapper.resolve(PositionProvider)
        self.parent = wrapper.resolve(ParentNodeProvider)
        self.lines = text.splitlines(keepends=True)
        self._code: dict[int, str] = {}
        # LibCST's `node.children` re-visits the node each time; walks use this map instead.
        kids: dict[int, list[cst.CSTNode]] = {}
        for child, parent in self.parent.items():
            kids.setdefault(id(parent), []).append(child)
        _KIDS.clear()
        _KIDS.update(kids)

    def code(self, node: cst.CSTNode) -> str:
        found = self._code.get(id(node))
        if found is None:
            found = self._code[id(node)] = self.module.code_for_node(node).strip()
        return found

    def line(self, node: cst.CSTNode) -> int:
        return self.pos[node].start.line

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        while node in self.parent:
            node = self.parent[node]
            yield node

    def scope_of(self, node: cst.CSTNode) -> cst.CSTNode:
        for up in self.ancestors(node):
            if isinstance(up, (cst.FunctionDef, cst.Module)):
                return up
        return self.module

    def statement(self, node: cst.CSTNode) -> cst.CSTNode:
        """The simple statement line (or compound statement) holding `node`."""
        if isinstance(node, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
            return node
        for up in self.ancestors(node):
            if isinstance(up, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                return up
        raise ValueError("node outside any statement")

    def within(self, node: cst.CSTNode, region: cst.CSTNode) -> bool:
        return node is region or any(up is region for up in self.ancestors(node))

    def innermost_loop(self, node: cst.CSTNode, stop: cst.CSTNode) -> cst.CSTNode | None:
        for up in self.ancestors(node):
            if up is stop:
                return None
            if isinstance(up, _LOOPS):
                return up
        return None

    def block_of(self, statement: cst.CSTNode) -> tuple[cst.CSTNode, int] | None:
        """The body node whose statement list holds `statement`, and its index there."""
        parent = self.parent.get(statement)
        body = getattr(parent, "body", None)
        if parent is None:
            return None
        if isinstance(body, (list, tuple)) and any(s is statement for s in body):
            return parent, next(i for i, s in enumerate(body) if s is statement)
        return None


_KIDS: dict[int, list[cst.CSTNode]] = {}
"""Children of every node of the file being mutated (set by `_Index`)."""


def _children(node: cst.CSTNode) -> Sequence[cst.CSTNode]:
    found = _KIDS.get(id(node))
    if found is not None:
        return found
    return () if id(node) in _KIDS or not _KIDS else node.children


def _walk(node: cst.CSTNode, into_functions: bool = False) -> Iterator[cst.CSTNode]:
    """Every node under `node`, not entering classes, lambdas or (unless asked) functions."""
    stack = list(reversed(_children(node)))
    while stack:
        child = stack.pop()
        yield child
        if isinstance(child, (cst.ClassDef, cst.Lambda)):
            continue
        if isinstance(child, cst.FunctionDef) and not into_functions:
            continue
        stack.extend(reversed(_children(child)))


def _calls(node: cst.CSTNode, into_functions: bool = False) -> list[cst.Call]:
    return [n for n in _walk(node, into_functions) if isinstance(n, cst.Call)]


@dataclass(slots=True)
class _Unit:
    """One optimizer `key` stepped repeatedly in `region` (a loop, or a per-batch function
    called from `callers`, loops of the same file)."""

    key: str
    scope: cst.CSTNode
    region: cst.CSTNode
    steps: list[cst.Call]
    callers: list[cst.CSTNode]
    keys_in_region: set[str] = field(default_factory=set)

    def calls(self) -> list[cst.Call]:
        found = _calls(self.region, into_functions=True)
        for caller in self.callers:
            found.extend(_calls(caller, into_functions=False))
        return found


class _File:
    """The recognised training structure of one file."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.ix = _Index(text)
        ix = self.ix
        self.functions: dict[str, list[cst.FunctionDef]] = {}
        for node in _walk(ix.module, into_functions=True):
            if isinstance(node, cst.FunctionDef):
                self.functions.setdefault(node.name.value, []).append(node)
        for klass in (n for n in _walkall(ix.module) if isinstance(n, cst.ClassDef)):
            for node in _walk(klass, into_functions=True):
                if isinstance(node, cst.FunctionDef):
                    self.functions.setdefault(node.name.value, []).append(node)
        self.all_calls = [n for n in _walkall(ix.module) if isinstance(n, cst.Call)]
        self._backward_functions: dict[int, bool] = {}
        self.units = self._units()
        self._module_names: set[str] | None = None

    def module_names(self) -> set[str]:
        """Names bound anywhere in the module (computed once: a visit of a big module costs)."""
        if self._module_names is None:
            self._module_names = _bound_names(self.ix.module, shallow=True)
        return self._module_names

    # ---------------------------------------------------------------- steps and units

    def step_key(self, call: cst.Call) -> str | None:
        """The optimizer a call steps: `opt.step()`, `opt.step(closure)`, `scaler.step(opt)`."""
        if _method(call) != "step" or not isinstance(call.func, cst.Attribute):
            return None
        receiver = self.ix.code(call.func.value)
        if is_optimizer_expr(receiver) and len(call.args) <= 1:
            if call.args and call.args[0].keyword is not None:
                return None
            return receiver
        if is_scaler_expr(receiver) and len(call.args) >= 1:
            arg = self.ix.code(call.args[0].value)
            return arg if is_optimizer_expr(arg) else None
        return None

    def _callers(self, function: cst.FunctionDef) -> list[cst.CSTNode]:
        """Loops of this file that call `function` by its name."""
        name = function.name.value
        found: list[cst.CSTNode] = []
        for call in self.all_calls:
            if _callee_name(call) != name or self.ix.within(call, function):
                continue
            loop = self.ix.innermost_loop(call, self.ix.scope_of(call))
            if loop is not None and not any(loop is f for f in found):
                found.append(loop)
        return found

    def _units(self) -> list[_Unit]:
        units: dict[tuple[int, str], _Unit] = {}
        for call in self.all_calls:
            key = self.step_key(call)
            if key is None:
                continue
            scope = self.ix.scope_of(call)
            # a closure step (`def closure(): ...` inside the loop) belongs to the outer scope
            while (
                isinstance(scope, cst.FunctionDef) and self.ix.innermost_loop(call, scope) is None
            ):
                outer = self.ix.scope_of(scope)
                if self.ix.innermost_loop(scope, outer) is None:
                    break
                scope = outer
            loop = self.ix.innermost_loop(call, scope)
            callers: list[cst.CSTNode] = []
            if loop is not None:
                region: cst.CSTNode = loop
            elif isinstance(scope, cst.FunctionDef):
                callers = self._callers(scope)
                if not callers:
                    continue
                region = scope
            else:
                continue
            if not self.backwards(region) and not any(
                self.backwards(caller, into_functions=False) for caller in callers
            ):
                continue
            unit = units.get((id(region), key))
            if unit is None:
                unit = units[(id(region), key)] = _Unit(key, scope, region, [], callers)
            unit.steps.append(call)
        by_region: dict[int, set[str]] = {}
        for region_id, key in units:
            by_region.setdefault(region_id, set()).add(key)
        for (region_id, _), unit in units.items():
            unit.keys_in_region = by_region[region_id]
        return sorted(units.values(), key=lambda u: (self.ix.line(u.region), u.key))

    # ---------------------------------------------------------------- clears

    def clears(self, unit: _Unit) -> list[cst.CSTNode]:
        """Nodes that clear `unit.key`'s gradients in the unit: `opt.zero_grad()`, and when the
        unit has one optimizer, `model.zero_grad()` and `p.grad = None` / `p.grad.zero_()`."""
        found: list[cst.CSTNode] = []
        single = len(unit.keys_in_region) == 1
        regions = [unit.region, *unit.callers]
        for region in regions:
            for node in _walk(region, into_functions=region is unit.region):
                if isinstance(node, cst.Call) and _method(node) == "zero_grad":
                    code = self.ix.code(node)
                    receiver = code[: code.rfind(".zero_grad")]
                    if receiver == unit.key or (single and _is_model_clear(node, code)):
                        found.append(node)
                elif single and self.is_param_clear(node):
                    found.append(node)
        return _unique(found)

    def is_param_clear(self, node: cst.CSTNode) -> bool:
        if isinstance(node, cst.Assign) and isinstance(node.value, cst.Name):
            return node.value.value == "None" and any(
                self.ix.code(t.target).endswith(".grad") for t in node.targets
            )
        if isinstance(node, cst.Call) and _method(node) in {"zero_", "detach_", "requires_grad_"}:
            receiver = self.ix.code(node.func.value)  # type: ignore[attr-defined]
            return _method(node) == "zero_" and re.search(r"\.grad(\.data)?$", receiver) is not None
        return False

    def grads_assigned(self, unit: _Unit) -> bool:
        for node in _walk(unit.region, into_functions=True):
            if isinstance(node, cst.Assign) and not (
                isinstance(node.value, cst.Name) and node.value.value == "None"
            ):
                if any(self.ix.code(t.target).endswith(".grad") for t in node.targets):
                    return True
        return False

    def helper_may_clear(self, calls: Iterable[cst.Call], removed: Sequence[cst.CSTNode]) -> bool:
        """Whether a call left in the unit may clear gradients in code not removed."""
        for call in calls:
            if any(call is r for r in removed):
                continue
            name = _callee_name(call)
            if re.search(r"zero_grad|clear_grad|reset_grad", name):
                return True
            for function in self.functions.get(name, []):
                if self.ix.within(call, function):
                    continue
                for node in _walk(function, into_functions=True):
                    is_clear = (isinstance(node, cst.Call) and _method(node) == "zero_grad") or (
                        self.is_param_clear(node)
                    )
                    if is_clear and not any(node is r for r in removed):
                        return True
        return False

    def backwards(self, region: cst.CSTNode, into_functions: bool = True) -> list[cst.Call]:
        """Backward passes in `region`: `loss.backward()`, `accelerator.backward(loss)`, and
        calls of a function of this file that runs one (`self.training_step(batch)`)."""
        return [
            c
            for c in _calls(region, into_functions)
            if _is_backward(c) or self._runs_backward(c, region)
        ]

    def _runs_backward(self, call: cst.Call, region: cst.CSTNode) -> bool:
        for function in self.functions.get(_callee_name(call), []):
            if self.ix.within(region, function) or self.ix.within(function, region):
                continue
            known = self._backward_functions.get(id(function))
            if known is None:
                known = any(_is_backward(c) for c in _calls(function, into_functions=True))
                self._backward_functions[id(function)] = known
            if known:
                return True
        return False


def _walkall(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    stack = list(reversed(_children(node)))
    while stack:
        child = stack.pop()
        yield child
        stack.extend(reversed(_children(child)))


def _unique(nodes: Iterable[cst.CSTNode]) -> list[cst.CSTNode]:
    seen: set[int] = set()
    out: list[cst.CSTNode] = []
    for node in nodes:
        if id(node) not in seen:
            seen.add(id(node))
            out.append(node)
    return out


# --------------------------------------------------------------------------- rewriting


@dataclass(slots=True)
class _Rewrite:
    """A source edit, by statement: lines replaced, and lines inserted before a statement or
    at the top of a block. Applied to the text (a tree transform of a 5,000-line module costs
    seconds; this costs a list copy)."""

    replace: list[tuple[cst.CSTNode, cst.CSTNode]] = field(default_factory=list)
    """(original simple statement line, its replacement line)."""
    before: list[tuple[cst.CSTNode, str]] = field(default_factory=list)
    """(statement, code to insert before it)."""
    top: list[tuple[cst.CSTNode, str]] = field(default_factory=list)
    """(indented block, code to insert as its first statement)."""


_EMPTY = cst.Module([])


def _statement_of_call(ix: _Index, node: cst.CSTNode) -> cst.CSTNode | None:
    """The small statement made of just this call/assignment (removable), else None."""
    small = ix.parent.get(node)
    if isinstance(node, cst.Call) and isinstance(small, cst.Expr):
        pass
    elif isinstance(node, (cst.Assign, cst.AugAssign)):
        small = node
    else:
        return None
    line = ix.parent.get(small)
    return small if isinstance(line, cst.SimpleStatementLine) else None


def _removal(ix: _Index, smalls: Sequence[cst.CSTNode]) -> list[tuple[cst.CSTNode, cst.CSTNode]]:
    """Replacements that delete the given small statements (a line left empty becomes `pass`)."""
    by_line: dict[int, tuple[cst.SimpleStatementLine, list[cst.CSTNode]]] = {}
    for small in smalls:
        line = ix.parent[small]
        assert isinstance(line, cst.SimpleStatementLine)
        by_line.setdefault(id(line), (line, []))[1].append(small)
    out: list[tuple[cst.CSTNode, cst.CSTNode]] = []
    for line, removed in by_line.values():
        kept = [s for s in line.body if not any(s is r for r in removed)]
        if kept:
            kept[-1] = kept[-1].with_changes(semicolon=cst.MaybeSentinel.DEFAULT)
            out.append((line, line.with_changes(body=kept)))
        else:
            out.append((line, cst.SimpleStatementLine(body=[cst.Pass()])))
    return out


def _apply(ix: _Index, rewrite: _Rewrite) -> str | None:
    """The file's text after `rewrite`, or None when the result would not compile."""
    lines = ix.lines
    replaced: dict[int, tuple[int, str]] = {}
    inserted: dict[int, list[str]] = {}

    def indent_of(line_no: int) -> str:
        text = lines[line_no - 1]
        return text[: len(text) - len(text.lstrip())]

    def insert(statement: cst.CSTNode, code: str) -> None:
        start = ix.pos[statement].start.line
        if ix.pos[statement].start.column != len(indent_of(start)):
            raise ValueError("statement does not start its line")
        indent = indent_of(start)
        lines_of_code = code.strip("\n").splitlines()
        inserted.setdefault(start, []).append(
            "".join((indent + line if line.strip() else line) + "\n" for line in lines_of_code)
        )

    try:
        for original, new in rewrite.replace:
            where = ix.pos[original]
            code = _EMPTY.code_for_node(new.with_changes(leading_lines=())).strip("\n")
            replaced[where.start.line] = (where.end.line, indent_of(where.start.line) + code + "\n")
        for statement, code in rewrite.before:
            insert(statement, code)
        for block, code in rewrite.top:
            body = getattr(block, "body", ())
            if not body:
                return None
            insert(body[0], code)
    except (ValueError, KeyError):
        return None
    out: list[str] = []
    number = 1
    while number <= len(lines):
        out.extend(inserted.get(number, []))
        if number in replaced:
            end, code = replaced[number]
            out.append(code)
            number = end + 1
        else:
            out.append(lines[number - 1])
            number += 1
    text = "".join(out)
    try:
        compile(text, "<mutant>", "exec")
    except (SyntaxError, ValueError):
        return None
    return text


def _source_of(ix: _Index, statement: cst.CSTNode) -> str:
    """The original text of a statement, dedented (a compound one keeps its inner indents)."""
    where = ix.pos[statement]
    return textwrap.dedent("".join(ix.lines[where.start.line - 1 : where.end.line])).strip("\n")


# --------------------------------------------------------------------------- operators


def _shape(unit: _Unit) -> str:
    return "per-batch function" if unit.callers else "loop"


def _ll001(f: _File, unit: _Unit, out: FileMutations) -> None:
    ix = f.ix
    line = ix.line(unit.steps[0])
    clears = f.clears(unit)
    if not clears:
        return
    if f.grads_assigned(unit):
        out.exclusions.append(Exclusion("LL001", line, "grads-assigned"))
        return
    if len(unit.keys_in_region) > 1 and any(
        isinstance(c, cst.Call) and _is_model_clear(c, ix.code(c))
        for region in (unit.region, *unit.callers)
        for c in _calls(region, True)
    ):
        out.exclusions.append(Exclusion("LL001", line, "model-clear-shared"))
        return
    smalls = [_statement_of_call(ix, c) for c in clears]
    if any(s is None for s in smalls):
        return
    if f.helper_may_clear(unit.calls(), clears):
        out.exclusions.append(Exclusion("LL001", line, "helper-may-clear"))
        return
    text = _apply(ix, _Rewrite(replace=_removal(ix, [s for s in smalls if s is not None])))
    if text is None:
        return
    where = ", ".join(f"`{ix.code(c)}` line {ix.line(c)}" for c in clears)
    out.mutants.append(
        Mutant(
            "LL001",
            line,
            f"removed every clear of `{unit.key}`: {where}",
            text,
            unit.key,
            _shape(unit),
        )
    )


def _construction(f: _File, unit: _Unit) -> cst.SimpleStatementLine | None:
    """The statement that builds `unit.key`: the last `key = <call>` before the loop in the
    same scope, or `self.key = <call>` in another method of the same class."""
    ix = f.ix
    key = unit.key
    candidates: list[cst.SimpleStatementLine] = []
    scopes: list[cst.CSTNode] = [unit.scope]
    if key.startswith("self.") and isinstance(unit.scope, cst.FunctionDef):
        klass = next((a for a in ix.ancestors(unit.scope) if isinstance(a, cst.ClassDef)), None)
        if klass is not None:
            scopes = [n for n in _walk(klass, True) if isinstance(n, cst.FunctionDef)]
    for scope in scopes:
        for node in _walk(scope, into_functions=False):
            if not isinstance(node, cst.Assign) or not isinstance(node.value, cst.Call):
                continue
            targets = [ix.code(t.target) for t in node.targets]
            names = {n.strip() for t in targets for n in t.strip("()[]").split(",")}
            if key not in names or len(node.targets) != 1:
                continue
            if scope is unit.scope and ix.line(node) >= ix.line(unit.region):
                continue
            if not _builds_optimizer(ix, node.value):
                continue
            if any(ix.code(a.value) == key for a in node.value.args):
                continue  # `opt = Wrapper(opt)` wraps the optimizer, it builds no new one
            line = ix.parent.get(node)
            if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1:
                candidates.append(line)
    return candidates[-1] if candidates else None


def _builds_optimizer(ix: _Index, call: cst.Call) -> bool:
    name = _callee_name(call)
    if name in {"prepare", "wrap", "prepare_optimizer", "cast", "deepcopy", "getattr"}:
        return False
    if _OPT_CLASSES.match(name) or re.search(r"optim|Optim", name):
        return True
    return any(re.search(r"optim", ix.code(a.value)) for a in call.args[:1])


class _Names(cst.CSTVisitor):
    """Names read by an expression (`model` in `Adam(model.parameters(), lr=lr)`: model, lr,
    Adam), and names bound by a scope (parameters, assignment and loop targets, imports)."""

    def __init__(self, shallow: bool = False) -> None:
        self.read: set[str] = set()
        self.bound: set[str] = set()
        self.shallow = shallow
        """Do not enter functions and classes (the module's own names)."""

    def visit_Attribute(self, node: cst.Attribute) -> bool:
        node.value.visit(self)
        return False

    def visit_Arg(self, node: cst.Arg) -> bool:
        node.value.visit(self)
        return False

    def visit_Name(self, node: cst.Name) -> None:
        self.read.add(node.value)

    def visit_Param(self, node: cst.Param) -> None:
        self.bound.add(node.name.value)

    def _targets(self, target: cst.CSTNode | None) -> None:
        if target is None:
            return
        for n in [target, *_walkall(target)]:
            if isinstance(n, cst.Name):
                self.bound.add(n.value)

    def visit_AssignTarget(self, node: cst.AssignTarget) -> None:
        self._targets(node.target)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        self._targets(node.target)

    def visit_For(self, node: cst.For) -> None:
        self._targets(node.target)

    def visit_CompFor(self, node: cst.CompFor) -> None:
        self._targets(node.target)

    def visit_AsName(self, node: cst.AsName) -> None:
        self._targets(node.name)

    def visit_NamedExpr(self, node: cst.NamedExpr) -> None:
        self._targets(node.target)

    def visit_FunctionDef(self, node: cst.FunctionDef) -> bool:
        self.bound.add(node.name.value)
        return not self.shallow

    def visit_ClassDef(self, node: cst.ClassDef) -> bool:
        self.bound.add(node.name.value)
        return not self.shallow

    def visit_ImportAlias(self, node: cst.ImportAlias) -> None:
        if node.asname is None:
            name: cst.BaseExpression = node.name
            while isinstance(name, cst.Attribute):
                name = name.value
            if isinstance(name, cst.Name):
                self.bound.add(name.value)


def _bound_names(scope: cst.CSTNode, shallow: bool = False) -> set[str]:
    names = _Names(shallow)
    scope.visit(names)
    return names.bound


def _roots(expr: cst.CSTNode) -> set[str]:
    names = _Names()
    expr.visit(names)
    return names.read - names.bound


def _ll002(f: _File, unit: _Unit, out: FileMutations) -> None:
    ix = f.ix
    line = ix.line(unit.steps[0])
    built = _construction(f, unit)
    if built is None:
        out.exclusions.append(Exclusion("LL002", line, "no-construction"))
        return
    if unit.callers:
        target: cst.CSTNode = unit.region  # the per-batch function: rebuilt every call
    else:
        outer = ix.innermost_loop(unit.region, unit.scope)
        target = outer if outer is not None else unit.region
    assign = built.body[0]
    assert isinstance(assign, cst.Assign)
    scope_names = _bound_names(unit.scope) | f.module_names() | _BUILTINS
    if not _roots(assign.value) <= scope_names:
        out.exclusions.append(Exclusion("LL002", line, "names-not-in-scope"))
        return
    used = _roots(assign.value) | {ix.code(t.target) for t in assign.targets}
    used |= {ix.code(n) for n in _walkall(assign.value) if isinstance(n, cst.Attribute)}
    for node in _walk(target, into_functions=False):
        if isinstance(node, cst.AssignTarget) and ix.code(node.target) in used:
            out.exclusions.append(Exclusion("LL002", line, "rebuilt-with-model"))
            return
        if isinstance(node, cst.Call) and _callee_name(node) in {
            "reset_parameters",
            "load_state_dict",
            "init_weights",
            "apply",
        }:
            out.exclusions.append(Exclusion("LL002", line, "rebuilt-with-model"))
            return
    assert isinstance(target, (cst.For, cst.While, cst.FunctionDef))
    text = _apply(ix, _Rewrite(top=[(target.body, _source_of(ix, built))]))
    if text is None:
        return
    out.mutants.append(
        Mutant(
            "LL002",
            line,
            f"copied `{ix.code(assign)[:80]}` (line {ix.line(built)}) to the top of the"
            f" {'per-batch function' if unit.callers else 'loop'} at line {ix.line(target)}",
            text,
            unit.key,
            _shape(unit),
        )
    )


def _sole_guard(ix: _Index, statement: cst.CSTNode, scheduler: str) -> cst.If | None:
    """The `if` around `statement` when it holds nothing else and tests the scheduler itself
    (`if self._lr_scheduler is not None:`)."""
    block = ix.parent.get(statement)
    guard = ix.parent.get(block) if block is not None else None
    if not isinstance(guard, cst.If) or guard.orelse is not None:
        return None
    if not isinstance(block, cst.IndentedBlock) or list(block.body) != [statement]:
        return None
    return guard if _last(scheduler) in ix.code(guard.test) else None


def _ll004(f: _File, out: FileMutations) -> None:
    ix = f.ix
    for call in f.all_calls:
        if _method(call) != "step" or call.args or not isinstance(call.func, cst.Attribute):
            continue
        if not is_scheduler_expr(ix.code(call.func.value)):
            continue
        small = _statement_of_call(ix, call)
        if small is None:
            continue
        stmt = ix.parent[small]
        scope = ix.scope_of(call)
        region: cst.CSTNode | None = ix.innermost_loop(call, scope)
        if region is None and any(u.region is scope for u in f.units):
            region = scope  # a per-batch function called from a loop
        if region is None:
            continue
        steps = sorted(
            (c for u in f.units if ix.within(u.region, region) for c in u.steps), key=ix.line
        )
        if not steps:
            continue
        line = ix.line(call)
        first = steps[0]
        if line < ix.line(first):
            out.exclusions.append(Exclusion("LL004", line, "sched-already-first"))
            continue
        step_stmt = ix.statement(first)
        moved = ix.code(small)
        removal = _removal(ix, [small])
        guard = _sole_guard(ix, stmt, ix.code(call.func.value))
        if guard is not None:  # `if sched is not None: sched.step()` moves as a whole
            stmt, moved = guard, _source_of(ix, guard)
            removal = [(guard, cst.SimpleStatementLine(body=[cst.Pass()]))]
        same = ix.block_of(stmt)
        other = ix.block_of(step_stmt)
        if same is not None and other is not None and same[0] is other[0]:
            rewrite = _Rewrite(replace=removal, before=[(step_stmt, moved)])
            where = f"before `{ix.code(first)}` (line {ix.line(first)})"
        elif same is not None and same[0] is getattr(region, "body", None):
            rewrite = _Rewrite(replace=removal, top=[(same[0], moved)])
            where = f"to the top of the loop at line {ix.line(region)}"
        else:
            out.exclusions.append(Exclusion("LL004", line, "sched-nested-apart"))
            continue
        text = _apply(ix, rewrite)
        if text is not None:
            out.mutants.append(
                Mutant(
                    "LL004",
                    line,
                    f"moved `{ix.code(call)}` {where}",
                    text,
                    ix.code(call.func.value),
                    "loop" if region is not scope else "per-batch function",
                )
            )


def _ll005(f: _File, unit: _Unit, out: FileMutations) -> None:
    ix = f.ix
    clears = f.clears(unit)
    direct = [c for c in clears if isinstance(c, cst.Call) and _method(c) == "zero_grad"]
    if not direct:
        return
    step = unit.steps[0]
    line = ix.line(step)
    if any(
        s.args and _method(s) == "step" and is_optimizer_expr(ix.code(s.func.value))  # type: ignore[attr-defined]
        for s in unit.steps
    ):
        out.exclusions.append(Exclusion("LL005", line, "closure-step"))
        return
    clear = next((c for c in direct if ix.code(c).startswith(unit.key + ".")), direct[0])
    small = _statement_of_call(ix, clear)
    step_stmt = ix.statement(step)
    if small is None or ix.block_of(step_stmt) is None:
        return
    rewrite = _Rewrite(replace=_removal(ix, [small]), before=[(step_stmt, ix.code(clear))])
    text = _apply(ix, rewrite)
    if text is not None:
        out.mutants.append(
            Mutant(
                "LL005",
                ix.line(clear),
                f"moved `{ix.code(clear)}` (line {ix.line(clear)}) right before"
                f" `{ix.code(step)}` (line {line})",
                text,
                unit.key,
                _shape(unit),
            )
        )


_LOSS_TAKERS = re.compile(r"accelerator|fabric|engine|trainer|self|strategy|amp|booster")


def _loss_names(f: _File, region: cst.CSTNode) -> set[str]:
    """Names of the losses backpropagated in `region`: `loss.backward()`,
    `scaler.scale(loss).backward()`, `accelerator.backward(loss)`."""
    names: set[str] = set()
    for call in f.backwards(region):
        func = call.func
        if not isinstance(func, cst.Attribute):
            continue
        receiver = func.value
        taker = _LOSS_TAKERS.search(f.ix.code(receiver)) is not None
        if (
            call.args
            and isinstance(call.args[0].value, cst.Name)
            and (taker or func.attr.value == "manual_backward")
        ):
            names.add(call.args[0].value.value)
            continue
        if isinstance(receiver, cst.Call) and receiver.args:  # scaler.scale(loss).backward()
            receiver = receiver.args[0].value
        if isinstance(receiver, cst.Name):
            names.add(receiver.value)
    return names


class _Strip(cst.CSTTransformer):
    """`loss.item()`, `loss.detach()`, `loss.data`, `float(loss)` -> `loss`."""

    def __init__(self, names: set[str]) -> None:
        self.names = names
        self.changed = False

    def leave_Call(self, original: cst.Call, updated: cst.Call) -> cst.BaseExpression:
        func = updated.func
        if (
            isinstance(func, cst.Attribute)
            and func.attr.value in {"item", "detach"}
            and isinstance(func.value, cst.Name)
            and func.value.value in self.names
            and not updated.args
        ):
            self.changed = True
            return func.value
        if (
            isinstance(func, cst.Name)
            and func.value == "float"
            and len(updated.args) == 1
            and isinstance(updated.args[0].value, cst.Name)
            and updated.args[0].value.value in self.names
        ):
            self.changed = True
            return updated.args[0].value
        return updated

    def leave_Attribute(
        self, original: cst.Attribute, updated: cst.Attribute
    ) -> cst.BaseExpression:
        if (
            updated.attr.value == "data"
            and isinstance(updated.value, cst.Name)
            and (updated.value.value in self.names)
        ):
            self.changed = True
            return updated.value
        return updated


def _ll006(f: _File, out: FileMutations) -> None:
    ix = f.ix
    seen: set[int] = set()
    for unit in f.units:
        if unit.callers or id(unit.region) in seen:
            continue
        seen.add(id(unit.region))
        losses = _loss_names(f, unit.region)
        if not losses:
            continue
        for node in _walk(unit.region, into_functions=False):
            if not isinstance(node, cst.AugAssign) or not isinstance(node.operator, cst.AddAssign):
                continue
            if isinstance(node.value, (cst.List, cst.Tuple, cst.ListComp)):
                continue
            if any(
                isinstance(a, cst.With)
                and re.search(r"no_grad|inference_mode", ix.code(a.items[0]))
                for a in ix.ancestors(node)
            ):
                continue
            strip = _Strip(losses)
            value = node.value.visit(strip)
            if not strip.changed or not isinstance(value, cst.BaseExpression):
                continue
            line = ix.line(node)
            new_code = cst.Module([]).code_for_node(value)
            if _NUMBER.search(new_code):
                out.exclusions.append(Exclusion("LL006", line, "still-a-number"))
                continue
            target = ix.code(node.target)
            loop = ix.innermost_loop(node, unit.scope)
            if loop is not None and any(
                isinstance(n, cst.AssignTarget) and ix.code(n.target) == target
                for n in _walk(loop, into_functions=False)
            ):
                out.exclusions.append(Exclusion("LL006", line, "reset-each-iteration"))
                continue
            line_node = ix.parent.get(node)
            if not isinstance(line_node, cst.SimpleStatementLine):
                continue
            new_line = line_node.with_changes(
                body=[
                    s if s is not node else node.with_changes(value=value) for s in line_node.body
                ]
            )
            text = _apply(ix, _Rewrite(replace=[(line_node, new_line)]))
            if text is not None:
                out.mutants.append(
                    Mutant(
                        "LL006",
                        line,
                        f"`{ix.code(node)}` -> `{target} += {new_code}`",
                        text,
                        target,
                    )
                )


def _ll007(f: _File, out: FileMutations) -> None:
    ix = f.ix
    seen: set[int] = set()
    for unit in f.units:
        if id(unit.region) in seen:
            continue
        seen.add(id(unit.region))
        calls = _calls(unit.region, into_functions=True)
        for call in calls:
            name = _method(call)
            if name not in {"unscale_", "update"} or not isinstance(call.func, cst.Attribute):
                continue
            scaler = ix.code(call.func.value)
            if not is_scaler_expr(scaler):
                continue
            steps = [
                c for c in calls if _method(c) == "step" and ix.code(c).startswith(scaler + ".")
            ]
            if not steps:
                continue
            small = _statement_of_call(ix, call)
            if small is None:
                continue
            line = ix.line(call)
            if name == "unscale_":
                clip = [
                    c
                    for c in calls
                    if _CLIP.search(_callee_name(c))
                    and ix.line(call) < ix.line(c) <= ix.line(steps[-1])
                ]
                if not clip:
                    out.exclusions.append(Exclusion("LL007", line, "no-clip"))
                    continue
                what = f"removed `{ix.code(call)}` before `{ix.code(clip[0])[:60]}`"
            else:
                others = [
                    c
                    for c in calls
                    if _method(c) == "update"
                    and c is not call
                    and ix.code(c).startswith(scaler + ".")
                ]
                if others:
                    out.exclusions.append(Exclusion("LL007", line, "update-elsewhere"))
                    continue
                what = f"removed `{ix.code(call)}`"
            text = _apply(ix, _Rewrite(replace=_removal(ix, [small])))
            if text is not None:
                out.mutants.append(Mutant("LL007", line, what, text, scaler, _shape(unit)))


def _ll010(f: _File, unit: _Unit, out: FileMutations) -> None:
    ix = f.ix
    clears = [c for c in f.clears(unit) if isinstance(c, cst.Call)]
    backwards = f.backwards(unit.region)
    for clear in clears:
        guard = next((a for a in ix.ancestors(clear) if isinstance(a, cst.If)), None)
        if guard is None or not ix.within(guard, unit.region):
            continue
        if not any(ix.within(s, guard) for s in unit.steps):
            continue
        line = ix.line(clear)
        outside = [b for b in backwards if not ix.within(b, guard)]
        if not outside or any(ix.within(b, guard) for b in backwards):
            out.exclusions.append(Exclusion("LL010", line, "backward-under-if"))
            continue
        earlier = [b for b in outside if ix.line(b) < ix.line(guard)]
        backward = earlier[-1] if earlier else outside[0]
        small = _statement_of_call(ix, clear)
        anchor = ix.statement(backward)
        if small is None or ix.block_of(anchor) is None:
            continue
        rewrite = _Rewrite(replace=_removal(ix, [small]), before=[(anchor, ix.code(clear))])
        text = _apply(ix, rewrite)
        if text is not None:
            out.mutants.append(
                Mutant(
                    "LL010",
                    line,
                    f"moved `{ix.code(clear)}` out of `if {ix.code(guard.test)[:50]}:` to before"
                    f" the backward pass at line {ix.line(backward)} (every micro-batch)",
                    text,
                    unit.key,
                    _shape(unit),
                )
            )
        return


def _trains_in(f: _File, loop: cst.CSTNode) -> bool:
    """Whether `loop` runs training: a backward pass in it, or a call to a per-batch
    function of a training unit."""
    if f.backwards(loop):
        return True
    return any(f.ix.within(caller, loop) or caller is loop for u in f.units for caller in u.callers)


def _evaluated(f: _File, calls: Sequence[cst.Call]) -> set[str]:
    """Models switched to eval mode by `calls`: `m.eval()`, or a same-file helper that calls
    `.eval()` and is handed `m` (or is a method, for `self.` models)."""
    ix = f.ix
    found: set[str] = set()
    for call in calls:
        if _method(call) == "eval" and not call.args and isinstance(call.func, cst.Attribute):
            found.add(ix.code(call.func.value))
            continue
        for function in f.functions.get(_callee_name(call), []):
            if any(_method(c) == "eval" for c in _calls(function, True)):
                found.update(ix.code(a.value) for a in call.args)
                if isinstance(call.func, cst.Attribute) and ix.code(call.func.value) == "self":
                    found.add("self.*")
    return found


def _ll011(f: _File, out: FileMutations) -> None:
    ix = f.ix
    loops = [n for n in _walkall(ix.module) if isinstance(n, _LOOPS) and _trains_in(f, n)]
    for loop in loops:
        calls = _calls(loop, into_functions=False)
        evaluated = _evaluated(f, calls)
        trains_by_model: dict[str, list[cst.Call]] = {}
        for c in calls:
            if (
                _method(c) == "train"
                and isinstance(c.func, cst.Attribute)
                and (not c.args or ix.code(c.args[0].value) in {"True", "mode=True"})
            ):
                trains_by_model.setdefault(ix.code(c.func.value), []).append(c)
        for model, trains in sorted(trains_by_model.items()):
            if model not in evaluated and not (model.startswith("self.") and "self.*" in evaluated):
                continue
            inner = [other for other in loops if other is not loop and ix.within(other, loop)]
            if any(all(ix.within(t, other) for t in trains) for other in inner):
                continue  # the innermost loop holding them is mutated instead
            line = ix.line(trains[0])
            smalls = [_statement_of_call(ix, t) for t in trains]
            if any(s is None for s in smalls):
                out.exclusions.append(Exclusion("LL011", line, "train-in-chain"))
                continue
            if _may_train(f, model, calls, trains):
                out.exclusions.append(Exclusion("LL011", line, "helper-may-train"))
                continue
            text = _apply(ix, _Rewrite(replace=_removal(ix, [s for s in smalls if s is not None])))
            if text is not None:
                where = ", ".join(str(ix.line(t)) for t in trains)
                out.mutants.append(
                    Mutant(
                        "LL011",
                        line,
                        f"removed `{model}.train()` (line {where}) from the loop at line"
                        f" {ix.line(loop)}, which also evaluates it",
                        text,
                        model,
                    )
                )


def _may_train(
    f: _File, model: str, calls: Sequence[cst.Call], removed: Sequence[cst.Call]
) -> bool:
    """Whether code left in the loop may switch `model` back to train mode."""
    for call in calls:
        if any(call is r for r in removed):
            continue
        name = _callee_name(call)
        if _method(call) == "train" and isinstance(call.func, cst.Attribute):
            receiver = f.ix.code(call.func.value)
            if model.startswith(receiver + ".") or receiver == "self":
                return True
            continue
        defined = f.functions.get(name, [])
        if defined:
            if any(_method(c) == "train" for d in defined for c in _calls(d, True)):
                return True
        elif re.search(r"train", name, re.IGNORECASE):
            return True
    return False


_CLIPPERS = frozenset({"clip_grad_norm_", "clip_grad_value_"})


def _ll016(f: _File, unit: _Unit, out: FileMutations) -> None:
    """Move the clip that sits between the backward pass and the step to right after the step."""
    ix = f.ix
    step = unit.steps[0]
    step_line = ix.statement(step)
    if not isinstance(step_line, cst.SimpleStatementLine) or len(step_line.body) != 1:
        return
    clips = [
        c
        for c in _calls(unit.region, into_functions=False)
        if _callee_name(c) in _CLIPPERS and ix.line(c) < ix.line(step)
    ]
    for clip in clips:
        small = _statement_of_call(ix, clip)
        if small is None:
            continue
        line = ix.line(clip)
        if len(unit.keys_in_region) > 1:
            out.exclusions.append(Exclusion("LL016", line, "several-optimizers"))
            return
        moved = cst.SimpleStatementLine(body=[step_line.body[0], small])
        rewrite = _Rewrite(replace=[*_removal(ix, [small]), (step_line, moved)])
        text = _apply(ix, rewrite)
        if text is not None:
            out.mutants.append(
                Mutant(
                    "LL016",
                    line,
                    f"moved `{ix.code(clip)[:60]}` (line {line}) to right after"
                    f" `{ix.code(step)}` (line {ix.line(step)})",
                    text,
                    unit.key,
                    _shape(unit),
                )
            )
        return


def _window_test(f: _File, guard: cst.If) -> str | None:
    """`N` of a step guard `(i + 1) % N == 0`."""
    for node in _walkall(guard.test):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo):
            return f.ix.code(node.right)
    return None


class _Undivide(cst.CSTTransformer):
    """`x / N` -> `x`, for the window `N` of an accumulation."""

    def __init__(self, window: str) -> None:
        self.window = window
        self.changed = False

    def leave_BinaryOperation(
        self, original: cst.BinaryOperation, updated: cst.BinaryOperation
    ) -> cst.BaseExpression:
        if isinstance(updated.operator, cst.Divide) and _EMPTY.code_for_node(updated.right).strip(
            "() "
        ) in (self.window, f"float({self.window})"):
            self.changed = True
            return updated.left
        return updated


def _ll013(f: _File, unit: _Unit, out: FileMutations) -> None:
    """Remove the division of the loss by the accumulation window `N` of a unit whose step
    runs under `if ... % N == 0:` and whose backward runs outside that `if`."""
    ix = f.ix
    step = unit.steps[0]
    guard = next((a for a in ix.ancestors(step) if isinstance(a, cst.If)), None)
    if guard is None or not ix.within(guard, unit.region):
        return
    window = _window_test(f, guard)
    backwards = [b for b in f.backwards(unit.region, into_functions=False) if _is_backward(b)]
    if window is None or not backwards or any(ix.within(b, guard) for b in backwards):
        return
    if any(b.args and b.args[0].keyword is None for b in backwards):
        out.exclusions.append(Exclusion("LL013", ix.line(step), "engine-backward"))
        return
    losses = _loss_names(f, unit.region)
    for node in _walk(unit.region):
        replacement: cst.CSTNode | None = None
        if (
            isinstance(node, cst.AugAssign)
            and isinstance(node.operator, cst.DivideAssign)
            and ix.code(node.value).strip("() ") == window
            and ix.code(node.target) in losses
        ):
            replacement = cst.Pass()
        elif (isinstance(node, cst.Call) and any(node is b for b in backwards)) or (
            isinstance(node, cst.Assign) and any(ix.code(t.target) in losses for t in node.targets)
        ):
            undivide = _Undivide(window)
            changed = node.visit(undivide)
            if undivide.changed:
                replacement = changed
        if replacement is None:
            continue
        statement = ix.statement(node)
        if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
            continue
        if isinstance(replacement, cst.Call):
            new_line = statement.with_changes(body=[cst.Expr(replacement)])
        else:
            assert isinstance(replacement, cst.BaseSmallStatement)
            new_line = statement.with_changes(body=[replacement])
        text = _apply(ix, _Rewrite(replace=[(statement, new_line)]))
        if text is not None:
            out.mutants.append(
                Mutant(
                    "LL013",
                    ix.line(node),
                    f"removed the division by `{window}` from `{ix.code(node)[:60]}`"
                    f" (line {ix.line(node)}); the step runs under"
                    f" `if {ix.code(guard.test)[:40]}:`",
                    text,
                    unit.key,
                    _shape(unit),
                )
            )
        return


_NO_GRAD = re.compile(r"(?:^|\.)(?:no_grad|inference_mode)\(\)$")
_WANTS_GRADIENTS = re.compile(
    r"autograd\.grad\(|requires_grad_\(|\.requires_grad\s*=(?!=)|set_grad_enabled"
)


def _ll014(f: _File, out: FileMutations) -> None:
    """Remove the `with torch.no_grad():` (the body dedented) around an evaluation loop: a
    loop calling a model that the same function switched to `eval()` before."""
    ix = f.ix
    for node in _walkall(ix.module):
        if not (isinstance(node, cst.With) and len(node.items) == 1):
            continue
        if not _NO_GRAD.search(ix.code(node.items[0].item)):
            continue
        scope = ix.scope_of(node)
        evaluated = {
            ix.code(c.func.value)  # type: ignore[attr-defined]
            for c in _calls(scope)
            if _method(c) == "eval" and not c.args and ix.line(c) < ix.line(node)
        }
        loops = [n for n in _walk(node) if isinstance(n, _LOOPS)]
        inner_loop = ix.innermost_loop(node, scope)
        runs = [
            c
            for c in _calls(node)
            if ix.code(c.func) in evaluated
            and (any(ix.within(c, loop) for loop in loops) or inner_loop is not None)
        ]
        if not runs:
            continue
        line = ix.line(runs[0])
        if _WANTS_GRADIENTS.search(f.text):
            out.exclusions.append(Exclusion("LL014", line, "gradients-wanted"))
            continue
        if any(_is_backward(c) and ix.line(c) > ix.line(node) for c in _calls(scope)):
            out.exclusions.append(Exclusion("LL014", line, "backward-after-eval"))
            continue
        where = ix.pos[node]
        body = node.body
        if not isinstance(body, cst.IndentedBlock) or not body.body:
            continue
        first = ix.pos[body.body[0]].start.line
        header = ix.lines[where.start.line - 1]
        indent = len(header) - len(header.lstrip())
        inner = ix.lines[first - 1]
        shift = len(inner) - len(inner.lstrip()) - indent
        lines = list(ix.lines)
        kept = [
            text[shift:] if text[:shift].strip() == "" else text
            for text in lines[first - 1 : where.end.line]
        ]
        lines[where.start.line - 1 : where.end.line] = kept
        text = "".join(lines)
        try:
            compile(text, "<mutant>", "exec")
        except (SyntaxError, ValueError):
            continue
        out.mutants.append(
            Mutant(
                "LL014",
                line,
                f"removed `with {ix.code(node.items[0].item)}:` (line {where.start.line}) around"
                f" the evaluation of `{ix.code(runs[0].func)}`",
                text,
                ix.code(runs[0].func),
            )
        )


_CE_CLASSES = re.compile(r"(?:^|\.)(CrossEntropyLoss|BCEWithLogitsLoss)\(")
_CE_FUNCTIONS = {"cross_entropy": "softmax", "binary_cross_entropy_with_logits": "sigmoid"}


def _ll012(f: _File, out: FileMutations) -> None:
    """Wrap the input of a cross-entropy loss in `torch.softmax(..., dim=-1)` (of a
    `BCEWithLogitsLoss` in `torch.sigmoid(...)`), in the training units' files."""
    ix = f.ix
    if not re.search(r"^import torch$", f.text, re.M):
        return
    losses: dict[tuple[int, str], str | None] = {}
    for node in _walkall(ix.module):
        if isinstance(node, cst.Assign) and len(node.targets) == 1:
            target = ix.code(node.targets[0].target)
            found = _CE_CLASSES.search(ix.code(node.value))
            kind = None
            if found is not None and isinstance(node.value, cst.Call):
                kind = "softmax" if found.group(1) == "CrossEntropyLoss" else "sigmoid"
            scope = ix.module if target.startswith("self.") else ix.scope_of(node)
            key = (id(scope), target)
            if key in losses and losses[key] != kind:
                kind = None  # bound to two losses (or to something else too)
            losses[key] = kind
    done = 0
    for call in f.all_calls:
        name = _callee_name(call)
        written = ix.code(call.func)
        scope = ix.module if written.startswith("self.") else ix.scope_of(call)
        activation = _CE_FUNCTIONS.get(name) or losses.get((id(scope), written))
        if activation is None and any(k[1] == written and v for k, v in losses.items()):
            out.exclusions.append(Exclusion("LL012", ix.line(call), "loss-not-known"))
            continue
        if activation is None or not call.args or call.args[0].keyword is not None:
            continue
        first = call.args[0].value
        statement = ix.statement(call)
        if not isinstance(statement, cst.SimpleStatementLine):
            continue
        wrapped = cst.parse_expression(
            f"torch.{activation}({ix.code(first)}, dim=-1)"
            if activation == "softmax"
            else f"torch.sigmoid({ix.code(first)})"
        )
        new_line = statement.deep_replace(first, wrapped)
        assert isinstance(new_line, cst.SimpleStatementLine)
        text = _apply(ix, _Rewrite(replace=[(statement, new_line)]))
        if text is None:
            continue
        out.mutants.append(
            Mutant(
                "LL012",
                ix.line(call),
                f"wrapped the input `{ix.code(first)[:40]}` of `{ix.code(call.func)}` in"
                f" `torch.{activation}` (line {ix.line(call)})",
                text,
                ix.code(call.func),
            )
        )
        done += 1
        if done >= 4:
            return


# --------------------------------------------------------------------------- entry point


def mutate(text: str, rules: Sequence[str] = RULES) -> FileMutations:
    """All mutants (and exclusions) of the selected rules for one file's text.

    Raises `cst.ParserSyntaxError` for a file LibCST cannot parse.
    """
    out = FileMutations()
    f = _File(text)
    if not f.units and not {"LL011", "LL012", "LL014"} & set(rules):
        return out
    per_unit = {
        "LL001": _ll001, "LL002": _ll002, "LL005": _ll005, "LL010": _ll010, "LL013": _ll013,
        "LL016": _ll016,
    }  # fmt: skip
    for unit in f.units:
        for rule, operator in per_unit.items():
            if rule in rules:
                operator(f, unit, out)
    per_file = {
        "LL004": _ll004, "LL006": _ll006, "LL007": _ll007, "LL011": _ll011, "LL012": _ll012,
        "LL014": _ll014,
    }  # fmt: skip
    for rule, whole in per_file.items():
        if rule in rules:
            whole(f, out)
    # units nested in one another can propose the same edit twice
    unique = {(m.rule, m.line, m.description): m for m in out.mutants}
    out.mutants = list(unique.values())
    out.exclusions = list(dict.fromkeys(out.exclusions))
    return out
