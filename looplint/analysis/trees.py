"""Execution trees: each function's events resolved to training-loop operations.

Every call, step, clear and construction is resolved to the identities of
`looplint.analysis.recognition`; calls to same-module functions made inside loops are
inlined with their arguments bound, and calls into other modules are replaced by
those functions' summaries (`looplint.analysis.linking.instantiate`), so a rule sees
what one iteration of a loop really runs.
"""

from __future__ import annotations

import re

import libcst as cst

from looplint.analysis.callers import grad_switches
from looplint.analysis.catalog import PER_BATCH_METHODS, ObjectKind
from looplint.analysis.imports import ImportTable
from looplint.analysis.linking import Linker, instantiate
from looplint.analysis.naming import reads_by_name
from looplint.analysis.operations import (
    Append,
    Assign,
    Backward,
    Branch,
    Clear,
    Clip,
    Construct,
    Context,
    Escape,
    Forward,
    Item,
    LoadState,
    Loop,
    ModeSwitch,
    Reinit,
    Save,
    ScalerCall,
    SchedulerStep,
    Step,
)
from looplint.analysis.parameters import maximal_chains
from looplint.analysis.program import (
    AssignEvent,
    BranchEvent,
    CallEvent,
    Event,
    FunctionInfo,
    LoopEvent,
    ModuleProgram,
    WithEvent,
    all_events,
    calls_in,
)
from looplint.analysis.recognition import ObjectInfo, ObjectTable
from looplint.analysis.scopes import Frame, Scopes, parameters_of, symbolic
from looplint.analysis.summary import mode_switched
from looplint.analysis.syntax import (
    argument,
    call_name,
    children,
    descendants,
    dotted_name,
    positional_args,
    unchained,
)

MAX_INLINE_DEPTH = 4
_PARAMETER_ACCESSORS = frozenset(
    {"parameters", "named_parameters", "children", "modules", "state_dict", "buffers"}
)
_GRAD_CLEARING_METHODS = frozenset({"zero_", "detach_", "fill_", "mul_"})
_CLIPPERS = frozenset(
    {
        "torch.nn.utils.clip_grad_norm_",
        "torch.nn.utils.clip_grad_value_",
        "torch.nn.utils.clip_grad.clip_grad_norm_",
        "torch.nn.utils.clip_grad.clip_grad_value_",
    }
)
_CLIPPING_METHODS = frozenset({"clip_grad_norm_", "clip_grad_value_"})
"""`accelerator.clip_grad_norm_(...)`, FSDP's `model.clip_grad_norm_(...)`: clips all the same."""
_SCALER_METHODS = frozenset({"scale", "unscale_", "update"})
_DETACHING_METHODS = frozenset({"item", "detach", "cpu", "tolist", "numpy", "detach_"})
_DETACHING_FUNCTIONS = frozenset({"float", "int", "bool", "str"})
_ENGINE_WORDS = ("accelerator", "engine", "fabric", "trainer")


def _calls_method(expression: cst.CSTNode, names: frozenset[str]) -> bool:
    stack: list[cst.CSTNode] = [expression]
    while stack:
        node = stack.pop()
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value in names
        ):
            return True
        stack.extend(children(node))
    return False


def detaches(expression: cst.CSTNode) -> bool:
    """Whether the value is cut from the autograd graph (`.item()`, `.detach()`, `float()`)."""
    for node in (expression, *descendants(expression)):
        if isinstance(node, cst.Call):
            func = node.func
            if isinstance(func, cst.Attribute) and func.attr.value in _DETACHING_METHODS:
                return True
            if isinstance(func, cst.Name) and func.value in _DETACHING_FUNCTIONS:
                return True
        elif isinstance(node, cst.Attribute) and node.attr.value == "data":
            return True
    return False


_READS_ONLY = frozenset(
    {
        "clip_gradients", "clip_grad_norm_", "clip_grad_value_", "clip_grad_norm",
        "unscale_gradients", "log", "log_dict", "print", "info", "debug", "warning", "len",
        "isinstance", "getattr", "hasattr", "type", "id", "str", "repr", "get_lr",
        "get_last_lr", "state_dict", "add_scalar", "add_scalars",
        "scale_loss", "master_params",  # apex.amp: scales the loss, lists fp32 parameters
    }
)  # fmt: skip
"""Calls known to read an optimizer handed to them, never to step or clear it."""


