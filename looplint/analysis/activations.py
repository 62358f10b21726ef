"""What activation the input of each loss call has been through.

A loss call (`F.cross_entropy(out, y)`, `criterion(out, y)` with `criterion` an
`nn.CrossEntropyLoss`) is traced back from its input: through the names it was
assigned from, shape-only methods (`view`, `reshape`, `to`), the model it came out of
(`model(x)`: the returns of the model class's `forward`, in this module or in another
module of the codebase, or the last layer of an `nn.Sequential`) and same-module
helpers, to the activation applied last — softmax, log-softmax, sigmoid — or to a
linear layer (raw logits). Anything else, or paths that disagree, is unknown.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import libcst as cst

from looplint.analysis.activation_screen import MAX_DEPTH, SHAPE_METHODS
from looplint.analysis.callers import CallGraph
from looplint.analysis.linking import Linker
from looplint.analysis.program import (
    AssignEvent,
    BranchEvent,
    CallEvent,
    Event,
    FunctionInfo,
    LoopEvent,
    ModuleProgram,
    WithEvent,
)
from looplint.analysis.scopes import Frame, Scopes, parameters_of
from looplint.analysis.syntax import argument, source_of


class Activation(enum.Enum):
    """What the values of a tensor are, as far as a loss is concerned."""

    SOFTMAX = "softmax"
    LOG_SOFTMAX = "log-softmax"
    SIGMOID = "sigmoid"
    LOGITS = "raw logits"


class LossKind(enum.Enum):
    """Losses whose expected input is fixed: logits, log-probabilities or probabilities."""

    CROSS_ENTROPY = "CrossEntropyLoss"
    BCE_WITH_LOGITS = "BCEWithLogitsLoss"
    NLL = "NLLLoss"
    BCE = "BCELoss"


_LOSS_FUNCTIONS = {
    "torch.nn.functional.cross_entropy": LossKind.CROSS_ENTROPY,
    "torch.nn.functional.binary_cross_entropy_with_logits": LossKind.BCE_WITH_LOGITS,
    "torch.nn.functional.nll_loss": LossKind.NLL,
    "torch.nn.functional.binary_cross_entropy": LossKind.BCE,
}
_LOSS_CLASSES = {kind.value: kind for kind in LossKind}
_ACTIVATION_FUNCTIONS = {
    "torch.softmax": Activation.SOFTMAX,
    "torch.nn.functional.softmax": Activation.SOFTMAX,
    "torch.special.softmax": Activation.SOFTMAX,
    "torch.log_softmax": Activation.LOG_SOFTMAX,
    "torch.nn.functional.log_softmax": Activation.LOG_SOFTMAX,
    "torch.special.log_softmax": Activation.LOG_SOFTMAX,
    "torch.sigmoid": Activation.SIGMOID,
    "torch.nn.functional.sigmoid": Activation.SIGMOID,
    "torch.special.expit": Activation.SIGMOID,
}
_ACTIVATION_METHODS = {
    "softmax": Activation.SOFTMAX,
    "log_softmax": Activation.LOG_SOFTMAX,
    "sigmoid": Activation.SIGMOID,
}
_ACTIVATION_LAYERS = {
    "Softmax": Activation.SOFTMAX,
    "LogSoftmax": Activation.LOG_SOFTMAX,
    "Sigmoid": Activation.SIGMOID,
    "Linear": Activation.LOGITS,
    "LazyLinear": Activation.LOGITS,
    "Bilinear": Activation.LOGITS,
}
_WRAPPERS = frozenset(
    {
        "torch.nn.DataParallel",
        "torch.nn.parallel.DataParallel",
        "torch.nn.parallel.DistributedDataParallel",
        "torch.compile",
    }
)
_LOGS = frozenset({"torch.log", "log"})


@dataclass(frozen=True, slots=True)
class Origin:
    """The activation a value went through last, and where it was applied."""

    activation: Activation
    node: cst.CSTNode
    where: str
    """How a reader finds it: `` `F.softmax(x, dim=1)` `` or `` `Net.forward` in models.py ``."""


@dataclass(frozen=True, slots=True)
class LossInput:
    """A loss call whose input's last activation is known."""

    call: cst.Call
    loss: LossKind
    origin: Origin


