"""LL017: layers kept in a plain list, dict or tuple attribute of an `nn.Module`."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.networks import AttributeStore, NetworkClass, Networks
from looplint.analysis.program import AssignEvent, CallEvent, FunctionInfo, all_events
from looplint.analysis.syntax import call_name, descendants
from looplint.files.screening import Glance, Screen, bracketed, flattened
from looplint.identity import UNREGISTERED_SUBMODULES
from looplint.rule import Rule, Violation

_CONTAINERS = {cst.List: "list", cst.Tuple: "tuple", cst.ListComp: "list", cst.Dict: "dict"}
_CONTAINERS_ALSO = {cst.DictComp: "dict", cst.GeneratorExp: "tuple"}
_HARMLESS_READERS = frozenset({"len", "isinstance"})
_FILLERS = ("append", "insert")
_CONTAINER_READS = frozenset({"values", "items", "keys", "index", "count", "get", "__getitem__"})
"""Calls that read a container without registering or handing on its modules."""


def _elements(value: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The expressions a container display or comprehension holds."""
    if isinstance(value, (cst.List, cst.Tuple)):
        return [e.value for e in value.elements if not isinstance(e, cst.StarredElement)]
    if isinstance(value, (cst.ListComp, cst.GeneratorExp)):
        return [value.elt]
    if isinstance(value, cst.Dict):
        return [e.value for e in value.elements if isinstance(e, cst.DictElement)]
    if isinstance(value, cst.DictComp):
        return [value.value]
    return []


def _container_kind(value: cst.BaseExpression) -> str | None:
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add):
        # `[Stem(..)] + [Block(..) for ..]`: a list when both sides are
        left, right = _container_kind(value.left), _container_kind(value.right)
        return left if left is not None and left == right else None
    if isinstance(value, cst.Call) and call_name(value) in ("tuple", "list") and value.args:
        inner = value.args[0].value
        if isinstance(inner, (cst.ListComp, cst.GeneratorExp, cst.List)):
            return call_name(value)
        return None
    for kinds in (_CONTAINERS, _CONTAINERS_ALSO):
        for node_type, kind in kinds.items():
            if isinstance(value, node_type):
                return kind
    return None


def _layers_in(networks: Networks, value: cst.BaseExpression) -> list[str]:
    """The layer classes a container expression builds fresh (`[nn.Linear(..) for ..]`,
    `[Stem(..)] + [Block(..) for ..]`, `[A(..) if first else B(..) for ..]`)."""
    if isinstance(value, cst.BinaryOperation):
        return _layers_in(networks, value.left) + _layers_in(networks, value.right)
    if isinstance(value, cst.Call) and value.args:
        value = value.args[0].value
    return [name for e in _elements(value) for name in _layers_built(networks, e)]


def _layers_built(networks: Networks, element: cst.BaseExpression) -> list[str]:
    """The layer one element of a container builds, either of a conditional's."""
    if isinstance(element, cst.IfExp):
        return _layers_built(networks, element.body) + _layers_built(networks, element.orelse)
    built = networks.layer_built(element)
    return [] if built is None else [built]


def _filled_with(networks: Networks, call: cst.Call) -> list[str]:
    """The layers `x.append(nn.Linear(..))`, `x.insert(i, Block(..))` or
    `x.extend([Norm(..), Block(..)])` adds (no call of those: nothing)."""
    func = call.func
    if not (isinstance(func, cst.Attribute) and call.args):
        return []
    if func.attr.value in _FILLERS:
        return _layers_built(networks, call.args[-1].value)
    if func.attr.value == "extend" and _container_kind(call.args[0].value) is not None:
        return _layers_in(networks, call.args[0].value)
    return []


def _local_layers(networks: Networks, method: FunctionInfo, name: str) -> list[str] | None:
    """The layers a local container `name` of `method` receives (`layers = []` then
    `layers.append(nn.Linear(...))`), or None when it is bound to anything else or handed
    to a call (`nn.Sequential(*layers)` registers them)."""
    layers: list[str] = []
    for event in all_events(method.events):
        if isinstance(event, AssignEvent):
            if not any(isinstance(t, cst.Name) and t.value == name for t in event.targets):
                continue
            if event.value is None or _container_kind(event.value) is None:
                return None
            if len(event.targets) != 1 or (event.augmented and not _extends(event.node)):
                return None
            layers += _layers_in(networks, event.value)
        elif isinstance(event, CallEvent):
            call = event.node
            func = call.func
            if (
                isinstance(func, cst.Attribute)
                and isinstance(func.value, cst.Name)
                and func.value.value == name
            ):
                layers += _filled_with(networks, call)
                continue
            if call_name(call) in _HARMLESS_READERS:
                continue
            if any(_mentions(arg.value, name) for arg in call.args):
                return None
    return layers