_REINITIALISERS = frozenset(
    {
        "reset_parameters", "init_weights", "_init_weights", "apply", "normal_", "uniform_",
        "trunc_normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
        "kaiming_normal_", "orthogonal_", "copy_",
    }
)  # fmt: skip
"""In-place re-initialisation: of a model (`reset_parameters()`) or of a tensor."""
_PARAMETER_ITERATORS = frozenset(
    {"parameters", "modules", "children", "named_parameters", "named_modules", "named_children"}
)


def _holds_anywhere(items: tuple[Item, ...], kind: type[Item]) -> bool:
    """Whether a resolved body holds an operation of `kind` on some path, nested or not."""
    pending = list(items)
    while pending:
        item = pending.pop()
        if isinstance(item, kind):
            return True
        if isinstance(item, (Loop, Context)):
            pending.extend(item.body)
        elif isinstance(item, Branch):
            for arm in item.arms:
                pending.extend(arm)
    return False


def _reinitialises(items: tuple[Item, ...]) -> bool:
    """Whether a resolved body re-initialises weights in place anywhere."""
    return _holds_anywhere(items, Reinit)


def _clears_anywhere(items: tuple[Item, ...]) -> bool:
    """Whether a resolved body clears gradients on some path (`p.grad = None`, `zero_()`)."""
    return _holds_anywhere(items, Clear)


def _is_zero(node: cst.BaseExpression | None) -> bool:
    return isinstance(node, (cst.Integer, cst.Float)) and float(node.value) == 0


def _is_false(node: cst.BaseExpression | None) -> bool:
    return isinstance(node, cst.Name) and node.value == "False"


def _is_grad_attribute(node: cst.BaseExpression) -> bool:
    """`p.grad` or `p.grad.data`."""
    if isinstance(node, cst.Attribute) and node.attr.value == "data":
        node = node.value
    return isinstance(node, cst.Attribute) and node.attr.value == "grad"


def _scaled_loss(value: cst.BaseExpression) -> cst.BaseExpression | None:
    """The loss inside `scaler.scale(loss)` (also through `typing.cast(Tensor, ...)`, which
    returns its value unchanged), else None."""
    value = _uncast(value)
    if (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value == "scale"
        and value.args
    ):
        return value.args[0].value
    return None


def _uncast(value: cst.BaseExpression) -> cst.BaseExpression:
    """`x` in `cast(torch.Tensor, x)` / `typing.cast(...)`: a cast for the type checker
    returns its argument unchanged."""
    while (
        isinstance(value, cst.Call)
        and dotted_name(value.func) in ("cast", "typing.cast")
        and len(value.args) == 2
    ):
        value = value.args[1].value
    return value


def backward_of(call: cst.Call, frame: Frame, scopes: Scopes) -> Backward:
    """The backward pass `call` runs: what it differentiates, and whether it is scaled."""
    func = call.func
    assert isinstance(func, cst.Attribute)
    receiver = _uncast(func.value)
    loss = _scaled_loss(receiver)
    if loss is not None:
        return Backward(call, scopes.identity(loss, frame), scaled=True)
    if isinstance(receiver, cst.Name) and receiver.value in frame.scaled:
        return Backward(call, scopes.identity(receiver, frame), scaled=True)
    receiver_name = (dotted_name(receiver) or "").lower()
    engine = func.attr.value == "manual_backward" or any(
        word in receiver_name.rsplit(".", 1)[-1] for word in _ENGINE_WORDS
    )
    if engine:
        first = argument(call, 0, "loss")
        return Backward(call, scopes.identity(first, frame) if first is not None else None)
    return Backward(
        call, scopes.identity(receiver, frame) or _entry_identity(receiver, frame, scopes)
    )


def _entry_identity(receiver: cst.BaseExpression, frame: Frame, scopes: Scopes) -> str | None:
    """`out["loss"]` for `out["loss"].backward()`: the entry of a container (a model's
    output dict) that holds the graph; its container keeps the graph too."""
    if not isinstance(receiver, cst.Subscript) or len(receiver.slice) != 1:
        return None
    index = receiver.slice[0].slice
    if not isinstance(index, cst.Index) or not isinstance(
        index.value, (cst.SimpleString, cst.Integer)
    ):
        return None
    container = scopes.identity(receiver.value, frame)
    return f"{container}[{index.value.value}]" if container is not None else None