@dataclass(frozen=True, slots=True)
class _Assignment:
    order: int
    target: str
    value: cst.BaseExpression
    in_branch: bool


class _FunctionIndex:
    """A function's single-target assignments in source order, and its calls' order."""

    def __init__(self, function: FunctionInfo, scopes: Scopes) -> None:
        self.assignments: list[_Assignment] = []
        self.order: dict[int, int] = {}
        self._frame = Frame(function, {})
        self._scopes = scopes
        self._walk(function.events, False)

    def _walk(self, events: tuple[Event, ...], in_branch: bool) -> None:
        for event in events:
            self.order[id(event.node)] = len(self.order)
            if isinstance(event, AssignEvent):
                if len(event.targets) == 1 and event.value is not None and not event.augmented:
                    identity = self._scopes.identity(event.targets[0], self._frame)
                    if identity is not None:
                        self.assignments.append(
                            _Assignment(len(self.order), identity, event.value, in_branch)
                        )
            elif isinstance(event, (LoopEvent, WithEvent)):
                self._walk(event.body, in_branch)
            elif isinstance(event, BranchEvent):
                for arm in event.arms:
                    self._walk(arm, True)

    def reaching(self, identity: str, before: int | None) -> list[cst.BaseExpression] | None:
        """The values `identity` may hold at a point (`before`: an event order; None: the
        end): the last unconditional assignment and every conditional one after it.
        None when the function never assigns it."""
        found = [
            a
            for a in self.assignments
            if a.target == identity and (before is None or a.order <= before)
        ]
        if not found:
            return None
        start = max((i for i, a in enumerate(found) if not a.in_branch), default=0)
        return [a.value for a in found[start:]]


