"""The module's own `nn.Module` classes, and the models it loads pretrained.

Rules about how a network is *defined* (a submodule kept in a plain list, a parameter
moved out of its registration, functional dropout left on) ask the same questions of
every class: is it an `nn.Module`, what does its `__init__` store on `self`, which of
its methods run in `forward`. Rules about how a network is *trained* ask which
identities hold a model that `from_pretrained` returned in eval mode. Both are
answered here once per module, from the compiled program alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import libcst as cst

from looplint.analysis.catalog import TORCH_PARAMETERLESS_MODULES
from looplint.analysis.imports import ImportTable
from looplint.analysis.program import (
    AssignEvent,
    BranchEvent,
    CallEvent,
    ClassInfo,
    Event,
    FunctionInfo,
    LoopEvent,
    ModuleProgram,
    WithEvent,
    all_events,
)
from looplint.analysis.scopes import Frame, Scopes, argument_flows, origins
from looplint.analysis.syntax import call_name, descendants, source_of

_NETWORK_BASES = frozenset(
    {
        "torch.nn.Module",
        "torch.nn.modules.module.Module",
        "torch.nn.Sequential",
        "torch.nn.ModuleList",
        "torch.nn.ModuleDict",
        "lightning.LightningModule",
        "lightning.pytorch.LightningModule",
        "pytorch_lightning.LightningModule",
        "pytorch_lightning.core.LightningModule",
        "transformers.PreTrainedModel",
        "transformers.modeling_utils.PreTrainedModel",
    }
)
_NETWORK_BASE_TAILS = (".modeling_utils.PreTrainedModel",)
"""A relative import of the library's own base (`from ...modeling_utils import PreTrainedModel`)."""
_NOT_LAYERS = frozenset({"Parameter", "ParameterList", "ParameterDict", "Module", "Buffer"})
"""`torch.nn` names that are not layers holding parameters of their own."""


@dataclass(frozen=True, slots=True)
class AttributeStore:
    """`self.<attribute> = value` in a method of a network class."""

    attribute: str
    value: cst.BaseExpression
    node: cst.CSTNode
    method: FunctionInfo


@dataclass(eq=False, slots=True)
class NetworkClass:
    """A class of the module that is an `nn.Module` (directly or through a base here)."""

    info: ClassInfo
    methods: tuple[FunctionInfo, ...]
    """Its methods and the functions nested in them (all run with `self` a module)."""
    stores: tuple[AttributeStore, ...]
    """Every `self.x = ...` of its methods, in source order."""
    uses: dict[str, list[cst.Call]] = field(default_factory=dict)
    """Attribute name → the calls given an argument that mentions `self.<name>`, and the
    calls of a method of it (`self.blocks.append(...)`), in any method."""

    def stores_in(self, method: str) -> Iterator[AttributeStore]:
        """The stores made by the method named `method` (`__init__`)."""
        return (s for s in self.stores if s.method.name == method and s.method.owner is self.info)