def _extends(node: cst.CSTNode) -> bool:
    """`layers += [Block(..)]`: the list grows, it is not replaced."""
    return isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign)


def _mentions(expression: cst.BaseExpression, name: str) -> bool:
    """Whether `expression` reads `name` other than through `len(...)`/`isinstance(...)`
    (`names.append(f"layers.{len(layers)}")` hands none of its layers on)."""
    if isinstance(expression, cst.Name):
        return expression.value == name
    if isinstance(expression, cst.Call) and call_name(expression) in _HARMLESS_READERS:
        return False
    return any(
        isinstance(child, cst.BaseExpression) and _mentions(child, name)
        for child in _expression_children(expression)
    )


def _expression_children(node: cst.CSTNode) -> list[cst.CSTNode]:
    """The nodes directly below `node`, looking through the wrappers (arguments, elements,
    f-string parts) that are not expressions themselves."""
    found: list[cst.CSTNode] = []
    for child in node.children:
        if isinstance(child, cst.BaseExpression):
            found.append(child)
        else:
            found.extend(_expression_children(child))
    return found


def _handed_on(networks: Networks, network: NetworkClass, attribute: str) -> bool:
    """Whether `self.<attribute>` is given to a call (`nn.ModuleList(self.blocks)`,
    `nn.Sequential(*self.layers)`, `enumerate(self.blocks)` feeding `add_module`), or has
    something other than a fresh layer appended, either of which may register its modules.
    `len(...)` and appending fresh layers (`self.blocks.append(nn.Linear(...))`) do not."""
    for call in network.uses.get(attribute, ()):
        name = call_name(call)
        if name in _HARMLESS_READERS:
            continue
        if _method_of(call, attribute) and _filled_with(networks, call):
            continue
        if _method_of(call, attribute) and name in _CONTAINER_READS:
            continue  # `self.heads.values()`, `self.blocks.index(b)`: the container is read
        return True
    return False


def _method_of(call: cst.Call, attribute: str) -> bool:
    """Whether `call` is a method of `self.<attribute>` given nothing that mentions it."""
    func = call.func
    return (
        isinstance(func, cst.Attribute)
        and isinstance(func.value, cst.Attribute)
        and func.value.attr.value == attribute
        and isinstance(func.value.value, cst.Name)
        and not any(
            isinstance(n, cst.Attribute) and n.attr.value == attribute
            for arg in call.args
            for n in (arg.value, *descendants(arg.value))
        )
    )


def _may_build_a_layer(value: ast.expr) -> bool:
    """`nn.Linear(...)`, `Block(...)`, `weight_norm(Conv1d(...))`: a call `layer_built` can
    accept (a class is capitalised; a lower-case function wraps a layer in its first argument)."""
    if not isinstance(value, ast.Call):
        return False
    func = value.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    if name[:1].isupper():
        return True
    return name[:1].islower() and bool(value.args) and _may_build_a_layer(value.args[0])


def _held_by_container(value: ast.expr | None) -> list[ast.expr]:
    """What a container display, comprehension or `list(...)`/`tuple(...)` of one holds."""
    if (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id in ("list", "tuple")
        and value.args
    ):
        value = value.args[0]
    if isinstance(value, ast.BinOp) and isinstance(value.op, ast.Add):
        return _held_by_container(value.left) + _held_by_container(value.right)
    if isinstance(value, (ast.List, ast.Tuple)):
        held = [e for e in value.elts if not isinstance(e, ast.Starred)]
    elif isinstance(value, (ast.ListComp, ast.GeneratorExp)):
        held = [value.elt]
    elif isinstance(value, ast.Dict):
        held = list(value.values)
    elif isinstance(value, ast.DictComp):
        held = [value.value]
    else:
        return []
    # `[A(..) if first else B(..) for ..]`: either may be built
    branches = [(e.body, e.orelse) if isinstance(e, ast.IfExp) else (e,) for e in held]
    return [branch for pair in branches for branch in pair]