_SAVE_HELPER = re.compile(r"^save(_\w*)?$|_save$|^save\w*(checkpoint|ckpt|state|model)\w*$")
"""`save_checkpoint`, `save_ckpt`, `save_state`, `accelerator.save`, `xm.save`, ...: helpers
that write what they are handed to disk."""


_OPAQUE_CHECKPOINTS = frozenset({"save_state", "save_checkpoint"})
"""Methods of engines and accelerators that write the whole training state themselves."""


def checkpoint_helper_payload(call: cst.Call) -> cst.Dict | None:
    """The dict literal holding `state_dict()`s that a save helper is handed
    (`save_checkpoint(path, {"model": model.state_dict(), ...})`), else None."""
    func = call.func
    name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", "")
    if not isinstance(name, str) or not _SAVE_HELPER.search(name):
        return None
    for arg in call.args:
        value = arg.value
        if isinstance(value, cst.Dict) and any(
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Attribute)
            and node.func.attr.value == "state_dict"
            for node in descendants(value)
        ):
            return value
    return None


def save_of(
    call: cst.Call, frame: Frame, scopes: Scopes, payload: cst.BaseExpression | None = None
) -> Save:
    """What `torch.save(payload, ...)` (or a save helper handed `payload`) writes."""
    if payload is None:
        payload = argument(call, 0, "obj")
    states: set[str] = set()
    keys: set[str] = set()
    literal = False
    if payload is not None:
        for node in (payload, *descendants(payload)):
            if (
                isinstance(node, cst.Call)
                and isinstance(node.func, cst.Attribute)
                and node.func.attr.value == "state_dict"
            ):
                literal = True
                owner_node = node.func.value
                # `(model.module if distributed else model).state_dict()`: either is the model
                owners = (
                    (owner_node.body, owner_node.orelse)
                    if isinstance(owner_node, cst.IfExp)
                    else (owner_node,)
                )
                for one in owners:
                    owner = scopes.identity(one, frame)
                    if owner is not None:
                        states.add(owner)
                        states.add(owner.removesuffix(".module"))
            elif isinstance(node, cst.Dict):
                literal = True
            elif isinstance(node, cst.SimpleString):
                value = node.evaluated_value
                if isinstance(value, str):
                    keys.add(value)
    name = scopes.identity(payload, frame) if payload is not None and not literal else None
    return Save(call, frozenset(states), frozenset(keys), literal, name)


def assignment_ops(
    event: AssignEvent, frame: Frame, in_loop: bool, scopes: Scopes, out: list[Item]
) -> None:
    """What an assignment does: a new value for an identity, or `.grad` cleared."""
    if not in_loop:
        # Outside loops only `.grad` assignments matter (re-creation is a loop question).
        for target in event.targets:
            if isinstance(target, cst.Attribute) and target.attr.value == "grad":
                out.append(Clear(event.node, None))
        return
    value = event.value
    sources = frozenset(
        identity
        for chain in (maximal_chains(value) if value is not None else ())
        if (identity := scopes.identity(chain, frame)) is not None
    )
    derived = event.augmented or (value is not None and _calls_method(value, _PARAMETER_ACCESSORS))
    detached = value is not None and detaches(value)
    for target in event.targets:
        if isinstance(target, cst.Attribute) and target.attr.value == "grad":
            out.append(Clear(event.node, None))
            continue
        identity = scopes.identity(target, frame)
        if identity is None:
            continue
        self_derived = any(
            source == identity or source.startswith(identity + ".") for source in sources
        )
        out.append(
            Assign(
                event.node,
                identity,
                not (derived or self_derived),
                sources,
                event.augmented,
                detached,
            )
        )