class Networks:
    """The `nn.Module` classes of one module and the layers their code constructs."""

    def __init__(
        self,
        program: ModuleProgram,
        foreign_layer: Callable[[cst.BaseExpression], bool],
        foreign_network: Callable[[str], bool],
    ) -> None:
        self.program = program
        self.foreign_layer = foreign_layer
        """Whether a name imported from another module of the codebase is a layer class."""
        self.foreign_network = foreign_network
        """Whether a base class imported from another module of the codebase is a module
        (`class EncoderLayer(GradientCheckpointingLayer)`, that one an `nn.Module`)."""
        self.imports: ImportTable = program.imports
        self.classes: dict[str, NetworkClass] = {}
        decided: dict[str, bool] = {}
        for name, info in program.classes.items():
            if self._is_network(info, decided):
                self.classes[name] = self._describe(info)

    # -- which classes are modules ----------------------------------------------------------
    def _is_network(self, info: ClassInfo, decided: dict[str, bool]) -> bool:
        known = decided.get(info.name)
        if known is not None:
            return known
        decided[info.name] = False  # a cycle of bases is not a module
        found = False
        for base in info.bases:
            local = self.program.classes.get(base)
            if local is not None and local is not info:
                found = self._is_network(local, decided)
            else:
                qualified = self.imports.qualify_name(base)
                target = qualified or self._relative_target(base)
                found = target is not None and (
                    target in _NETWORK_BASES
                    or target.endswith(_NETWORK_BASE_TAILS)
                    or self.foreign_network(base)
                )
            if found:
                break
        decided[info.name] = found
        return found

    def _relative_target(self, base: str) -> str | None:
        head = base.split(".", 1)[0]
        return self.imports.target(cst.Name(head)) if head.isidentifier() else None

    def _describe(self, info: ClassInfo) -> NetworkClass:
        methods = [f for f in self.program.functions if _within(f, info)]
        stores: list[AttributeStore] = []
        uses: dict[str, list[cst.Call]] = {}
        for method in methods:
            self_name = self_name_of(method)
            if self_name is None:
                continue
            for event in all_events(method.events):
                if isinstance(event, AssignEvent) and event.value is not None:
                    for target, value in _unpacked(event):
                        attribute = _self_attribute(target, self_name)
                        if attribute is not None:
                            stores.append(AttributeStore(attribute, value, event.node, method))
                elif isinstance(event, CallEvent):
                    call = event.node
                    mentioned = {
                        attribute
                        for arg in call.args
                        for node in (arg.value, *descendants(arg.value))
                        if (attribute := _self_attribute(node, self_name)) is not None
                    }
                    if isinstance(call.func, cst.Attribute):
                        receiver = _self_attribute(call.func.value, self_name)
                        if receiver is not None:
                            mentioned.add(receiver)
                    for attribute in mentioned:
                        uses.setdefault(attribute, []).append(call)
        return NetworkClass(info, tuple(methods), tuple(stores), uses)

    # -- what code constructs -------------------------------------------------------------
    def layer_built(self, value: cst.BaseExpression) -> str | None:
        """The class name when `value` builds a module with parameters of its own: a
        `torch.nn` layer (`nn.Linear(...)`, not `nn.ReLU()`) or a class of this module that
        is a network storing something in `__init__`."""
        if not isinstance(value, cst.Call):
            return None
        wrapped = _wrapped_layer(value)
        if wrapped is not None:
            return self.layer_built(wrapped)
        qualified = self.imports.qualify(value.func)
        if qualified is not None and not qualified.startswith("torch."):
            last = qualified.rpartition(".")[2]
            return last if self.foreign_layer(value.func) else None
        if qualified is None and self.imports.target(value.func) is not None:
            return source_of(value.func) if self.foreign_layer(value.func) else None
        if qualified is not None:
            module, _, name = qualified.rpartition(".")
            if module not in ("torch.nn", "torch.nn.modules") or not name[:1].isupper():
                return None
            if name in TORCH_PARAMETERLESS_MODULES or name in _NOT_LAYERS:
                return None
            return f"nn.{name}"
        if isinstance(value.func, cst.Name):
            network = self.classes.get(value.func.value)
            if network is not None and self._has_parameters(network, set()):
                return network.info.name
        return None

    def _has_parameters(self, network: NetworkClass, seen: set[str]) -> bool:
        """Whether a class of this module holds parameters of its own: its `__init__` stores
        an `nn.Parameter` or a layer that has some (a class wrapping only a library object
        with buffers, such as a resampler, has none)."""
        name = network.info.name
        if name in seen:
            return False
        seen.add(name)
        for store in network.stores_in("__init__"):
            value = store.value
            if self.is_parameter_call(value):
                return True
            if not isinstance(value, cst.Call):
                continue
            qualified = self.imports.qualify(value.func)
            if qualified is not None and self.layer_built(value) is not None:
                return True
            if isinstance(value.func, cst.Name):
                inner = self.classes.get(value.func.value)
                if inner is not None and self._has_parameters(inner, seen):
                    return True
        return False

    def is_parameter_call(self, value: cst.BaseExpression) -> bool:
        """`nn.Parameter(...)` / `torch.nn.parameter.Parameter(...)`."""
        return isinstance(value, cst.Call) and self.imports.qualify(value.func) in (
            "torch.nn.Parameter",
            "torch.nn.parameter.Parameter",
        )