class _Tracer:
    """Traces values of one module back to their activation."""

    def __init__(
        self,
        program: ModuleProgram,
        scopes: Scopes,
        linker: Linker | None,
        calls: CallGraph | None,
    ) -> None:
        self.program = program
        self.scopes = scopes
        self.linker = linker
        self.calls = calls
        self._indexes: dict[int, _FunctionIndex] = {}
        self._foreign: dict[int, _Tracer] = {}

    def index(self, function: FunctionInfo) -> _FunctionIndex:
        key = id(function)
        found = self._indexes.get(key)
        if found is None:
            found = self._indexes[key] = _FunctionIndex(function, self.scopes)
        return found

    # -- values ----------------------------------------------------------------------
    def origin(
        self, value: cst.BaseExpression, function: FunctionInfo, before: int | None, depth: int
    ) -> Origin | None:
        """The last activation `value` went through, inside `function`."""
        if depth > MAX_DEPTH:
            return None
        value = _shape_only(value)
        if isinstance(value, (cst.Name, cst.Attribute)):
            return self._agreed(self.values(value, function, before), depth)
        if not isinstance(value, cst.Call):
            return None
        func = value.func
        qualified = self.program.imports.qualify(func)
        if qualified in _ACTIVATION_FUNCTIONS:
            return Origin(_ACTIVATION_FUNCTIONS[qualified], value, f"`{source_of(value)}`")
        if qualified in _LOGS or (isinstance(func, cst.Attribute) and func.attr.value == "log"):
            inner = value.args[0].value if qualified in _LOGS and value.args else None
            if isinstance(func, cst.Attribute) and qualified is None:
                inner = func.value
            found = self.origin(inner, function, before, depth + 1) if inner is not None else None
            if found is not None and found.activation is Activation.SOFTMAX:
                return Origin(Activation.LOG_SOFTMAX, value, f"`{source_of(value)}`")
            return None
        if (
            qualified is None
            and isinstance(func, cst.Attribute)
            and func.attr.value in _ACTIVATION_METHODS
            and not self._is_self(func.value, function)
        ):
            return Origin(_ACTIVATION_METHODS[func.attr.value], value, f"`{source_of(value)}`")
        if isinstance(func, cst.Call):
            return self.module_output(func, function, depth + 1)
        if qualified is not None:
            return None
        callee = self.scopes.callee(value, Frame(function, {}))
        if callee is not None:
            return self.returns(callee[0], depth + 1)
        if isinstance(func, (cst.Name, cst.Attribute)):
            return self._agreed_modules(self.values(func, function, None), depth)
        return None

    def values(
        self, name: cst.BaseExpression, function: FunctionInfo, before: int | None
    ) -> list[tuple[cst.BaseExpression, FunctionInfo]] | None:
        """What a name or `self.attribute` may hold, each value with the function it is
        written in: its assignments in the function, the class's attribute assignments,
        the module's, or — for a parameter — the arguments of every same-module call."""
        identity = self.scopes.identity(name, Frame(function, {}))
        if identity is None:
            return None
        found = self.index(function).reaching(identity, before)
        if found is not None:
            return [(value, function) for value in found]
        owner = function.owner
        if (
            owner is not None
            and isinstance(name, cst.Attribute)
            and isinstance(name.value, cst.Name)
            and name.value.value == function.self_name
        ):
            attributes = owner.attribute_values.get(name.attr.value)
            home = self.program.method(owner, "__init__") or function
            return [(value, home) for value in attributes] if attributes else None
        if identity.startswith("<module>:"):
            found = self.index(self.program.body).reaching(identity, None)
            return [(value, self.program.body) for value in found] if found else None
        if isinstance(name, cst.Name) and name.value in function.params and self.calls:
            return self._arguments(function, name.value)
        return None

    def _arguments(
        self, function: FunctionInfo, param: str
    ) -> list[tuple[cst.BaseExpression, FunctionInfo]] | None:
        assert self.calls is not None
        passed: list[tuple[cst.BaseExpression, FunctionInfo]] = []
        for site in self.calls.callers(function):
            value = dict(parameters_of(function, site.call)).get(param)
            if value is None:
                return None  # a default, or `*args`: not known
            passed.append((value, site.caller))
        return passed or None

    def _agreed(
        self,
        values: list[tuple[cst.BaseExpression, FunctionInfo]] | None,
        depth: int,
    ) -> Origin | None:
        if not values:
            return None
        return _same([self.origin(value, home, None, depth + 1) for value, home in values])

    def _agreed_modules(
        self,
        values: list[tuple[cst.BaseExpression, FunctionInfo]] | None,
        depth: int,
    ) -> Origin | None:
        if not values:
            return None
        return _same([self.module_output(value, home, depth + 1) for value, home in values])

    # -- modules ---------------------------------------------------------------------
    def module_output(
        self, built: cst.BaseExpression, function: FunctionInfo, depth: int
    ) -> Origin | None:
        """What calling the module that `built` constructs returns: `nn.Softmax(dim=1)`,
        `nn.Sequential(..., nn.Sigmoid())`, `Net()` (its `forward`), `Net().to(device)`."""
        if depth > MAX_DEPTH:
            return None
        built = _shape_only(built)
        if not isinstance(built, cst.Call):
            return None
        func = built.func
        qualified = self.program.imports.qualify(func)
        if qualified in _WRAPPERS and built.args:
            return self.module_output(built.args[0].value, function, depth + 1)
        if qualified is not None and qualified.startswith("torch.nn."):
            last = qualified.rsplit(".", 1)[-1]
            if last in _ACTIVATION_LAYERS:
                return Origin(_ACTIVATION_LAYERS[last], built, f"`{source_of(built)}`")
            if last == "Sequential":
                layers = [arg.value for arg in built.args if arg.keyword is None and not arg.star]
                if not layers or any(arg.star for arg in built.args):
                    return None
                return self._layer_output(layers[-1], function, depth + 1)
            return None
        if isinstance(func, cst.Name) and func.value in self.program.classes:
            return self.forward(self.program.classes[func.value].name, depth + 1)
        if self.linker is not None:
            return self._foreign_forward(func, depth + 1)
        return None

    def _layer_output(
        self, layer: cst.BaseExpression, function: FunctionInfo, depth: int
    ) -> Origin | None:
        if isinstance(layer, (cst.Name, cst.Attribute)):
            return self._agreed_modules(self.values(layer, function, None), depth)
        return self.module_output(layer, function, depth)

    def forward(self, class_name: str, depth: int) -> Origin | None:
        """What the `forward` of a class of this module returns."""
        owner = self.program.classes.get(class_name)
        method = self.program.method(owner, "forward") if owner is not None else None
        if method is None:
            return None
        found = self.returns(method, depth)
        if found is None:
            return None
        return Origin(found.activation, found.node, f"{found.where} in `{method.qualname}`")

    def returns(self, function: FunctionInfo, depth: int) -> Origin | None:
        """The activation every return of `function` agrees on."""
        if depth > MAX_DEPTH or not function.returns:
            return None
        return _same([self.origin(value, function, None, depth + 1) for value in function.returns])

    def _foreign_forward(self, func: cst.BaseExpression, depth: int) -> Origin | None:
        assert self.linker is not None
        target = self.linker.external(func)
        if target is None or target.owner is None:
            return None
        program = target.facts.program
        tracer = self._foreign.get(id(program))
        if tracer is None:
            tracer = self._foreign[id(program)] = _Tracer(program, Scopes(program), None, None)
        found = tracer.forward(target.owner.name, depth)
        if found is None:
            return None
        name = target.path.replace("\\", "/").rsplit("/", 1)[-1]
        return Origin(found.activation, found.node, f"{found.where} in {name}")

    @staticmethod
    def _is_self(receiver: cst.BaseExpression, function: FunctionInfo) -> bool:
        """`self.softmax(x)` calls a layer kept on `self`, not `Tensor.softmax`."""
        root = receiver
        while isinstance(root, cst.Attribute):
            root = root.value
        return isinstance(root, cst.Name) and root.value == function.self_name

    # -- losses ----------------------------------------------------------------------
    def loss_kind(self, call: cst.Call, function: FunctionInfo) -> LossKind | None:
        """The loss a call computes: a functional loss, or an instance of a loss class."""
        func = call.func
        qualified = self.program.imports.qualify(func)
        if qualified is not None:
            return _LOSS_FUNCTIONS.get(qualified)
        if isinstance(func, cst.Call):
            return self._loss_class(func)
        if not isinstance(func, (cst.Name, cst.Attribute)):
            return None
        values = self.values(func, function, None)
        if not values:
            return None
        kinds = {self._loss_class(_shape_only(v)) for v, _ in values}
        kind = kinds.pop() if len(kinds) == 1 else None
        return kind

    def _loss_class(self, built: cst.BaseExpression) -> LossKind | None:
        if not isinstance(built, cst.Call):
            return None
        qualified = self.program.imports.qualify(built.func)
        if qualified is None or not qualified.startswith("torch.nn."):
            return None
        return _LOSS_CLASSES.get(qualified.rsplit(".", 1)[-1])

    def loss_inputs(self) -> list[LossInput]:
        found: list[LossInput] = []
        for function in self.program.functions:
            index: _FunctionIndex | None = None
            for event in _calls(function.events):
                call = event.node
                kind = self.loss_kind(call, function)
                if kind is None:
                    continue
                value = argument(call, 0, "input")
                if value is None:
                    continue
                if index is None:
                    index = self.index(function)
                origin = self.origin(value, function, index.order.get(id(call)), 0)
                if origin is not None:
                    found.append(LossInput(call, kind, origin))
        return found


