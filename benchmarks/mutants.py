"""Find the training loops of a real source file and inject one known bug into one of them.

Why: a linter's recall can only be measured on bugs whose presence is known. Fixtures are
written the textbook way; real code builds its optimizer in `__init__`, steps it in a
per-batch method and clears it through `model.zero_grad()`. This module reads a file the way
a reviewer does — on its own, with its own (deliberately generous) recognition of optimizers,
schedulers and scalers by name and role, never with looplint's analysis (it shares only the
catalog's statement of which optimizers keep state) — and writes *mutants*:
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import libcst as cst
from libcst.metadata import MetadataWrapper, ParentNodeProvider, PositionProvider

from looplint.analysis.catalog import optimizer_keeps_state

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
    "no-clip": "LL007: nothing clips between `unscale_` and `step` (removing it changes "
    "nothing); a clip with a threshold of `None` (`clip_grad_value_(params, None)`) only "
    "measures the norm",
    "update-elsewhere": "LL007: another `scaler.update()` stays in the unit",
    "backward-under-if": "LL010: the backward pass runs under the same condition as the step "
    "(e.g. an `n_critic` schedule), so clearing there is required",
    "helper-may-train": "LL011: the loop calls a helper that may switch back to train mode",
    "train-in-chain": "LL011/LL021: `.train()` ends a call chain (`model.to(d).train()`) that "
    "cannot be removed alone",
    "handed-to-unseen-code": "LL015/LL021: the loader or model is given to a function defined "
    "in no visible file (Accelerate's `prepare` shards a loader; a trainer may call `.train()`)",
    "set-epoch-in-expression": "LL015: a `set_epoch` call is part of a larger expression",
    "no-shuffle": "LL015: the file builds a `DistributedSampler(shuffle=False)`: the order does "
    "not depend on the epoch",
    "base-elsewhere": "LL017: the class derives from a base defined in another file; from the "
    "file alone it may not be an nn.Module, and a plain list may be what it wants",
    "no-fresh-layers": "LL017: the container holds no layer built there (existing submodules or "
    "modules passed in, registered elsewhere)",
    "parameterless-layers": "LL017: every layer in it has no parameters (`nn.ReLU()`), so "
    "nothing is lost",
    "rebound": "LL017: the attribute is assigned again elsewhere in the class",
    "module-method-called": "LL017: a module method is called on the container "
    "(`self.convs.apply(init)`, `.to()`): a plain list raises there, the bug is not silent",
    "handed-on": "LL017: the attribute is given to a call (`nn.Sequential(*self.x)`, "
    "`add_module`) that may register its layers anyway",
    "training-forced": "LL019: `training=True/False` is a literal: removing it changes the mode "
    "only for `False`, on purpose",
    "guarded-by-mode": "LL019: the dropout runs only under an `if` testing the training mode",
    "callee-not-imported": "LL019: the functional module (`F`) is not imported in the file: "
    "the call raises `NameError`, it cannot drop silently",
    "open-ended-arguments": "LL015: the loader also takes `**kwargs`, which may carry a sampler",
    "train-of-another-model": "LL021: every `.train()` on the name is in another function "
    "than the `from_pretrained` load (a same-named variable or parameter holding another model)",
    "not-own-attribute": "LL017: the container is stored on another object "
    "(`self.model.decoder.heads = ...`), not on the class being defined, whose attributes are "
    "what the rule reads",
    "single-process-arm": "LL015: the loader is built in one arm of an `if`/`else` whose other "
    "arm builds a `DistributedSampler` (`if multi_gpu: ... else: DataLoader(ds, sampler=s)`): "
    "this build serves the single-process run, where its sampler has nothing to do with ranks",
    "custom-from-pretrained": "LL021: the model class is the codebase's own (defined or imported "
    "from outside transformers/diffusers/peft): its `from_pretrained` may return it in train mode",
    "receiver-not-tensor": "LL020: the receiver is not recognisably a tensor or parameter (a "
    "module, a config): the assignment already has no effect on gradients",
    "model-class-unknown": "LL003: the model's class is not defined in the file, so which "
    "submodules it has and whether they train is not visible",
    "one-trained-submodule": "LL003: the model's class has fewer than two submodules with "
    "parameters that its `forward` uses, so no narrowing leaves a trained part out",
    "may-freeze": "LL003: the file freezes parameters (`requires_grad = False`, "
    "`requires_grad_(False)`, `.freeze()`) or detaches inside `forward`, so the parts left "
    "out may not train",
    "no-optimizer-restore": "LL008: the file never restores the optimizer "
    "(`opt.load_state_dict(...)`), so whether it resumes from this checkpoint is not visible",
    "stateless-optimizer": "LL002/LL008: the optimizer is plain SGD without momentum: it has no "
    "state to lose (LL002: and nothing in the file schedules its learning rate, no scheduler "
    "built over it and no write to its `param_groups`, so rebuilding it loses no schedule either)",
    "optimizer-not-built-here": "LL008: the optimizer is not built in the file, so whether it "
    "keeps state (plain SGD keeps none) is not visible",
    "optimizer-not-stepped": "LL008: nothing in the file steps the saved optimizer, itself or "
    "through a wrapper built from it (torchtune's `_optim_ckpt_wrapper` only checkpoints "
    "optimizers stepped in backward hooks): whether it trains here is not visible",
    "restore-not-removable": "LL008: the optimizer's `load_state_dict` is part of a larger "
    "expression that cannot be removed alone",
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
            # continuation lines keep the statement's indentation (inside brackets it is free)
            code = textwrap.indent(code, indent_of(where.start.line))
            replaced[where.start.line] = (where.end.line, code + "\n")
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


def _keeps_no_state(value: cst.BaseExpression) -> bool:
    """Plain SGD without momentum, judged by looplint's own definition
    (`optimizer_keeps_state`, a fact about torch's optimizers, not an inference): the
    generator and the rules must agree on which optimizers have no state to lose."""
    return isinstance(value, cst.Call) and not optimizer_keeps_state(_callee_name(value), value)


_SCHEDULER_CALL = re.compile(r"sched|Sched|LR|[Ww]armup")


def _scheduled(f: _File, optimizer: str) -> bool:
    """Whether something in the file may drive `optimizer`'s learning rate: a call named
    like a scheduler given it (`ReduceLROnPlateau(optimizer)`), or a write through its
    `param_groups` (`for g in optimizer.param_groups: g["lr"] = lr`). Rebuilding the
    optimizer then loses that schedule, stateless or not."""
    for call in f.all_calls:
        if _SCHEDULER_CALL.search(_callee_name(call)) and any(
            _last(f.ix.code(a.value)) == _last(optimizer) for a in call.args
        ):
            return True
    writes_lr = re.search(r"""\[\s*["']lr["']\s*\]\s*(?:[-+*/]?=)(?!=)""", f.text)
    return writes_lr is not None and f"{_last(optimizer)}.param_groups" in f.text


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
    if _keeps_no_state(assign.value) and not _scheduled(f, unit.key):
        out.exclusions.append(Exclusion("LL002", line, "stateless-optimizer"))
        return
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


def _clips_nothing(call: cst.Call) -> bool:
    """`clip_grad_value_(params, None)`: a threshold of `None` only measures the norm (VITS
    logs it), so the gradients it sees being scaled changes no update."""
    threshold = next(
        (
            a.value
            for a in call.args
            if a.keyword is not None and a.keyword.value in {"max_norm", "clip_value"}
        ),
        call.args[1].value if len(call.args) > 1 and call.args[1].keyword is None else None,
    )
    return isinstance(threshold, cst.Name) and threshold.value == "None"


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
                    and not _clips_nothing(c)
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


# ---------------------------------------------------------------- parameters (LL003, LL009)


def _parameters_of(expr: cst.BaseExpression, ix: _Index) -> str | None:
    """`model` for `model.parameters()` (no arguments), else None."""
    if (
        isinstance(expr, cst.Call)
        and not expr.args
        and isinstance(expr.func, cst.Attribute)
        and expr.func.attr.value == "parameters"
    ):
        return ix.code(expr.func.value)
    return None


def _params_arg(call: cst.Call) -> cst.Arg | None:
    """The argument an optimizer takes its parameters from: the first, or `params=`."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "params":
            return arg
    first = call.args[0] if call.args else None
    return first if first is not None and first.keyword is None and not first.star else None


def _unwrapped(expr: cst.BaseExpression) -> cst.BaseExpression:
    """`Net()` in `Net().to(device).train()`: the construction under device/mode moves."""
    while (
        isinstance(expr, cst.Call)
        and isinstance(expr.func, cst.Attribute)
        and expr.func.attr.value in {"to", "cuda", "cpu", "float", "double", "half", "train"}
    ):
        expr = expr.func.value
    return expr


_PARAMETERLESS = re.compile(
    r"^(ReLU6?|LeakyReLU|ELU|SELU|CELU|GELU|SiLU|Mish|Tanh|Sigmoid|Softmax2?d?|LogSoftmax|"
    r"Softplus|Hardtanh|Hardswish|Hardsigmoid|Tanhshrink|Softsign|\w*Dropout\w*|\w*Pool\w*|"
    r"Flatten|Unflatten|Identity|Upsample\w*|PixelShuffle|PixelUnshuffle|\w*Pad\dd|\w*Loss)$"
)
_CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict", "OrderedDict"})
_FREEZES = re.compile(
    r"requires_grad\s*=\s*False|requires_grad_\(\s*(requires_grad\s*=\s*)?False|\.freeze\w*\("
)


def _bears_parameters(value: cst.BaseExpression, ix: _Index) -> bool:
    """Whether `self.x = value` (a module construction) gives the model parameters."""
    value = _unwrapped(value)
    if not isinstance(value, cst.Call):
        return False
    own = _callee_name(value)
    if not own[:1].isupper() or _PARAMETERLESS.match(own):
        return False
    if own not in _CONTAINERS:
        return True
    inner = [_callee_name(c) for c in _walkall(value) if isinstance(c, cst.Call)]
    inner = [n for n in inner if n[:1].isupper() and n not in _CONTAINERS]
    if not inner:
        return bool(value.args)  # `nn.Sequential(*layers)`: layers built elsewhere
    return any(not _PARAMETERLESS.match(n) for n in inner)


def _trained_submodules(klass: cst.ClassDef, ix: _Index) -> list[str]:
    """`self.x` submodules with parameters built in `__init__` that another method (the
    forward pass) reads, in construction order."""
    init = next(
        (
            n
            for n in _walk(klass, into_functions=True)
            if isinstance(n, cst.FunctionDef) and n.name.value == "__init__"
        ),
        None,
    )
    if init is None:
        return []
    others = " ".join(
        ix.code(n)
        for n in _walk(klass, into_functions=False)
        if isinstance(n, cst.FunctionDef) and n is not init
    )
    found: list[str] = []
    for node in _walk(init, into_functions=False):
        if not isinstance(node, cst.Assign) or len(node.targets) != 1:
            continue
        target = ix.code(node.targets[0].target)
        if not re.fullmatch(r"self\.\w+", target) or not _bears_parameters(node.value, ix):
            continue
        name = target.removeprefix("self.")
        if name not in found and re.search(rf"self\.{name}\b(?!\s*=[^=])", others):
            found.append(name)
    return found


def _model_class(f: _File, model: str) -> cst.ClassDef | None:
    """The class of the file that `model` is built from (`model = Net(...)`)."""
    classes = {n.name.value: n for n in _walkall(f.ix.module) if isinstance(n, cst.ClassDef)}
    for node in _walkall(f.ix.module):
        if not isinstance(node, cst.Assign) or len(node.targets) != 1:
            continue
        if f.ix.code(node.targets[0].target) != model:
            continue
        built = _unwrapped(node.value)
        if isinstance(built, cst.Call) and _callee_name(built) in classes:
            return classes[_callee_name(built)]
    return None


def _ll003(f: _File, out: FileMutations) -> None:
    ix = f.ix
    keys = {u.key for u in f.units}
    for node in _walkall(ix.module):
        if not isinstance(node, cst.Assign) or len(node.targets) != 1:
            continue
        if ix.code(node.targets[0].target) not in keys or not isinstance(node.value, cst.Call):
            continue
        if not _builds_optimizer(ix, node.value):
            continue
        arg = _params_arg(node.value)
        model = _parameters_of(arg.value, ix) if arg is not None else None
        line_node = ix.parent.get(node)
        if model is None or arg is None or not isinstance(line_node, cst.SimpleStatementLine):
            continue
        line = ix.line(node)
        klass = _model_class(f, model)
        if klass is None:
            out.exclusions.append(Exclusion("LL003", line, "model-class-unknown"))
            continue
        trained = _trained_submodules(klass, ix)
        if len(trained) < 2:
            out.exclusions.append(Exclusion("LL003", line, "one-trained-submodule"))
            continue
        if _FREEZES.search(f.text) or re.search(r"\.detach\(|no_grad", ix.code(klass)):
            out.exclusions.append(Exclusion("LL003", line, "may-freeze"))
            continue
        kept = trained[0]
        narrowed = cst.parse_expression(f"{model}.{kept}.parameters()")
        new_line = line_node.deep_replace(arg.value, narrowed)
        assert isinstance(new_line, cst.SimpleStatementLine)
        text = _apply(ix, _Rewrite(replace=[(line_node, new_line)]))
        if text is not None:
            out.mutants.append(
                Mutant(
                    "LL003",
                    line,
                    f"`{ix.code(node.targets[0].target)}` built over `{model}.{kept}.parameters()`"
                    f" instead of `{model}.parameters()`; `{model}.{trained[1]}` trains too",
                    text,
                    ix.code(node.targets[0].target),
                )
            )


def _fresh_name(f: _File, scope: cst.CSTNode, attribute: bool) -> str | None:
    """A name for the shared generator that the scope (or, for `self.`, the file) lacks."""
    taken = _bound_names(scope) | f.module_names()
    for name in ("params", "parameters", "model_params", "trainable_params"):
        if attribute and not re.search(rf"\bself\.{name}\b", f.text):
            return f"self.{name}"
        if not attribute and name not in taken and not re.search(rf"\b{name}\b", f.ix.code(scope)):
            return name
    return None


def _ll009(f: _File, unit: _Unit, out: FileMutations) -> None:
    ix = f.ix
    built = _construction(f, unit)
    if built is None:
        return
    assign = built.body[0]
    assert isinstance(assign, cst.Assign) and isinstance(assign.value, cst.Call)
    arg = _params_arg(assign.value)
    model = _parameters_of(arg.value, ix) if arg is not None else None
    if model is None or arg is None:
        return
    local = ix.scope_of(built) is unit.scope and not unit.callers
    if not local and not model.startswith("self."):
        return
    clips = [
        c
        for c in unit.calls()
        if _CLIP.search(_callee_name(c))
        and c.args
        and _parameters_of(c.args[0].value, ix) == model
        and (not local or ix.scope_of(c) is unit.scope)
    ]
    clip_line = ix.statement(clips[0]) if clips else None
    if not isinstance(clip_line, cst.SimpleStatementLine):
        return
    name = _fresh_name(f, unit.scope, attribute=not local)
    if name is None:
        return
    shared = cst.parse_expression(name)
    new_built = built.deep_replace(arg.value, shared)
    new_clip = clip_line.deep_replace(clips[0].args[0].value, shared)
    assert isinstance(new_built, cst.SimpleStatementLine)
    assert isinstance(new_clip, cst.SimpleStatementLine)
    rewrite = _Rewrite(
        replace=[(built, new_built), (clip_line, new_clip)],
        before=[(built, f"{name} = {model}.parameters()")],
    )
    text = _apply(ix, rewrite)
    if text is not None:
        out.mutants.append(
            Mutant(
                "LL009",
                ix.line(clips[0]),
                f"`{name} = {model}.parameters()` (line {ix.line(built)}) handed to"
                f" `{unit.key}` and again to `{_callee_name(clips[0])}` (line"
                f" {ix.line(clips[0])})",
                text,
                name,
                _shape(unit),
            )
        )


# ---------------------------------------------------------------- checkpoints (LL008)


def _periodic(f: _File, node: cst.CSTNode, optimizer: str = "") -> bool:
    """Whether `node` runs during training: in a loop that steps an optimizer (or a unit),
    or that runs an epoch of training through a call (a function of the file holding a
    unit, `train(loader, model, optimizer)`; or, for a function of another file, one
    named like training and handed `optimizer`: `train_one_epoch(model, optimizer, ...)`);
    or in a function of the file that such a loop calls."""
    ix = f.ix
    training_functions = {
        name
        for name, defs in f.functions.items()
        if any(ix.within(step, d) for d in defs for u in f.units for step in u.steps)
    }

    def trains_through_call(loop: cst.CSTNode) -> bool:
        for call in _calls(loop, into_functions=False):
            name = _callee_name(call)
            if name in training_functions:
                return True
            if (
                optimizer
                and name not in f.functions
                and "train" in name.lower()
                and any(_last(ix.code(a.value)) == _last(optimizer) for a in call.args)
            ):
                return True
        return False

    def in_training_loop(n: cst.CSTNode) -> bool:
        return any(
            isinstance(up, _LOOPS)
            and (
                any(ix.within(s, up) or ix.within(up, u.region) for u in f.units for s in u.steps)
                or trains_through_call(up)
            )
            for up in ix.ancestors(n)
        ) or any(ix.within(n, u.region) for u in f.units if u.callers)

    if in_training_loop(node):
        return True
    function = next((a for a in ix.ancestors(node) if isinstance(a, cst.FunctionDef)), None)
    if function is None:
        return False
    return any(
        _callee_name(c) == function.name.value and in_training_loop(c)
        for c in f.all_calls
        if not ix.within(c, function)
    )


def _stateless_only(f: _File, optimizer: str) -> bool | None:
    """True when every construction of `optimizer` in the file is plain SGD without momentum,
    False when one keeps state, None when none is visible."""
    found: list[cst.Call] = []
    for node in _walkall(f.ix.module):
        if isinstance(node, cst.Assign) and isinstance(node.value, cst.Call):
            targets = {_last(f.ix.code(t.target)) for t in node.targets}
            if _last(optimizer) in targets and _builds_optimizer(f.ix, node.value):
                found.append(node.value)
    if not found:
        return None

    return all(_keeps_no_state(c) for c in found)


_RESTORE_HELPER = re.compile(r"restart|resume|load_checkpoint|load_ckpt", re.IGNORECASE)
"""Helpers that restore a training state from a checkpoint (`restart_from_checkpoint`)."""


def _without_argument(ix: _Index, arg: cst.Arg) -> tuple[cst.CSTNode, cst.CSTNode]:
    """The statement line holding `arg`'s call, and that line with `arg` dropped from it."""
    call = ix.parent[arg]
    assert isinstance(call, cst.Call)
    args = [a for a in call.args if a is not arg]
    if args and call.args[-1] is arg:
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    line = ix.statement(arg)
    new_line = line.deep_replace(call, call.with_changes(args=args))
    return line, new_line


def _stepped_here(f: _File, optimizer: str) -> bool:
    """Whether the file steps `optimizer` (`opt.step()`, `scaler.step(opt)`), itself or through
    a wrapper built from it (`distr_opt` out of `distribute(optimizer=opt)`)."""
    stepped = {_last(key) for u in f.units for key in [u.key, *u.keys_in_region]}
    stepped |= {_last(k) for c in f.all_calls if (k := f.step_key(c)) is not None}
    if _last(optimizer) in stepped:
        return True
    for node in _walkall(f.ix.module):
        if isinstance(node, cst.Assign) and any(
            isinstance(n, cst.Name) and n.value == _last(optimizer) for n in _walkall(node.value)
        ):
            targets = {
                _last(f.ix.code(el.value if isinstance(el, cst.Element) else el))
                for t in node.targets
                for el in (
                    t.target.elements if isinstance(t.target, (cst.Tuple, cst.List)) else [t.target]
                )
            }
            if targets & stepped:
                return True
    return False


def _state_of_optimizer(expr: cst.BaseExpression, ix: _Index) -> str | None:
    """`opt` for `opt.state_dict()` when `opt` is named like an optimizer."""
    if (
        isinstance(expr, cst.Call)
        and not expr.args
        and isinstance(expr.func, cst.Attribute)
        and expr.func.attr.value == "state_dict"
    ):
        receiver = ix.code(expr.func.value)
        return receiver if is_optimizer_expr(receiver) else None
    return None


def _ll008(f: _File, out: FileMutations) -> None:
    ix = f.ix
    restores = [
        c
        for c in f.all_calls
        if _method(c) == "load_state_dict" and is_optimizer_expr(ix.code(c.func.value))  # type: ignore[attr-defined]
    ]
    # `restart_from_checkpoint(path, state_dict=model, optimizer=optimizer)`: a restore
    # helper (of any file) handed the optimizer by keyword, which loads it from the
    # checkpoint's entry of that name
    helper_restores = [
        arg
        for c in f.all_calls
        if _RESTORE_HELPER.search(_callee_name(c))
        for arg in c.args
        if arg.keyword is not None and is_optimizer_expr(ix.code(arg.value))
    ]
    for node in _walkall(ix.module):
        entry: cst.CSTNode | None = None
        optimizer: str | None = None
        if isinstance(node, cst.DictElement):
            optimizer = _state_of_optimizer(node.value, ix)
            entry = node
        elif isinstance(node, cst.Assign) and len(node.targets) == 1:
            if isinstance(node.targets[0].target, cst.Subscript):
                optimizer = _state_of_optimizer(node.value, ix)
                entry = node
        elif (
            isinstance(node, cst.Arg)
            and node.keyword is not None
            and isinstance(call := ix.parent[node], cst.Call)
            and _callee_name(call) == "dict"
        ):
            # `state = dict(epoch=epoch, optimizer=optimizer.state_dict())`
            optimizer = _state_of_optimizer(node.value, ix)
            entry = node
        if optimizer is None or entry is None:
            continue
        line_node = ix.statement(entry)
        if not isinstance(line_node, cst.SimpleStatementLine):
            continue
        line = ix.line(entry)
        if not _periodic(f, entry, optimizer):
            continue
        mine = [c for c in restores if _last(ix.code(c.func.value)) == _last(optimizer)]  # type: ignore[attr-defined]
        handed = [
            arg for arg in helper_restores if _last(ix.code(arg.value)) == _last(optimizer)
        ]
        if not mine and not handed:
            out.exclusions.append(Exclusion("LL008", line, "no-optimizer-restore"))
            continue
        if not _stepped_here(f, optimizer):
            out.exclusions.append(Exclusion("LL008", line, "optimizer-not-stepped"))
            continue
        stateless = _stateless_only(f, optimizer)
        if stateless is None:
            out.exclusions.append(Exclusion("LL008", line, "optimizer-not-built-here"))
            continue
        if stateless:
            out.exclusions.append(Exclusion("LL008", line, "stateless-optimizer"))
            continue
        smalls = [_statement_of_call(ix, c) for c in mine]
        if any(s is None for s in smalls) or any(ix.within(c, line_node) for c in mine):
            out.exclusions.append(Exclusion("LL008", line, "restore-not-removable"))
            continue
        if isinstance(entry, cst.DictElement):
            literal = ix.parent[entry]
            assert isinstance(literal, cst.Dict)
            kept = [e for e in literal.elements if e is not entry]
            if kept and literal.elements[-1] is entry:
                kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            new_line = line_node.deep_replace(literal, literal.with_changes(elements=kept))
            assert isinstance(new_line, cst.SimpleStatementLine)
            replaced = [(line_node, new_line)]
        elif isinstance(entry, cst.Arg):
            replaced = [_without_argument(ix, entry)]
        else:
            replaced = _removal(ix, [entry])
        restore_lines = {id(ix.parent[s]) for s in smalls if s is not None}
        restore_lines |= {id(ix.statement(arg)) for arg in handed}
        if id(line_node) in restore_lines:
            continue
        unhanded = [_without_argument(ix, arg) for arg in handed]
        rewrite = _Rewrite(
            replace=replaced + unhanded + _removal(ix, [s for s in smalls if s is not None])
        )
        text = _apply(ix, rewrite)
        if text is not None:
            where = ", ".join(str(ix.line(c)) for c in [*mine, *handed])
            out.mutants.append(
                Mutant(
                    "LL008",
                    line,
                    f"removed `{ix.code(entry)[:60]}` from the checkpoint (line {line}) and"
                    f" `{optimizer}`'s restore (line {where})",
                    text,
                    optimizer,
                )
            )


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


def _without_division(
    ix: _Index,
    node: cst.CSTNode,
    window: str,
    is_loss: Callable[[str], bool],
    calls: Sequence[cst.Call] = (),
) -> cst.CSTNode | None:
    """`node` without the division of the loss by the window `N`, or None when it holds
    none: `loss /= N` becomes `pass`; an assignment to the loss, or one of `calls` (the
    backward calls), loses its `/ N`. Shared by both LL013 operators."""
    if (
        isinstance(node, cst.AugAssign)
        and isinstance(node.operator, cst.DivideAssign)
        and ix.code(node.value).strip("() ") == window
        and is_loss(ix.code(node.target))
    ):
        return cst.Pass()
    if (isinstance(node, cst.Call) and any(node is call for call in calls)) or (
        isinstance(node, cst.Assign) and any(is_loss(ix.code(t.target)) for t in node.targets)
    ):
        undivide = _Undivide(window)
        changed = node.visit(undivide)
        if undivide.changed and isinstance(changed, cst.CSTNode):
            return changed
    return None


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
        replacement = _without_division(ix, node, window, losses.__contains__, backwards)
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


def _handed_window(f: _File, call: cst.Call) -> str | None:
    """`N` of a keyword argument `update_grad=(i + 1) % N == 0` (`need_update=` in timm)."""
    for arg in call.args:
        if arg.keyword is not None and isinstance(arg.value, cst.Comparison):
            for node in _walkall(arg.value):
                if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo):
                    return f.ix.code(node.right)
    return None


def _ll013_scaler_calls(f: _File, out: FileMutations) -> None:
    """Remove the division of the loss by `N` before a timm-style scaler call that
    backpropagates every iteration and steps when told (`loss_scaler(loss, optimizer,
    update_grad=(i + 1) % N == 0)`, ConvNeXt, Swin, MAE): such a loop has no `.step()` of
    its own, so the per-unit operator never sees it. Only a division on the call's path
    (in a block that also holds the call) is removed; a loop already mutated by the
    per-unit operator is left alone."""
    ix = f.ix
    taken = {m.line for m in out.mutants if m.rule == "LL013"}
    for call in f.all_calls:
        window = _handed_window(f, call)
        positional = [a for a in call.args if a.keyword is None]
        if (
            window is None
            or len(positional) < 2
            or not isinstance(positional[0].value, cst.Name)
            or not any(is_optimizer_expr(ix.code(a.value)) for a in positional[1:])
        ):
            continue
        loop = ix.innermost_loop(call, ix.scope_of(call))
        if loop is None or any(
            isinstance(up, cst.If) and "%" in ix.code(up.test)
            for up in ix.ancestors(call)
            if ix.within(up, loop) and up is not loop
        ):
            continue
        loss = positional[0].value.value
        for node in _walk(loop):
            statement = ix.statement(node) if isinstance(node, cst.BaseSmallStatement) else None
            if statement is None or not isinstance(statement, cst.SimpleStatementLine):
                continue
            if len(statement.body) != 1 or ix.pos[statement].start.line > ix.line(call):
                continue
            block = ix.parent.get(statement)
            if block is None or not ix.within(call, block):
                continue  # another path of the loop (`else: loss /= N; loss.backward()`)
            replacement = _without_division(ix, node, window, loss.__eq__)
            if replacement is None:
                continue
            assert isinstance(replacement, cst.BaseSmallStatement)
            if ix.line(node) in taken:
                break
            new_line = statement.with_changes(body=[replacement])
            text = _apply(ix, _Rewrite(replace=[(statement, new_line)]))
            if text is not None:
                out.mutants.append(
                    Mutant(
                        "LL013",
                        ix.line(node),
                        f"removed the division by `{window}` from `{ix.code(node)[:60]}`"
                        f" (line {ix.line(node)}); `{_callee_name(call)}(...)` backpropagates"
                        " every iteration and steps when told by"
                        f" `{ix.code(call.args[-1].value)[:40]}`",
                        text,
                        loss,
                    )
                )
            break


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


# --------------------------------------------------------------------------- network definitions
# LL017-LL020 are about how a module is *defined*: their sites are the `nn.Module` classes of
# a file (recognised here by their bases, generously: `nn.Module`, `LightningModule`,
# `PreTrainedModel`, or a class of the same file that is one).

_MODULE_BASES = re.compile(
    r"^(?:(?:torch\.)?nn\.)?Module$|^(?:\w+\.)?LightningModule$|^(?:\w+\.)?PreTrainedModel$"
)
_CONSTRUCTOR = re.compile(r"^(?:(?:torch\.)?nn\.)?[A-Z]\w*$")
_NO_PARAMETER_LAYERS = re.compile(
    r"^(?:(?:torch\.)?nn\.)?(?:ReLU6?|GELU|SiLU|Mish|Tanh|Sigmoid|Softmax|LogSoftmax|Softplus|"
    r"LeakyReLU|ELU|SELU|CELU|Hardswish|Hardsigmoid|Hardtanh|Dropout\w*|AlphaDropout|Identity|"
    r"Flatten|Unflatten|\w*Pool\dd|Upsample|PixelShuffle|PixelUnshuffle|ZeroPad2d)$"
)
_DROPOUT_CALL = re.compile(
    r"^(?:(?:torch\.)?(?:nn\.)?functional\.|F\.)?dropout[123]?d?$|^(?:torch\.)?nn\.functional\.dropout[123]?d?$"
)


def _module_classes(f: _File) -> tuple[list[cst.ClassDef], list[cst.ClassDef]]:
    """The file's classes that are `nn.Module`s, and those deriving from a base defined
    elsewhere (which may or may not be one)."""
    classes = [n for n in _walkall(f.ix.module) if isinstance(n, cst.ClassDef)]
    by_name = {c.name.value: c for c in classes}
    known: dict[str, bool] = {}

    def is_module(klass: cst.ClassDef, seen: frozenset[str]) -> bool:
        if klass.name.value in known:
            return known[klass.name.value]
        result = False
        for base in klass.bases:
            text = f.ix.code(base.value)
            local = by_name.get(text)
            if local is not None and text not in seen:
                result = is_module(local, seen | {text})
            else:
                result = bool(_MODULE_BASES.match(text))
            if result:
                break
        known[klass.name.value] = result
        return result

    modules = [c for c in classes if is_module(c, frozenset({c.name.value}))]
    elsewhere = [
        c
        for c in classes
        if c not in modules
        and c.bases
        and not all(f.ix.code(b.value) in ("object", "ABC", "abc.ABC") for b in c.bases)
    ]
    return modules, elsewhere


def _methods(klass: cst.ClassDef) -> list[cst.FunctionDef]:
    body = klass.body.body if isinstance(klass.body, cst.IndentedBlock) else ()
    return [s for s in body if isinstance(s, cst.FunctionDef)]


def _self_stores(f: _File, klass: cst.ClassDef, attribute: str) -> list[cst.CSTNode]:
    """Assignments to `self.<attribute>` anywhere in the class."""
    found: list[cst.CSTNode] = []
    for node in _walk(klass, into_functions=True):
        if isinstance(node, (cst.Assign, cst.AnnAssign)):
            targets = (
                [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            )
            flat: list[cst.CSTNode] = []
            for target in targets:
                flat.extend(_walkall(target) if isinstance(target, cst.Tuple) else [target])
            if any(f.ix.code(t) == f"self.{attribute}" for t in flat):  # type: ignore[arg-type]
                found.append(node)
    return found


def _handed_on(f: _File, klass: cst.ClassDef, attribute: str) -> bool:
    """Whether `self.<attribute>` is an argument of a call in the class (other than `len`)."""
    for call in _calls(klass, into_functions=True):
        if _callee_name(call) in ("len", "isinstance"):
            continue
        for arg in call.args:
            if re.search(rf"\bself\.{re.escape(attribute)}\b", f.ix.code(arg.value)):
                return True
    return False


def _fresh_layers(f: _File, node: cst.CSTNode) -> list[str]:
    """Constructor calls (`nn.Linear(...)`, `Block(cfg)`) inside a container expression."""
    return [
        f.ix.code(c.func)
        for c in _calls(node)
        if _CONSTRUCTOR.match(f.ix.code(c.func)) and not f.ix.code(c.func).startswith("ModuleList")
    ]


def _ll017(f: _File, out: FileMutations) -> None:
    modules, elsewhere = _module_classes(f)
    for klass in elsewhere:
        for method in _methods(klass):
            if method.name.value == "__init__" and any(
                re.search(r"Module(?:List|Dict)\(", f.ix.code(c.func) + "(") for c in _calls(method)
            ):
                out.exclusions.append(Exclusion("LL017", f.ix.line(klass), "base-elsewhere"))
    for klass in modules:
        init = next((m for m in _methods(klass) if m.name.value == "__init__"), None)
        if init is None:
            continue
        for node in _walk(init):
            if not (isinstance(node, cst.Assign) and len(node.targets) == 1):
                continue
            target = f.ix.code(node.targets[0].target)
            value = node.value
            if not (target.startswith("self.") and isinstance(value, cst.Call)):
                continue
            callee = f.ix.code(value.func)
            kind = re.sub(r"^(?:torch\.)?(?:nn\.)?", "", callee)
            if kind not in ("ModuleList", "ModuleDict") or len(value.args) > 1:
                continue
            attribute = target.removeprefix("self.")
            line = f.ix.line(node)
            if not attribute.isidentifier():
                out.exclusions.append(Exclusion("LL017", line, "not-own-attribute"))
                continue
            replacement = _plain_container(f, init, value, attribute)
            if replacement is None:
                out.exclusions.append(Exclusion("LL017", line, "no-fresh-layers"))
                continue
            layers = _fresh_layers(f, replacement[1])
            if layers and all(_without_parameters(f, name) for name in layers):
                out.exclusions.append(Exclusion("LL017", line, "parameterless-layers"))
                continue
            if len(_self_stores(f, klass, attribute)) > 1:
                out.exclusions.append(Exclusion("LL017", line, "rebound"))
                continue
            if _handed_on(f, klass, attribute):
                out.exclusions.append(Exclusion("LL017", line, "handed-on"))
                continue
            if re.search(rf"\bself\.{re.escape(attribute)}\.(?!{_CONTAINER_METHODS})\w+\(", f.text):
                out.exclusions.append(Exclusion("LL017", line, "module-method-called"))
                continue
            statement = f.ix.statement(node)
            new = cst.parse_statement(
                _source_of(f.ix, statement).replace(f.ix.code(value), replacement[0], 1)
            )
            text = _apply(f.ix, _Rewrite(replace=[(statement, new)]))
            if text is not None:
                out.mutants.append(
                    Mutant(
                        "LL017",
                        line,
                        f"`{target} = {callee}(...)` became a plain "
                        + ("dict" if "Dict" in kind else "list"),
                        text,
                        target,
                        "module",
                    )
                )


def _without_parameters(f: _File, name: str) -> bool:
    """A layer with no parameters: a torch one (`nn.ReLU`), or a class of the file whose
    code builds no layer and no `Parameter` (buffers only, like a fixed transform)."""
    if _NO_PARAMETER_LAYERS.match(name):
        return True
    local = next(
        (c for c in _walkall(f.ix.module) if isinstance(c, cst.ClassDef) and c.name.value == name),
        None,
    )
    if local is None:
        return False
    code = f.ix.code(local)
    return not re.search(r"\bParameter\(|\bnn\.(?!ReLU|GELU|Dropout|Identity)[A-Z]\w*\(", code)


_CONTAINER_METHODS = r"(?:append|extend|insert|values|items|keys|index|count|get|pop|update)\b"
"""Methods a plain list or dict has too: calling them on the container cannot fail."""


def _plain_container(
    f: _File, init: cst.FunctionDef, value: cst.Call, attribute: str
) -> tuple[str, cst.CSTNode] | None:
    """The text replacing `nn.ModuleList(arg)` and the node holding its layers, when the
    layers are built fresh there (or in a local list of `__init__`, or appended later)."""
    if not value.args:
        appended = [
            c
            for c in _calls(init)
            if _method(c) in ("append", "insert", "extend")
            and f.ix.code(c.func.value) == f"self.{attribute}"  # type: ignore[attr-defined]
        ]
        if appended and all(_fresh_layers(f, c.args[-1].value) for c in appended if c.args):
            return "[]", appended[0]
        return None
    arg = value.args[0].value
    if isinstance(arg, (cst.List, cst.ListComp, cst.Dict, cst.DictComp)):
        return (f.ix.code(arg), arg) if _fresh_layers(f, arg) else None
    if isinstance(arg, cst.GeneratorExp):
        text = f.ix.code(arg)
        if not _fresh_layers(f, arg):
            return None
        return ("[" + text[1:-1] + "]" if text.startswith("(") else f"[{text}]"), arg
    if isinstance(arg, cst.Name):
        for node in _walk(init):
            if isinstance(node, cst.Assign) and any(
                f.ix.code(t.target) == arg.value for t in node.targets
            ):
                held = node.value
                if isinstance(held, (cst.List, cst.ListComp)) and _fresh_layers(f, held):
                    return arg.value, held
                if isinstance(held, cst.List) and not held.elements:
                    appends = [
                        c
                        for c in _calls(init)
                        if _method(c) == "append" and f.ix.code(c.func.value) == arg.value  # type: ignore[attr-defined]
                    ]
                    if appends and all(
                        _fresh_layers(f, c.args[0].value) for c in appends if c.args
                    ):
                        return arg.value, appends[0]
    return None


def _ll018(f: _File, out: FileMutations) -> None:
    modules, _ = _module_classes(f)
    for klass in modules:
        for node in _walk(klass, into_functions=True):
            if not (isinstance(node, cst.Assign) and len(node.targets) == 1):
                continue
            target = f.ix.code(node.targets[0].target)
            value = node.value
            if not (
                target.startswith("self.")
                and isinstance(value, cst.Call)
                and re.match(r"^(?:(?:torch\.)?nn\.)?Parameter$", f.ix.code(value.func))
                and value.args
            ):
                continue
            tensor = value.args[0].value
            device = None
            if isinstance(tensor, cst.Call):
                device = next(
                    (
                        a
                        for a in tensor.args
                        if a.keyword is not None and a.keyword.value == "device"
                    ),
                    None,
                )
            call_text = f.ix.code(value)
            if device is not None:
                assert isinstance(tensor, cst.Call)
                kept = [a for a in tensor.args if a is not device]
                if kept:
                    kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
                inner = _EMPTY.code_for_node(tensor.with_changes(args=kept))
                moved = call_text.replace(f.ix.code(tensor), inner, 1)
                new_text = f"{moved}.to({f.ix.code(device.value)})"
                how = f"`device={f.ix.code(device.value)}` moved to `.to(...)` after the wrap"
            else:
                new_text = f"{call_text}.cuda()"
                how = "`.cuda()` added after the wrap"
            statement = f.ix.statement(node)
            new = cst.parse_statement(_source_of(f.ix, statement).replace(call_text, new_text, 1))
            text = _apply(f.ix, _Rewrite(replace=[(statement, new)]))
            if text is not None:
                out.mutants.append(
                    Mutant(
                        "LL018",
                        f.ix.line(node),
                        f"`{target} = nn.Parameter(...)`: {how}",
                        text,
                        target,
                        "module",
                    )
                )


def _ll019(f: _File, out: FileMutations) -> None:
    modules, _ = _module_classes(f)
    for klass in modules:
        for call in _calls(klass, into_functions=True):
            if not _DROPOUT_CALL.match(f.ix.code(call.func)):
                continue
            alias = f.ix.code(call.func).split(".", 1)[0]
            if "." in f.ix.code(call.func) and not re.search(
                rf"^\s*(?:import|from)\s.*\b{re.escape(alias)}\b", f.text, re.MULTILINE
            ):
                out.exclusions.append(Exclusion("LL019", f.ix.line(call), "callee-not-imported"))
                continue
            training = next(
                (a for a in call.args if a.keyword is not None and a.keyword.value == "training"),
                None,
            )
            positional = [a for a in call.args if a.keyword is None]
            if training is None and len(positional) >= 3:
                training = positional[2]
            if training is None:
                continue
            line = f.ix.line(call)
            if f.ix.code(training.value) in ("True", "False"):
                out.exclusions.append(Exclusion("LL019", line, "training-forced"))
                continue
            guards = [
                up
                for up in f.ix.ancestors(call)
                if isinstance(up, cst.If) and "training" in f.ix.code(up.test)
            ]
            if guards:
                out.exclusions.append(Exclusion("LL019", line, "guarded-by-mode"))
                continue
            kept = [
                a
                for a in call.args
                if a is not training and (a.keyword is not None or positional.index(a) < 2)
            ]
            if kept:
                kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            statement = f.ix.statement(call)
            if not isinstance(statement, cst.SimpleStatementLine):
                continue
            new_call = _EMPTY.code_for_node(call.with_changes(args=kept))
            source = _source_of(f.ix, statement)
            if f.ix.code(call) not in source:
                continue
            new = cst.parse_statement(source.replace(f.ix.code(call), new_call, 1))
            text = _apply(f.ix, _Rewrite(replace=[(statement, new)]))
            if text is not None:
                out.mutants.append(
                    Mutant(
                        "LL019",
                        line,
                        f"removed the `training` argument of `{f.ix.code(call.func)}`",
                        text,
                        f.ix.code(call.func),
                        "module",
                    )
                )


_TENSOR_RECEIVER = re.compile(r"(?:^|\.)(?:weight|bias)$|param|^p$|^w$|^v$|^tensor|embedding")


def _ll020(f: _File, out: FileMutations) -> None:
    for node in _walkall(f.ix.module):
        if not (isinstance(node, cst.Assign) and len(node.targets) == 1):
            continue
        target = node.targets[0].target
        if not (isinstance(target, cst.Attribute) and target.attr.value == "requires_grad"):
            continue
        receiver = f.ix.code(target.value)
        line = f.ix.line(node)
        if not _TENSOR_RECEIVER.search(receiver.split(".")[-1]) and not _iterates_parameters(
            f, node, receiver
        ):
            out.exclusions.append(Exclusion("LL020", line, "receiver-not-tensor"))
            continue
        statement = f.ix.statement(node)
        source = _source_of(f.ix, statement)
        new = cst.parse_statement(source.replace(".requires_grad", ".require_grad", 1))
        text = _apply(f.ix, _Rewrite(replace=[(statement, new)]))
        if text is not None:
            out.mutants.append(
                Mutant(
                    "LL020",
                    line,
                    f"`{receiver}.requires_grad` misspelt `require_grad`",
                    text,
                    receiver,
                    "definition",
                )
            )


def _iterates_parameters(f: _File, node: cst.CSTNode, receiver: str) -> bool:
    for up in f.ix.ancestors(node):
        if isinstance(up, cst.For) and receiver in f.ix.code(up.target).replace(" ", "").split(","):
            return "parameters(" in f.ix.code(up.iter) or "param" in f.ix.code(up.iter)
    return False


# --------------------------------------------------------------------------- LL015, LL021

_KEEPS_MODE = re.compile(
    r"^(?:prepare|prepare_model|DistributedDataParallel|DataParallel|DDP|FSDP|compile|"
    r"get_peft_model|accumulate|no_sync|unwrap_model|get_state_dict|save_model|print|len|"
    r"isinstance|hasattr|type|id|str|repr)$"
)


def _ll021(f: _File, out: FileMutations) -> None:
    """Remove every `.train()` of a model loaded with `from_pretrained` and trained here."""
    ix = f.ix
    loaded: dict[str, set[cst.CSTNode]] = {}
    for node in _walkall(ix.module):
        if (
            isinstance(node, cst.Assign)
            and len(node.targets) == 1
            and ".from_pretrained(" in ix.code(node.value)
            and isinstance(node.value, cst.Call)
        ):
            receiver = ix.code(node.value).split(".from_pretrained(", 1)[0].split(".")[0]
            if re.search(
                rf"^\s*(?:from|import)\s+(?!transformers|diffusers|peft)[\w.]*\s*(?:import\s[^\n]*)?"
                rf"\b{re.escape(receiver)}\b|^class\s+{re.escape(receiver)}\b",
                f.text,
                re.MULTILINE,
            ):
                out.exclusions.append(Exclusion("LL021", ix.line(node), "custom-from-pretrained"))
                continue
            loaded.setdefault(ix.code(node.targets[0].target), set()).add(ix.scope_of(node))
    if not loaded or not f.units:
        return
    trained_calls = [c for u in f.units for c in u.calls()]
    for model in sorted(loaded):
        if not any(model in ix.code(c) for c in trained_calls):
            continue
        trains = [
            c
            for c in f.all_calls
            if _method(c) == "train"
            and isinstance(c.func, cst.Attribute)
            and ix.code(c.func.value) == model
            and (not c.args or ix.code(c.args[0].value) in ("True", "mode=True"))
        ]
        if not trains:
            continue
        line = ix.line(trains[0])
        if not any(
            _reaches(f, scope, ix.scope_of(t), model) for t in trains for scope in loaded[model]
        ):
            out.exclusions.append(Exclusion("LL021", line, "train-of-another-model"))
            continue
        smalls = [_statement_of_call(ix, t) for t in trains]
        if any(s is None for s in smalls):
            out.exclusions.append(Exclusion("LL021", line, "train-in-chain"))
            continue
        handed = [
            c
            for c in f.all_calls
            if any(ix.code(a.value) == model for a in c.args)
            and not _KEEPS_MODE.match(_callee_name(c))
            and not f.functions.get(_callee_name(c))
        ]
        if handed:
            out.exclusions.append(Exclusion("LL021", line, "handed-to-unseen-code"))
            continue
        if _helper_trains(f, model):
            out.exclusions.append(Exclusion("LL021", line, "helper-may-train"))
            continue
        text = _apply(ix, _Rewrite(replace=_removal(ix, [s for s in smalls if s is not None])))
        if text is not None:
            where = ", ".join(str(ix.line(t)) for t in trains)
            out.mutants.append(
                Mutant(
                    "LL021",
                    line,
                    f"removed `{model}.train()` (line {where}) of a "
                    "`from_pretrained` model trained in this file",
                    text,
                    model,
                )
            )


def _reaches(f: _File, loading: cst.CSTNode, training: cst.CSTNode, model: str) -> bool:
    """Whether a `.train()` in scope `training` can be on the model loaded in scope `loading`:
    the same scope, a module-level model, or a function of the file that `loading` gives
    the model to by argument."""
    if training is loading or isinstance(loading, cst.Module):
        return True
    return isinstance(training, cst.FunctionDef) and any(
        training in f.functions.get(_callee_name(c), [])
        and any(f.ix.code(a.value) == model for a in c.args)
        for c in _calls(loading)
    )


def _helper_trains(f: _File, model: str) -> bool:
    """Whether `model` is given to a function of the file that calls `.train()` on something
    (its parameter), or a `self.train()` stays in a class method."""
    for call in f.all_calls:
        if not any(f.ix.code(a.value) == model for a in call.args):
            continue
        for function in f.functions.get(_callee_name(call), []):
            if any(_method(c) == "train" for c in _calls(function, True)):
                return True
    return any(
        _method(c) == "train" and f.ix.code(c.func.value) == "self"  # type: ignore[attr-defined]
        for c in f.all_calls
    )


def _loader_calls(f: _File) -> list[tuple[str, cst.Call]]:
    """`name = DataLoader(...)` assignments of the file."""
    found: list[tuple[str, cst.Call]] = []
    for node in _walkall(f.ix.module):
        if (
            isinstance(node, cst.Assign)
            and len(node.targets) == 1
            and isinstance(node.value, cst.Call)
            and _callee_name(node.value) == "DataLoader"
        ):
            found.append((f.ix.code(node.targets[0].target), node.value))
    return found


def _iterated_in_units(f: _File, name: str) -> list[cst.For]:
    """`for` loops over `name` (through `enumerate`/`tqdm`) that hold or call a training unit."""
    loops: list[cst.For] = []
    for node in _walkall(f.ix.module):
        if isinstance(node, cst.For) and re.search(
            rf"(?:^|\()\s*{re.escape(name)}\s*(?:$|[,)])", f.ix.code(node.iter)
        ):
            if any(f.ix.within(u.region, node) or u.region is node for u in f.units):
                loops.append(node)
            elif any(f.ix.within(c, node) for u in f.units for c in u.callers):
                loops.append(node)
    return loops


def _single_process_arm(f: _File, call: cst.Call) -> bool:
    """Whether `call` sits in an arm of its innermost `if`/`else` that builds no
    `DistributedSampler` while the other arm does."""
    ix = f.ix
    for up in ix.ancestors(call):
        if isinstance(up, (*_LOOPS, cst.FunctionDef)):
            return False
        if isinstance(up, cst.If) and up.orelse is not None:
            arms = (up.body, up.orelse)
            mine = next(a for a in arms if ix.within(call, a))
            other = next(a for a in arms if a is not mine)
            return "DistributedSampler" in ix.code(other) and "DistributedSampler" not in ix.code(
                mine
            )
    return False


def _ll015(f: _File, out: FileMutations) -> None:
    ix = f.ix
    text = f.text
    for name, call in _loader_calls(f):
        loops = _iterated_in_units(f, name)
        if not loops:
            continue
        line = ix.line(call)
        sampler = next(
            (a for a in call.args if a.keyword is not None and a.keyword.value == "sampler"), None
        )
        if sampler is None:
            continue
        handed = [
            c
            for c in f.all_calls
            if any(ix.code(a.value) == name for a in c.args)
            and _callee_name(c) not in ("len", "enumerate", "tqdm", "iter", "zip", "print")
            and not f.functions.get(_callee_name(c))
        ]
        if handed:
            out.exclusions.append(Exclusion("LL015", line, "handed-to-unseen-code"))
            continue
        if any(a.star for a in call.args):
            out.exclusions.append(Exclusion("LL015", line, "open-ended-arguments"))
            continue
        if _single_process_arm(f, call):
            out.exclusions.append(Exclusion("LL015", line, "single-process-arm"))
            continue
        sampler_text = ix.code(sampler.value)
        # (a) the sampler removed, in a DDP script: every rank iterates everything
        if "DistributedDataParallel" in text and not re.search(
            r"rank|world|shard|split_dataset|IterableDataset",
            ix.code(call.args[0].value) if call.args else "",
        ):
            kept = [a for a in call.args if a is not sampler]
            kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            new_call = _EMPTY.code_for_node(call.with_changes(args=kept))
            statement = ix.statement(call)
            source = _source_of(ix, statement)
            if ix.code(call) in source:
                new = cst.parse_statement(source.replace(ix.code(call), new_call, 1))
                mutated = _apply(ix, _Rewrite(replace=[(statement, new)]))
                if mutated is not None:
                    out.mutants.append(
                        Mutant(
                            "LL015",
                            line,
                            f"removed `sampler={sampler_text}` from the DDP "
                            f"training loader `{name}`",
                            mutated,
                            name,
                        )
                    )
        # (b) set_epoch removed: the same order every epoch
        sets = [c for c in f.all_calls if _method(c) == "set_epoch"]
        if not sets or not any(
            isinstance(up, _LOOPS) for loop in loops for up in ix.ancestors(loop)
        ):
            continue
        smalls = [_statement_of_call(ix, c) for c in sets]
        set_line = ix.line(sets[0])
        if any(s is None for s in smalls):
            out.exclusions.append(Exclusion("LL015", set_line, "set-epoch-in-expression"))
            continue
        if any(
            _callee_name(c) == "DistributedSampler"
            and any(
                a.keyword is not None
                and a.keyword.value == "shuffle"
                and ix.code(a.value) == "False"
                for a in c.args
            )
            for c in f.all_calls
        ):
            out.exclusions.append(Exclusion("LL015", set_line, "no-shuffle"))
            continue
        mutated = _apply(ix, _Rewrite(replace=_removal(ix, [s for s in smalls if s is not None])))
        if mutated is not None:
            out.mutants.append(
                Mutant(
                    "LL015",
                    set_line,
                    f"removed every `set_epoch(...)` call (sampler of `{name}`)",
                    mutated,
                    name,
                )
            )


# --------------------------------------------------------------------------- entry point


@dataclass(frozen=True, slots=True)
class Operator:
    """How one rule's bug is injected: once per training unit, or once per file (the operator
    finds its own sites, e.g. every `.train()` of a loop that also evaluates)."""

    rule: str
    per_unit: Callable[[_File, _Unit, FileMutations], None] | None = None
    per_file: Callable[[_File, FileMutations], None] | None = None
    needs_units: bool = True
    """False when the operator may find sites in a file without any training unit."""


OPERATORS: tuple[Operator, ...] = (
    Operator("LL001", per_unit=_ll001),
    Operator("LL002", per_unit=_ll002),
    Operator("LL003", per_file=_ll003),
    Operator("LL004", per_file=_ll004),
    Operator("LL005", per_unit=_ll005),
    Operator("LL006", per_file=_ll006),
    Operator("LL007", per_file=_ll007),
    Operator("LL008", per_file=_ll008),
    Operator("LL009", per_unit=_ll009),
    Operator("LL010", per_unit=_ll010),
    Operator("LL011", per_file=_ll011, needs_units=False),
    Operator("LL012", per_file=_ll012, needs_units=False),
    Operator("LL013", per_unit=_ll013, per_file=_ll013_scaler_calls, needs_units=False),
    Operator("LL014", per_file=_ll014, needs_units=False),
    Operator("LL015", per_file=_ll015),
    Operator("LL016", per_unit=_ll016),
    Operator("LL017", per_file=_ll017, needs_units=False),
    Operator("LL018", per_file=_ll018, needs_units=False),
    Operator("LL019", per_file=_ll019, needs_units=False),
    Operator("LL020", per_file=_ll020, needs_units=False),
    Operator("LL021", per_file=_ll021),
)
"""One row per rule with a natural mutation, in report order. A new rule's mutation is one
function and one row here."""

RULES: tuple[str, ...] = tuple(o.rule for o in OPERATORS)


def mutate(text: str, rules: Sequence[str] = RULES) -> FileMutations:
    """All mutants (and exclusions) of the selected rules for one file's text.

    Raises `cst.ParserSyntaxError` for a file LibCST cannot parse.
    """
    out = FileMutations()
    chosen = [o for o in OPERATORS if o.rule in rules]
    f = _File(text)
    if not f.units and all(o.needs_units for o in chosen):
        return out
    for unit in f.units:
        for operator in chosen:
            if operator.per_unit is not None:
                operator.per_unit(f, unit, out)
    for operator in chosen:
        if operator.per_file is not None:
            operator.per_file(f, out)
    # units nested in one another can propose the same edit twice
    unique = {(m.rule, m.line, m.description): m for m in out.mutants}
    out.mutants = list(unique.values())
    out.exclusions = list(dict.fromkeys(out.exclusions))
    return out