def _wrapped_layer(call: cst.Call) -> cst.BaseExpression | None:
    """`Conv1d(...)` in `weight_norm(Conv1d(...))` / `norm_f(Conv2d(...))`: a function (not a
    class: lower-case) applied to a layer returns that layer, reparametrised."""
    name = call_name(call)
    if name is None or not name[:1].islower() or not call.args or call.args[0].keyword:
        return None
    first = call.args[0].value
    return first if isinstance(first, cst.Call) else None


def _unpacked(event: AssignEvent) -> list[tuple[cst.BaseExpression, cst.BaseExpression]]:
    """Each target with the value it receives: `a, b = x, y` pairs them; `a, b = [f() for _
    in range(2)]` gives each target an element nobody can see, so no pair."""
    value = event.value
    if value is None:
        return []
    if len(event.targets) == 1:
        return [(event.targets[0], value)]
    if isinstance(value, (cst.Tuple, cst.List)) and len(value.elements) == len(event.targets):
        if not any(isinstance(e, cst.StarredElement) for e in value.elements):
            return [(t, e.value) for t, e in zip(event.targets, value.elements, strict=True)]
    return []


def _within(function: FunctionInfo, owner: ClassInfo) -> bool:
    current: FunctionInfo | None = function
    while current is not None:
        if current.owner is owner:
            return True
        current = current.parent
    return False


def self_name_of(function: FunctionInfo) -> str | None:
    """The name `self` has in a method, or in a function nested in one (None elsewhere)."""
    current: FunctionInfo | None = function
    while current is not None:
        if current.owner is not None:
            return current.self_name
        current = current.parent
    return None


def _self_attribute(node: cst.CSTNode, self_name: str) -> str | None:
    if (
        isinstance(node, cst.Attribute)
        and isinstance(node.value, cst.Name)
        and node.value.value == self_name
    ):
        return node.attr.value
    return None


# -- code that follows the module's mode -------------------------------------------------
def _mentions_training(test: cst.BaseExpression | None) -> bool:
    """`self.training`, `training`, `not self.training and p > 0`: a test of the mode."""
    if test is None:
        return False
    return any(
        (isinstance(node, cst.Name) and "training" in node.value)
        or (isinstance(node, cst.Attribute) and node.attr.value == "training")
        for node in (test, *descendants(test))
    )


def runs_only_in_training(method: FunctionInfo, call: cst.Call) -> bool:
    """Whether `call` in `method` runs only in training mode: under an `if` testing the mode
    (`if self.training:`), or after one that returns or raises (`if not self.training:
    return x`)."""

    def walk(events: tuple[Event, ...], guarded: bool) -> bool | None:
        for event in events:
            if isinstance(event, CallEvent) and event.node is call:
                return guarded
            if isinstance(event, (LoopEvent, WithEvent)):
                found = walk(event.body, guarded)
                if found is not None:
                    return found
            elif isinstance(event, BranchEvent):
                tested = guarded or _mentions_training(event.test)
                for arm in event.arms:
                    found = walk(arm, tested)
                    if found is not None:
                        return found
        return None

    if walk(method.events, False):
        return True
    node = method.node
    return any(
        isinstance(statement, cst.If)
        and _mentions_training(statement.test)
        and any(isinstance(n, (cst.Return, cst.Raise)) for n in descendants(statement.body))
        for statement in descendants(node)
    )


# -- tensors a function holds ---------------------------------------------------------------
_PARAMETER_ITERATORS = frozenset({"parameters", "named_parameters", "buffers", "named_buffers"})


def _lists_parameters(expression: cst.BaseExpression) -> bool:
    return any(
        isinstance(node, cst.Call) and call_name(node) in _PARAMETER_ITERATORS
        for node in (expression, *descendants(expression))
    )