def _calls(events: tuple[Event, ...]) -> list[CallEvent]:
    found: list[CallEvent] = []
    pending = list(reversed(events))
    while pending:
        event = pending.pop()
        if isinstance(event, CallEvent):
            found.append(event)
        elif isinstance(event, (LoopEvent, WithEvent)):
            pending.extend(reversed(event.body))
        elif isinstance(event, BranchEvent):
            for arm in reversed(event.arms):
                pending.extend(reversed(arm))
    return found


def _shape_only(value: cst.BaseExpression) -> cst.BaseExpression:
    """`out` in `out.view(-1, n).float()`: methods that change layout, not values."""
    while (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in SHAPE_METHODS
    ):
        value = value.func.value
    return value


def _same(found: list[Origin | None]) -> Origin | None:
    """The origin all paths agree on, else None."""
    if not found or any(origin is None for origin in found):
        return None
    first = found[0]
    assert first is not None
    if any(origin is not None and origin.activation is not first.activation for origin in found):
        return None
    return first


def loss_inputs(
    program: ModuleProgram, scopes: Scopes, linker: Linker | None, calls: CallGraph | None
) -> list[LossInput]:
    """Every loss call of the module whose input's last activation is known."""
    return _Tracer(program, scopes, linker, calls).loss_inputs()