def _holds_a_layer(value: ast.expr | None) -> bool:
    """Whether a container (or a container of containers: `self.a, self.b = [..], [..]`)
    holds a call that may build a layer."""
    return any(
        _may_build_a_layer(element) or _holds_a_layer(element)
        for element in _held_by_container(value)
    )


def _fills_with_a_layer(node: ast.AST) -> bool:
    """`x.append(Block(...))` / `x.insert(i, nn.Linear(...))` / `x.extend([Norm(..), ..])`."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
        return False
    if node.func.attr == "extend":
        return _holds_a_layer(node.args[0])
    return node.func.attr in _FILLERS and _may_build_a_layer(node.args[-1])


def _assignments(function: ast.AST) -> list[tuple[list[ast.expr], ast.expr | None]]:
    """Each assignment in `function` (nested blocks included): its targets, its value."""
    found: list[tuple[list[ast.expr], ast.expr | None]] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            found.append((node.targets, node.value))
        elif isinstance(node, ast.AnnAssign):
            found.append(([node.target], node.value))
    return found


def _attribute_targets(targets: list[ast.expr]) -> list[ast.Attribute]:
    """`self.x` of `self.x = ...` and of `self.a, self.b = ...`."""
    flat = [e for t in targets for e in (t.elts if isinstance(t, (ast.Tuple, ast.List)) else [t])]
    return [target for target in flat if isinstance(target, ast.Attribute)]


def _init_keeps_layers_in_a_container(init: ast.AST, cls: ast.ClassDef) -> bool:
    """What a report starts from, in one `__init__`: an attribute set to a container of layers,
    or to a local container given layers (`towers.append(nn.Linear(..))`, `self.towers =
    towers`), or to `[]` that a method of the class appends layers to."""
    assignments = _assignments(init)
    stored_locals: set[str] = set()
    emptied: set[str] = set()
    for targets, value in assignments:
        attributes = _attribute_targets(targets)
        if attributes and isinstance(value, ast.Name):
            stored_locals.add(value.id)
        if attributes and isinstance(value, ast.List) and not value.elts:
            emptied.update(attribute.attr for attribute in attributes)
    for targets, value in assignments:
        if not _holds_a_layer(value):
            continue
        names = {target.id for target in targets if isinstance(target, ast.Name)}
        if _attribute_targets(targets) or names & stored_locals:
            return True
    for node in ast.walk(init):
        if _fills_with_a_layer(node):
            receiver = node.func.value  # type: ignore[attr-defined]
            if isinstance(receiver, ast.Name) and receiver.id in stored_locals:
                return True
    if not emptied:
        return False
    for node in ast.walk(cls):
        if _fills_with_a_layer(node):
            receiver = node.func.value  # type: ignore[attr-defined]
            if isinstance(receiver, ast.Attribute) and receiver.attr in emptied:
                return True
    return False


class _ContainerWords:
    """Stage 1: text that can store layers in a plain container, in the shapes the syntax
    stage looks for, each tried where a literal search finds its anchor:

    - `self.x = [..]`, `self.x = {..}`, `self.x = tuple(..)`, `self.x = (.., ..)` holding a
      capitalised call anywhere inside (a `(` only when it holds a tuple or a generator:
      black wraps `self.proj = (nn.Linear(..) if bias else None)` so);
    - a container filled with a layer (`towers.append(nn.Linear(..))`, `.extend([..])`,
      `.insert(0, ..)`), which the syntax stage only counts when the container is kept:
      a local name stored as an attribute (`self.towers = towers`) or an attribute set to
      `[]`. So the receiver is read, and the file must hold that store; the `append` of a
      list that becomes `nn.Sequential(*layers)`, in nearly every model file, is not one;
    - `layers = [Stem(..)]` ... `self.layers = layers` (a backreference over up to 80
      lines), tried only at the lines holding `= [Upper(`: tried at every newline it cost
      most of the screen's time.

    What a bracket holds is read with strings and comments left out, so a comment before
    the first layer or an f-string key (`{f"{a}_{b}": Linear(..)}`) changes nothing."""

    _STORED = re.compile(r"self\.\w+\s*=\s*(?:(?P<call>list|tuple)\s*)?(?P<opener>[\[\(\{])")
    _FILLED = re.compile(r"\.(?:append|extend|insert)\s*\(")
    _RECEIVER = re.compile(r"([A-Za-z_][\w.]*)\s*$")
    _LIST_OF_LAYERS = re.compile(r"=[ \t]*\[\s*(?:[\w.]*\.)?[A-Z]\w*\(")
    _LOCAL_LIST_STORED = re.compile(
        r"\n[ \t]+(\w+)[ \t]*=[ \t]*\[\s*(?:[\w.]*\.)?[A-Z]\w*\("
        r"(?:.*\n){1,80}?[ \t]+self\.\w+[ \t]*=[ \t]*\1[ \t]*\n"
    )

    def search(self, string: str) -> object | None:
        for found in self._STORED.finditer(string):
            inside = _bracketed(string, found.start("opener"))
            if inside is None:
                return found  # not closed nearby: undecided
            if (
                found.group("opener") == "("
                and found.group("call") is None
                and _TOP_LEVEL_TUPLE.search(flattened(inside)) is None
            ):
                continue  # one parenthesised value, not a tuple
            if _LAYER_CALL.search(inside) is not None:
                return found
        kept: dict[str, bool] = {}
        for filled in self._FILLED.finditer(string):
            inside = _bracketed(string, filled.end() - 1)
            if inside is not None and _LAYER_CALL.search(inside) is None:
                continue
            receiver = self._RECEIVER.search(string, max(0, filled.start() - 80), filled.start())
            if receiver is None:
                continue  # `make().append(..)`, `xs[0].append(..)`: never a kept container
            name = receiver.group(1)
            if name not in kept:
                kept[name] = self._kept(string, name)
            if kept[name]:
                return filled
        for candidate in self._LIST_OF_LAYERS.finditer(string):
            line_start = string.rfind("\n", 0, candidate.start())
            if line_start >= 0:
                stored = self._LOCAL_LIST_STORED.match(string, line_start)
                if stored is not None:
                    return stored
        return None

    @staticmethod
    def _kept(string: str, receiver: str) -> bool:
        """Whether the file keeps the filled container: `<x>.attr = name` for a local name,
        `<x>.attr = []` for an attribute."""
        local, _, attribute = receiver.rpartition(".")
        if not local:
            store = r"\.\w+[^=\n]*=[ \t]*" + re.escape(attribute) + r"[ \t]*(?:[#;\r\n]|$)"
        else:
            store = r"\." + re.escape(attribute) + r"\b[^=\n]*=[ \t]*\[[ \t]*\]"
        return re.search(store, string, re.MULTILINE) is not None


_LAYER_CALL = re.compile(r"(?<!\w)[A-Z]\w*\s*\(")
"""A call of a capitalised name, as `_may_build_a_layer` accepts (directly or wrapped)."""
_TOP_LEVEL_TUPLE = re.compile(r",|\bfor\b")


def _bracketed(string: str, opened: int) -> str | None:
    """What the bracket at `opened` holds, without its strings and comments."""
    found = bracketed(string, opened)
    return None if found is None else found[0]


_CONTAINER_WORDS = _ContainerWords()


def _layers_in_a_container_of_a_class(glance: Glance) -> bool:
    """Whether some class's `__init__` keeps layers in a plain container attribute, as far
    as the standard tree shows without knowing which classes are modules. Each `__init__`
    is judged with every class whose lines hold it (a nested class's too), found from the
    nodes the glance already lists rather than by walking every class again."""
    functions: list[ast.FunctionDef | ast.AsyncFunctionDef] = [
        *glance.nodes(ast.FunctionDef),
        *glance.nodes(ast.AsyncFunctionDef),
    ]
    inits = [function for function in functions if function.name == "__init__"]
    if not inits:
        return False
    classes = glance.nodes(ast.ClassDef)
    return any(
        cls.lineno <= init.lineno <= (cls.end_lineno or cls.lineno)
        and _init_keeps_layers_in_a_container(init, cls)
        for init in inits
        for cls in classes
    )


class UnregisteredSubmodules(Rule):
    """
    ## What it does
    Reports an attribute of an `nn.Module` subclass that `__init__` sets to a
    plain `list`, `tuple` or `dict` of freshly built layers —
    `self.blocks = [nn.Linear(d, d) for _ in range(n)]`, a dict of layers, or a
    local list filled with `append`, `extend`, `+=` or `+` and then stored. A
    layer is a `torch.nn` layer with parameters or a module class of the
    codebase (its base may be defined in another file) that builds one. Layers without parameters
    (`nn.ReLU()`), containers of existing attributes (`[self.conv1, self.conv2]`),
    a list later wrapped (`nn.ModuleList(self.blocks)`) or handed to any other
    call, and classes that are not modules are not reported.

    ## Why is this bad?
    `nn.Module` registers a submodule only when it is assigned directly or held
    by `nn.ModuleList` / `nn.ModuleDict`. Layers in a plain container are
    invisible to `parameters()`: the optimizer never updates them (they keep
    their random initial weights), `model.to(device)` leaves them behind,
    `state_dict()` does not save them and `model.eval()` does not reach them.
    The forward pass still runs, so nothing fails.

    ## References
    - [`nn.ModuleList`](https://pytorch.org/docs/stable/generated/torch.nn.ModuleList.html)
    - [`nn.ModuleDict`](https://pytorch.org/docs/stable/generated/torch.nn.ModuleDict.html)
    """

    identity = UNREGISTERED_SUBMODULES
    screen = Screen(_CONTAINER_WORDS, _layers_in_a_container_of_a_class)
    INVALID = (
        """
        import torch.nn as nn

        class MLP(nn.Module):
            def __init__(self, width, depth):
                super().__init__()
                self.layers = [nn.Linear(width, width) for _ in range(depth)]  # expect: LL017
                self.head = nn.Linear(width, 1)

            def forward(self, x):
                for layer in self.layers:
                    x = layer(x).relu()
                return self.head(x)
        """,
        """
        import torch.nn as nn

        class TwoTower(nn.Module):
            def __init__(self):
                super().__init__()
                towers = []
                for _ in range(2):
                    towers.append(nn.Linear(16, 8))
                self.towers = towers  # expect: LL017
                self.heads = {"a": nn.Linear(8, 1), "b": nn.Linear(8, 1)}  # expect: LL017
        """,
    )
    VALID = (
        """
        import torch.nn as nn

        class MLP(nn.Module):
            def __init__(self, width, depth):
                super().__init__()
                self.layers = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
                self.head = nn.Linear(width, 1)

            def forward(self, x):
                for layer in self.layers:
                    x = layer(x).relu()
                return self.head(x)
        """,
        """
        import torch.nn as nn

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(3, 8, 3)
                self.conv2 = nn.Conv2d(8, 8, 3)
                self.convs = [self.conv1, self.conv2]
                self.activations = [nn.ReLU(), nn.GELU()]
                blocks = [nn.Linear(8, 8) for _ in range(3)]
                self.body = nn.Sequential(*blocks)
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        networks = facts.networks
        for network in networks.classes.values():
            for store in network.stores_in("__init__"):
                layers = self._layers_stored(networks, network, store)
                if not layers or _handed_on(networks, network, store.attribute):
                    continue
                if _rebound_elsewhere(network, store):
                    continue
                kind = _container_kind(store.value) or "list"
                shown = ", ".join(f"`{name}`" for name in dict.fromkeys(layers))
                wrapper = "nn.ModuleDict" if kind == "dict" else "nn.ModuleList"
                yield Violation(
                    store.node,
                    f"`self.{store.attribute}` keeps {shown} layers in a plain {kind}, so "
                    f"`{network.info.name}.parameters()` does not include them: they are never "
                    f"trained, moved by `.to()` or saved; use `{wrapper}`",
                )

    @staticmethod
    def _layers_stored(
        networks: Networks, network: NetworkClass, store: AttributeStore
    ) -> list[str]:
        value = store.value
        if isinstance(value, cst.List) and not value.elements:
            # `self.blocks = []`, then `self.blocks.append(nn.Linear(...))`
            return [
                built
                for call in network.uses.get(store.attribute, ())
                if _method_of(call, store.attribute)
                for built in _filled_with(networks, call)
            ]
        if _container_kind(value) is not None:
            return _layers_in(networks, value)
        if isinstance(value, cst.Name):
            return _local_layers(networks, store.method, value.value) or []
        return []


def _rebound_elsewhere(network: NetworkClass, store: AttributeStore) -> bool:
    """Whether another store of the same attribute may replace the container
    (`self.blocks = nn.ModuleList(self.blocks)`)."""
    return any(
        other.attribute == store.attribute and other.node is not store.node
        for other in network.stores
    )