def _named_parameters(expression: cst.BaseExpression) -> bool:
    """`params`, `self.trainable_params`, `group["params"]`, `module._parameters`,
    `adapter_params.values()`: a collection named for them."""
    if (
        isinstance(expression, cst.Call)
        and isinstance(expression.func, cst.Attribute)
        and expression.func.attr.value == "values"
        and not expression.args
    ):
        expression = expression.func.value
    if isinstance(expression, cst.Subscript):
        key = _string_key(expression)
        return key is not None and "param" in key.lower()
    if isinstance(expression, cst.Attribute):
        expression = expression.attr
    return isinstance(expression, cst.Name) and "param" in expression.value.lower()


def _string_key(subscript: cst.Subscript) -> str | None:
    """`"params"` of `group["params"]`."""
    if len(subscript.slice) != 1:
        return None
    index = subscript.slice[0].slice
    if isinstance(index, cst.Index) and isinstance(index.value, cst.SimpleString):
        return index.value.evaluated_value if isinstance(index.value.evaluated_value, str) else None
    return None


def parameter_lists(events: tuple[Event, ...]) -> set[str]:
    """Names bound to a collection built from a model's parameters
    (`params = list(model.parameters())`, `[(n, p) for n, p in m.named_parameters() if ..]`)."""
    return {
        event.targets[0].value
        for event in all_events(events)
        if isinstance(event, AssignEvent)
        and event.value is not None
        and len(event.targets) == 1
        and isinstance(event.targets[0], cst.Name)
        and _lists_parameters(event.value)
    }


def parameter_element(expression: cst.BaseExpression, lists: set[str]) -> bool:
    """Whether `expression` picks one parameter out of a collection of them: `params[i]`,
    `module._parameters[name]`, `blocks[i]` where `blocks` lists `named_parameters()`."""
    if not isinstance(expression, cst.Subscript):
        return False
    collection = expression.value
    return (isinstance(collection, cst.Name) and collection.value in lists) or _named_parameters(
        collection
    )


def parameter_loop_names(events: tuple[Event, ...]) -> Iterator[tuple[LoopEvent, set[str]]]:
    """Each `for` loop over a model's parameters (`for p in m.parameters()`, `for n, p in
    m.named_parameters()`, `for p in list(m.parameters())[:-1]`) with the names it binds to a
    parameter (the last element of a tuple target)."""
    lists = parameter_lists(events)
    for event in all_events(events):
        if not isinstance(event, LoopEvent) or not isinstance(event.node, cst.For):
            continue
        iterated = event.node.iter
        named = isinstance(iterated, cst.Name) and iterated.value in lists
        if not named and not _lists_parameters(iterated) and not _named_parameters(iterated):
            continue
        name = _last_name(event.node.target)
        if name is not None:
            yield event, {name}


def _last_name(target: cst.BaseExpression) -> str | None:
    """`p` of `p` and of `name, p` (a `named_parameters()` pair)."""
    if isinstance(target, (cst.Tuple, cst.List)) and target.elements:
        target = target.elements[-1].value
    return target.value if isinstance(target, cst.Name) else None


_TENSOR_TYPES = frozenset(
    {"torch.Tensor", "torch.nn.Parameter", "torch.nn.parameter.Parameter", "torch.FloatTensor"}
)
_TENSOR_BUILDERS = re.compile(r"^torch\.(?:nn\.(?:parameter\.)?Parameter|[a-z_]+)$")
_PARAMETER_GETTERS = frozenset({"get_parameter", "get_buffer"})
"""`nn.Module` methods returning one of its tensors by its dotted name."""