def member_frame(event: LoopEvent, frame: Frame, scopes: Scopes) -> Frame | None:
    """For `for p in model.parameters():` (or `.modules()`, `named_*`), a frame in
    which the loop variable stands for `model`: `p.data.normal_()` re-initialises it."""
    node = event.node
    iterated = node.iter if isinstance(node, cst.For) else None
    if not (
        isinstance(iterated, cst.Call)
        and isinstance(iterated.func, cst.Attribute)
        and iterated.func.attr.value in _PARAMETER_ITERATORS
        and isinstance(node, cst.For)
    ):
        return None
    owner = scopes.identity(iterated.func.value, frame)
    target: cst.BaseExpression = node.target
    if isinstance(target, cst.Tuple) and len(target.elements) == 2:
        target = target.elements[1].value
    if owner is None or not isinstance(target, cst.Name):
        return None
    env = {**frame.env, target.value: owner}
    # `w = p.data; w.normal_()` re-initialises through an alias of the member.
    for inner in all_events(event.body):
        if isinstance(inner, AssignEvent) and len(inner.targets) == 1 and inner.value is not None:
            alias, value = inner.targets[0], dotted_name(inner.value)
            if isinstance(alias, cst.Name) and value is not None:
                if value.partition(".")[0] == target.value:
                    env[alias.value] = owner
    return Frame(frame.function, env, frame.scaled)


_ITERATION_WRAPPERS = frozenset({"enumerate", "tqdm", "iter", "zip", "track", "progress_bar"})
"""Calls that iterate their first argument for the loop (`enumerate(loader)`)."""


def loop_targets(event: LoopEvent, frame: Frame, scopes: Scopes) -> frozenset[str]:
    """The identities a loop rebinds every iteration."""
    return frozenset(
        identity
        for target in event.targets
        if (identity := scopes.identity(target, frame)) is not None
    )


def iterated(node: cst.For | cst.While, frame: Frame, scopes: Scopes) -> str | None:
    """The identity a `for` loop iterates, through `enumerate`/`tqdm`/`zip` wrappers."""
    if not isinstance(node, cst.For):
        return None
    current = node.iter
    while (
        isinstance(current, cst.Call)
        and call_name(current) in _ITERATION_WRAPPERS
        and current.args
        and not current.args[0].star
    ):
        current = current.args[0].value
    return scopes.identity(current, frame)


def bind_callee(
    scopes: Scopes,
    table: ObjectTable,
    callee: FunctionInfo,
    call: cst.Call,
    frame: Frame,
    receiver: str | None,
) -> dict[str, str]:
    """The callee's parameters bound to the caller's identities (`self` to `receiver`)."""
    env: dict[str, str] = {}
    if callee.self_name is not None and receiver is not None:
        env[callee.self_name] = receiver
    for param, value in parameters_of(callee, call):
        identity = scopes.identity(value, frame)
        if identity is None:
            continue
        if (
            not symbolic(identity)
            and not table.kinds(identity)
            and table.kinds(f"{callee.qualname}:{param}")
        ):
            continue  # the callee knows more (annotation or usage) than the caller
        env[param] = identity
    return env


def _within_decorators(
    function: FunctionInfo, imports: ImportTable, body: tuple[Item, ...]
) -> tuple[Item, ...]:
    """A function's resolved body inside the grad-mode decorators it carries:
    `@torch.no_grad()` holds for everything the body runs, as a `with` would."""
    switches = grad_switches(function, imports)
    if not switches:
        return body
    assert isinstance(function.node, cst.FunctionDef)
    return (Context(function.node, switches, body),)


def methods_called(program: ModuleProgram) -> frozenset[str]:
    """Every method name this module calls. A per-batch method (`training_step`,
    `train_step`, `_run_batch`, `update`) that none of them names lives in a class whose loop
    is elsewhere — a framework or a base class of another module: its body runs once per
    batch, as if in a loop. One this module calls is checked at its call sites instead."""
    return frozenset(
        event.node.func.attr.value
        for caller in program.functions
        for event in all_events(caller.events)
        if isinstance(event, CallEvent) and isinstance(event.node.func, cst.Attribute)
    )


def clears_by_name(func: cst.BaseExpression) -> bool:
    """`model.zero_grads()`, `net.clear_grads()`, and a helper imported bare:
    `zero_grad(params)`."""
    if isinstance(func, cst.Attribute):
        called = func.attr.value
    elif isinstance(func, cst.Name):
        called = func.value
    else:
        return False
    return "zero_grad" in called or ("clear" in called and "grad" in called)


def renewed_receiver(
    call: cst.Call, callee: FunctionInfo, body: tuple[Item, ...], frame: Frame, scopes: Scopes
) -> Reinit | None:
    """`model.reset_parameters()` of a class of the codebase whose body re-initialises its
    layers: as good as a new model, like torch's own `reset_parameters()`."""
    if callee.self_name is None or not isinstance(call.func, cst.Attribute):
        return None
    owner = scopes.identity(call.func.value, frame)
    return Reinit(call, owner) if owner is not None and _reinitialises(body) else None