def tensor_names(
    function: FunctionInfo, qualify: Callable[[cst.BaseExpression], str | None]
) -> set[str]:
    """Plain names `function` holds a tensor or parameter in: a loop variable over a model's
    parameters, a name bound to `nn.Parameter(...)`, `torch.zeros(...)`,
    `model.get_parameter(name)` or one element of a list of parameters (`_, p = params[i]`),
    and an argument annotated `Tensor` / `nn.Parameter`."""
    found = {
        name
        for name, annotation in function.annotations.items()
        if qualify(annotation) in _TENSOR_TYPES
    }
    for _, names in parameter_loop_names(function.events):
        found |= names
    lists = parameter_lists(function.events)
    for event in all_events(function.events):
        if not isinstance(event, AssignEvent) or event.augmented or event.value is None:
            continue
        value = event.value
        if parameter_element(value, lists) and isinstance(event.node, cst.Assign):
            # `p = params[i]`, `_, p = named[i]` (the written target, not its flattened names)
            name = _last_name(event.node.targets[-1].target)
            if name is not None:
                found.add(name)
            continue
        target = event.targets[0]
        if not (len(event.targets) == 1 and isinstance(target, cst.Name)):
            continue
        if not isinstance(value, cst.Call):
            continue
        qualified = qualify(value.func)
        if (qualified is not None and _TENSOR_BUILDERS.match(qualified)) or (
            isinstance(value.func, cst.Attribute) and value.func.attr.value in _PARAMETER_GETTERS
        ):
            found.add(target.value)
    return found


# -- pretrained models ----------------------------------------------------------------------
_EVAL_MODE_LOADERS = ("transformers", "diffusers", "peft")
"""Libraries whose `from_pretrained` returns the model in eval mode. A class of the codebase
may define its own `from_pretrained` (nanoGPT's builds a model in train mode)."""


def _loaded_pretrained(value: cst.BaseExpression, program: ModuleProgram) -> bool:
    """`X.from_pretrained(...)`, possibly moved after (`.to(device)`), where `X` is a Hugging
    Face class, or a class held in a variable (`model_class = MODEL_CLASSES[name]`)."""
    while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute):
        if value.func.attr.value == "from_pretrained":
            receiver = value.func.value
            root = receiver
            while isinstance(root, cst.Attribute):
                root = root.value
            if not isinstance(root, cst.Name) or root.value in program.classes:
                return False
            target = program.imports.target(receiver)
            if target is None:
                return not program.imports.binds(root.value)
            return target.split(".", 1)[0] in _EVAL_MODE_LOADERS
        if value.func.attr.value not in ("to", "cuda", "half", "float", "bfloat16"):
            return False
        value = value.func.value
    return False


def pretrained_models(program: ModuleProgram, scopes: Scopes) -> dict[str, cst.Call]:
    """Identities bound to a model returned by `from_pretrained(...)` (Hugging Face returns it
    in eval mode), with the loading call; a same-module function given one by argument
    holds one too (`train(model, loader)`)."""
    found: dict[str, cst.Call] = {}
    for function in program.functions:
        frame = Frame(function, {})
        for event in all_events(function.events):
            if (
                isinstance(event, AssignEvent)
                and event.value is not None
                and len(event.targets) == 1
                and isinstance(event.value, cst.Call)
                and _loaded_pretrained(event.value, program)
            ):
                identity = scopes.identity(event.targets[0], frame)
                if identity is not None:
                    found.setdefault(identity, event.value)
    if not found:
        return found
    flows = argument_flows(program, scopes)
    for function in program.functions:
        frame = Frame(function, {})
        for event in all_events(function.events):
            # `query_model = self.query_encoder`: an alias is another name for the model
            if isinstance(event, AssignEvent) and event.value is not None:
                for target, value in _unpacked(event):
                    alias = scopes.identity(target, frame)
                    aliased = scopes.identity(value, frame)
                    if alias is not None and aliased is not None and alias != aliased:
                        flows.setdefault(alias, set()).add(aliased)
    for name in list(flows):
        loaded = [found[c] for c in sorted(origins(name, flows)) if c in found]
        if loaded and name not in found:
            found[name] = loaded[0]
    return found


def passed_bare(program: ModuleProgram, scopes: Scopes, identity: str) -> list[cst.Call]:
    """Calls (other than same-module functions) given `identity` itself as an argument:
    code looplint cannot see may do anything with the model there."""
    found: list[cst.Call] = []
    for function in program.functions:
        frame = Frame(function, {})
        for event in all_events(function.events):
            if not isinstance(event, CallEvent):
                continue
            if not any(scopes.identity(a.value, frame) == identity for a in event.node.args):
                continue
            if scopes.callee(event.node, frame) is None:
                found.append(event.node)
    return found