def own_step(program: ModuleProgram, table: ObjectTable, optimizer: str) -> FunctionInfo | None:
    """The `step()` of the optimizer class of this module that `optimizer` is built from:
    one that clears the gradients it used (`p.grad = None`) needs no `zero_grad()`."""
    info = table.info(optimizer, ObjectKind.OPTIMIZER)
    owner = program.classes.get(info.qualified) if info is not None else None
    return program.method(owner, "step") if owner is not None else None


class TreeBuilder:
    """Resolves one module's functions to operation trees, each computed once."""

    def __init__(
        self, program: ModuleProgram, scopes: Scopes, table: ObjectTable, linker: Linker
    ) -> None:
        self.program = program
        self.imports = program.imports
        self.scopes = scopes
        self.table = table
        self.linker = linker
        self._trees: dict[int, tuple[Item, ...]] = {}
        self._called_here: frozenset[str] | None = None
        self.switched = mode_switched(program)
        """What calling runs a model forward (`summary.mode_switched`)."""
        self._summaries: dict[int, tuple[Item, ...] | None] = {}

    def summary_tree(self, function: FunctionInfo) -> tuple[Item, ...] | None:
        """What `function` does when called from a loop, its parameters left symbolic
        (`$optimizer`): computed once, then bound at each call site by `instantiate`.
        None while it is being computed (a cycle between modules)."""
        key = id(function)
        if key in self._summaries:
            return self._summaries[key]
        self._summaries[key] = None
        params = function.params[1:] if function.self_name is not None else function.params
        env = {param: f"${param}" for param in params}
        body = self._resolve(function.events, Frame(function, env), True, (function,))
        tree = _within_decorators(function, self.imports, body)
        self._summaries[key] = tree
        return tree

    def tree(self, function: FunctionInfo) -> tuple[Item, ...]:
        """`function`'s body as resolved operations, calls inside loops inlined."""
        key = id(function)
        cached = self._trees.get(key)
        if cached is None:
            if self._called_per_batch(function):
                body = self._resolve(function.events, Frame(function, {}), True, (function,))
                body = _within_decorators(function, self.imports, body)
                assert isinstance(function.node, cst.FunctionDef)
                cached = (Loop(function.node, frozenset(), body),)
            else:
                body = self._resolve(function.events, Frame(function, {}), False, (function,))
                cached = _within_decorators(function, self.imports, body)
            self._trees[key] = cached
        return cached

    def _called_per_batch(self, function: FunctionInfo) -> bool:
        if function.owner is None or function.name not in PER_BATCH_METHODS:
            return False
        if self._called_here is None:
            self._called_here = methods_called(self.program)
        return function.name not in self._called_here

    def _resolve(
        self,
        events: tuple[Event, ...],
        frame: Frame,
        in_loop: bool,
        stack: tuple[FunctionInfo, ...],
    ) -> tuple[Item, ...]:
        out: list[Item] = []
        for event in events:
            if isinstance(event, CallEvent):
                self._resolve_call(event.node, frame, in_loop, stack, out)
            elif isinstance(event, AssignEvent):
                assignment_ops(event, frame, in_loop, self.scopes, out)
            elif isinstance(event, LoopEvent):
                targets = loop_targets(event, frame, self.scopes)
                members = member_frame(event, frame, self.scopes)
                if members is None and any(self.table.kinds(target) for target in targets):
                    # `for opt in optimizers:` steps each optimizer once per iteration of
                    # the loop around it: not a loop of its own, as far as training goes.
                    out.extend(self._resolve(event.body, frame, in_loop, stack))
                    continue
                body = self._resolve(event.body, members or frame, True, stack)
                out.append(
                    Loop(event.node, targets, body, iterated(event.node, frame, self.scopes))
                )
            elif isinstance(event, BranchEvent):
                arms = tuple(self._resolve(arm, frame, in_loop, stack) for arm in event.arms)
                out.append(Branch(event.node, event.test, arms))
            elif isinstance(event, WithEvent):
                contexts = tuple(
                    self.imports.qualify(c.func if isinstance(c, cst.Call) else c)
                    or dotted_name(c.func if isinstance(c, cst.Call) else c)
                    or ""
                    for c in event.contexts
                )
                out.append(
                    Context(event.node, contexts, self._resolve(event.body, frame, in_loop, stack))
                )
        return tuple(out)

    def _resolve_call(
        self,
        call: cst.Call,
        frame: Frame,
        in_loop: bool,
        stack: tuple[FunctionInfo, ...],
        out: list[Item],
    ) -> None:
        func = call.func
        attr = func.attr.value if isinstance(func, cst.Attribute) else None
        # `self.backward(x, y)` of a class here that defines its own `backward` (a
        # hand-written perceptron's error step) calls that method, not autograd.
        if attr in ("backward", "manual_backward") and self.scopes.callee(call, frame) is None:
            out.append(backward_of(call, frame, self.scopes))
            return
        qualified = self.imports.qualify(func)
        if qualified == "torch.autograd.backward":
            first = argument(call, 0, "tensors")
            out.append(
                Backward(call, self.scopes.identity(first, frame) if first is not None else None)
            )
            return
        if qualified in _CLIPPERS or (qualified is None and attr in _CLIPPING_METHODS):
            out.append(Clip(call))
            return
        if qualified is None and dotted_name(func) in self.switched:
            module = self.scopes.identity(func, frame)
            if module is not None and not self.table.kinds(module):
                out.append(Forward(call, module))
                return
        if qualified == "torch.save":
            out.append(save_of(call, frame, self.scopes))
            return
        helper_payload = checkpoint_helper_payload(call)
        if helper_payload is not None:
            out.append(save_of(call, frame, self.scopes, helper_payload))
            return
        if isinstance(func, cst.Attribute) and attr == "save_pretrained":
            # `model.save_pretrained(dir)`: the model's weights, nothing else
            model = self.scopes.identity(func.value, frame)
            out.append(Save(call, frozenset({model} if model else ()), frozenset(), True))
            return
        if isinstance(func, cst.Attribute) and attr in _OPAQUE_CHECKPOINTS:
            # `accelerator.save_state(dir)`, `engine.save_checkpoint(dir)`: a whole training
            # state whose contents looplint does not see
            out.append(Save(call, frozenset(), frozenset(), False))
            return
        if qualified is not None and qualified.startswith("torch.nn.init."):
            first = argument(call, 0, "tensor")
            module = self.scopes.identity(first, frame) if first is not None else None
            if module is not None:
                out.append(Reinit(call, module.removesuffix(".data")))
            return
        if isinstance(func, cst.Attribute):
            chain = unchained(func.value) if attr in ("train", "eval") else func.value
            receiver = self.scopes.identity(chain, frame)
            kinds = self.table.kinds(receiver)
            if attr == "step" and receiver is not None:
                if ObjectKind.OPTIMIZER in kinds:
                    out.append(Step(call, receiver, self._closure(call, frame, stack)))
                    own = self._alone(own_step(self.program, self.table, receiver), stack)
                    if _clears_anywhere(own):  # `p.grad = None` in its own `step()`
                        out.append(Clear(call, receiver))
                    return
                if ObjectKind.SCHEDULER in kinds:
                    out.append(SchedulerStep(call, receiver, bool(call.args)))
                    return
                args = positional_args(call)
                is_scaler = ObjectKind.SCALER in kinds or "scaler" in receiver.lower()
                if args:
                    stepped = self.scopes.identity(args[0], frame)
                    if is_scaler and (self.table.is_optimizer(stepped) or symbolic(stepped)):
                        assert stepped is not None
                        out.append(Step(call, stepped, via_scaler=True))
                        return
                if symbolic(receiver) and not kinds and not is_scaler:
                    # A parameter's `.step()`: an optimizer's or a scheduler's, as the
                    # caller's argument decides (see `_instantiate`).
                    out.append(Step(call, receiver, self._closure(call, frame, stack)))
                    return
            if (
                attr in _SCALER_METHODS
                and receiver is not None
                and (ObjectKind.SCALER in kinds or "scaler" in receiver.lower())
            ):
                first = argument(call, 0, "optimizer")
                stepped = self.scopes.identity(first, frame) if first is not None else None
                out.append(ScalerCall(call, receiver, attr, stepped))
                return
            if attr == "load_state_dict" and receiver is not None:
                out.append(LoadState(call, receiver))
                return
            if attr == "append" and receiver is not None and in_loop and call.args:
                value = call.args[0].value
                sources = frozenset(
                    identity
                    for chain in maximal_chains(value)
                    if (identity := self.scopes.identity(chain, frame)) is not None
                )
                out.append(Append(call, receiver, sources, detaches(value)))
                return
            if attr == "zero_grad":
                if ObjectKind.OPTIMIZER in kinds:
                    out.append(Clear(call, receiver))
                else:
                    out.append(Clear(call, None, receiver))
                return
            if (
                attr in ("train", "eval")
                and receiver is not None
                and not kinds
                and self.scopes.callee(call, frame) is None  # `self.train()` may be a method
            ):
                training = attr == "train" and not _is_false(argument(call, 0, "mode"))
                out.append(ModeSwitch(call, receiver, training))
                return
            if (
                attr in _GRAD_CLEARING_METHODS
                and _is_grad_attribute(func.value)
                and (attr not in ("mul_", "fill_") or _is_zero(argument(call, 0, "value")))
            ):
                # `p.grad.zero_()`, `p.grad.mul_(0)`; `p.grad.mul_(clip_coef)` rescales.
                out.append(Clear(call, None))
                return
            if (
                receiver is not None
                and attr in _REINITIALISERS
                and self.scopes.callee(call, frame) is None
            ):
                out.append(Reinit(call, receiver.removesuffix(".data")))
                return
        info = self.table.constructed(call, frame)
        if info is not None and info.call is call and info.fresh:
            out.append(self._construct(call, info, frame))
            return
        callee = self.scopes.callee(call, frame)
        if callee is not None:
            function, receiver_identity = callee
            if in_loop and len(stack) < MAX_INLINE_DEPTH and function not in stack:
                env = bind_callee(self.scopes, self.table, function, call, frame, receiver_identity)
                scaled = frozenset(
                    param
                    for param, value in parameters_of(function, call)
                    if _scaled_loss(value) is not None
                )
                inner = Frame(function, env, scaled)
                body = _within_decorators(
                    function,
                    self.imports,
                    self._resolve(function.events, inner, True, (*stack, function)),
                )
                out.extend(body)
                renewed = renewed_receiver(call, function, body, frame, self.scopes)
                if renewed is not None:
                    out.append(renewed)
            return
        if in_loop:
            target = self.linker.external(func)
            if target is not None and target.function is not None:
                summary = target.facts.summary_tree(target.function)
                if summary is not None:
                    mapping = self.linker.arguments(target.function, call, frame)
                    out.extend(instantiate(summary, mapping, call, self.table))
                    return
        if clears_by_name(func):
            out.append(Clear(call, None))
            return
        name = attr if attr is not None else (func.value if isinstance(func, cst.Name) else "")
        if name in _READS_ONLY or reads_by_name(name):
            return  # `fabric.clip_gradients(model, optimizer, ...)`, `log(optimizer)`
        leading = positional_args(call)[:1]
        for arg in call.args:
            identity = self.scopes.identity(arg.value, frame)
            if self.table.is_optimizer(identity) or symbolic(identity):
                assert identity is not None
                handed = self.scopes.identity(leading[0], frame) if leading else None
                out.append(Escape(call, identity, handed if handed != identity else None))

    def _construct(self, call: cst.Call, info: ObjectInfo, frame: Frame) -> Construct:
        return Construct(call, info.kind, info.qualified, info.parameter_sources, info.optimizer)

    def _closure(
        self, call: cst.Call, frame: Frame, stack: tuple[FunctionInfo, ...]
    ) -> tuple[Item, ...]:
        """What the closure handed to `opt.step(closure)` runs."""
        closure = argument(call, 0, "closure")
        if isinstance(closure, cst.Lambda):
            events: list[Event] = []
            calls_in(closure.body, events)
            return self._resolve(tuple(events), frame, True, stack)
        if isinstance(closure, cst.Name):
            return self._alone(self.program.function_named(closure.value, frame.function), stack)
        return ()

    def _alone(
        self, function: FunctionInfo | None, stack: tuple[FunctionInfo, ...]
    ) -> tuple[Item, ...]:
        """`function` run on its own (a step closure, an optimizer class's own `step()`)."""
        if function is None or function in stack:
            return ()
        inner = self._resolve(function.events, Frame(function, {}), True, (*stack, function))
        return _within_decorators(function, self.imports, inner)
