"""LL003: an optimizer that is handed only part of the trained model."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from looplint.analysis.catalog import (
    LAYERS_WITH_BIAS,
    TORCH_PARAMETERLESS_MODULES,
    ObjectKind,
    takes_model_not_parameters,
)
from looplint.analysis.facts import Frame, ModuleFacts
from looplint.analysis.operations import Construct
from looplint.analysis.program import (
    AssignEvent,
    CallEvent,
    ClassInfo,
    FunctionInfo,
    ModuleProgram,
    WithEvent,
    all_events,
)
from looplint.analysis.summary import ModuleSummary, instances_bound, unmoved
from looplint.analysis.syntax import (
    argument,
    descendants,
    dotted_name,
    keyword_arg,
    positional_args,
    source_of,
)
from looplint.identity import PARTIAL_PARAMETERS
from looplint.rule import Rule, Violation

_CONCATENATORS = frozenset({"list", "tuple", "chain", "itertools.chain"})


class _Unknown(Exception):
    """The parameter expression is not a plain union of `.parameters()` calls."""


def _parameter_receivers(node: cst.BaseExpression, out: list[str]) -> None:
    """Receivers of the `.parameters()` calls a parameter expression is built from."""
    if isinstance(node, (cst.List, cst.Tuple)):
        for element in node.elements:
            _parameter_receivers(element.value, out)
    elif isinstance(node, cst.Dict):
        for entry in node.elements:
            if (
                isinstance(entry, cst.DictElement)
                and isinstance(entry.key, cst.SimpleString)
                and entry.key.evaluated_value == "params"
            ):
                _parameter_receivers(entry.value, out)
    elif isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Add):
        _parameter_receivers(node.left, out)
        _parameter_receivers(node.right, out)
    elif isinstance(node, cst.Call):
        func = dotted_name(node.func)
        if (
            isinstance(node.func, cst.Attribute)
            and node.func.attr.value == "parameters"
            and not node.args
        ):
            receiver = dotted_name(node.func.value)
            if receiver is None:
                raise _Unknown
            out.append(receiver)
        elif func in _CONCATENATORS:
            for arg in node.args:
                _parameter_receivers(arg.value, out)
        else:
            raise _Unknown
    else:
        raise _Unknown


def _attribute_bears_parameters(value: cst.BaseExpression, program: ModuleProgram) -> bool:
    """Whether `self.x = value` gives the model trainable parameters (`GCNConv(...)`, also
    moved: `GCNConv(...).to(device1)`)."""
    value = unmoved(value)
    if not isinstance(value, cst.Call):
        return False
    qualified = program.imports.qualify(value.func) or dotted_name(value.func) or ""
    last = qualified.rsplit(".", 1)[-1]
    if last in TORCH_PARAMETERLESS_MODULES or not last[:1].isupper():
        return False
    if last in ("Parameter", "Linear", "Conv1d", "Conv2d", "Conv3d", "Embedding", "LayerNorm"):
        return keyword_arg(value, "requires_grad") is None
    return True


def _submodules(cls: ClassInfo, program: ModuleProgram) -> list[str]:
    names: list[str] = []
    pending, seen = [cls], set()
    while pending:
        current = pending.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        for attr, values in current.attribute_values.items():
            if attr not in names and any(_attribute_bears_parameters(v, program) for v in values):
                names.append(attr)
        pending.extend(program.classes[b] for b in current.bases if b in program.classes)
    return names


_GRADIENT_BLOCKERS = frozenset({"no_grad", "inference_mode", "detach", "detach_", "requires_grad_"})


def _blocks_gradients(cls: ClassInfo, program: ModuleProgram) -> bool:
    """Whether the model's own code stops gradients somewhere (`torch.no_grad()`, `.detach()`)."""
    for method in cls.methods.values():
        for event in all_events(method.events):
            if isinstance(event, WithEvent):
                for context in event.contexts:
                    func = context.func if isinstance(context, cst.Call) else context
                    if (dotted_name(func) or "").rsplit(".", 1)[-1] in _GRADIENT_BLOCKERS:
                        return True
            elif isinstance(event, CallEvent) and isinstance(event.node.func, cst.Attribute):
                if event.node.func.attr.value in _GRADIENT_BLOCKERS:
                    return True
    return any(
        _blocks_gradients(program.classes[base], program)
        for base in cls.bases
        if base in program.classes and base != cls.name
    )


def _is_run(
    chain: str,
    summary: ModuleSummary,
    program: ModuleProgram,
    optimizers: frozenset[str] = frozenset(),
) -> bool:
    """Whether the model `chain` is run: called itself (`model(x)`), through a method
    its same-module class defines (`agent.get_action_and_value(x)`), or handed along
    with one of the module's optimizers (`optimizers`, their names) to a trainer
    (`Naive(model=model, optimizer=optimizer)`), which trains it as a whole."""
    if chain in summary.called_chains:
        return True
    if any(chain in handed and handed & optimizers for handed in summary.handed_together):
        return True
    classes = set(summary.instances.get(chain, ()))
    return len(classes) == 1 and any(
        f"{chain}.{method}" in summary.called_chains
        for method in program.classes[next(iter(classes))].methods
        if method != "__init__"
    )


def _model_of(
    receiver: str,
    summary: ModuleSummary,
    program: ModuleProgram,
    optimizers: frozenset[str] = frozenset(),
) -> tuple[str, str] | None:
    """Split `model.encoder` into the model that is run (`model`) and the part (`encoder`)."""
    parts = receiver.split(".")
    for size in range(1, len(parts)):
        prefix = ".".join(parts[:size])
        if prefix != "self" and _is_run(prefix, summary, program, optimizers):
            return prefix, parts[size]
    return None


class PartialParameters(Rule):
    """
    ## What it does
    Reports an optimizer constructed over an empty list, over a hand-picked list of
    module tensors that leaves out a sibling (`[model.fc.weight]` without
    `model.fc.bias`), or over the parameters of only some submodules of a model
    that is run and trained as a whole (`model.encoder.parameters()` while
    `model.decoder` also has trainable parameters), when the omitted parts are
    not frozen anywhere in the module. A model run through its own methods
    (`agent.get_value(x)`) is run; in a LightningModule, `self` is the model the
    trainer runs. Also reported: a union of parameters gathered
    (`list(net.parameters()) + list(margin.parameters())`) while the optimizer is
    built over part of it; a parameter group filled and never handed to the
    optimizer; an optimizer built before `fully_shard`/`parallelize_module`/FSDP
    replaces the parameters it holds.

    Not reported: frozen parts (`requires_grad = False`, `requires_grad_(False)`),
    `filter(lambda p: p.requires_grad, ...)`, parameter groups built from
    `named_parameters()`, raw tensors created with `requires_grad=True`, an input
    image being optimised, and several optimizers that together cover a model
    (GANs, actor-critic).

    ## Why is this bad?
    The omitted parameters still receive gradients every step, but no optimizer
    ever applies them: those layers stay at their initial values. The loss still
    goes down (the rest of the model compensates), so nothing looks wrong.

    ## References
    - [PyTorch: per-parameter options](https://pytorch.org/docs/stable/optim.html#per-parameter-options)
    """

    identity = PARTIAL_PARAMETERS
    INVALID = (
        """
        import torch
        from torch import nn

        class AutoEncoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.Linear(784, 32)
                self.decoder = nn.Linear(32, 784)

            def forward(self, x):
                return self.decoder(self.encoder(x))

        model = AutoEncoder()
        optimizer = torch.optim.Adam(model.encoder.parameters())  # expect: LL003
        for x in loader:
            optimizer.zero_grad()
            loss_fn(model(x), x).backward()
            optimizer.step()
        """,
        """
        import torch

        optimizer = torch.optim.SGD([], lr=0.1)  # expect: LL003
        """,
    )
    VALID = (
        """
        import torch
        from torch import nn

        class AutoEncoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.encoder = nn.Linear(784, 32)
                self.decoder = nn.Linear(32, 784)

            def forward(self, x):
                return self.decoder(self.encoder(x))

        model = AutoEncoder()
        optimizer = torch.optim.Adam(model.parameters())
        for x in loader:
            optimizer.zero_grad()
            loss_fn(model(x), x).backward()
            optimizer.step()
        """,
        """
        import torch

        model.backbone.requires_grad_(False)
        optimizer = torch.optim.Adam(model.head.parameters())
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        constructs: dict[int, Construct] = {}
        lightning: dict[int, ClassInfo] = {}
        scopes: dict[int, FunctionInfo] = {}
        """Constructs in a LightningModule's method: `self` is the model the trainer runs."""
        for function, sites in facts.all_sites():
            for site in sites:
                op = site.op
                if (
                    isinstance(op, Construct)
                    and op.kind is ObjectKind.OPTIMIZER
                    and not takes_model_not_parameters(op.qualified)
                ):
                    constructs.setdefault(id(op.node), op)
                    scopes[id(op.node)] = function
                    if function.owner is not None and _lightning_trained(function.owner):
                        lightning[id(op.node)] = function.owner
        if not constructs:
            return
        optimizer_names = _names_bound_to(constructs, facts)
        # What the optimizers of one scope cover, by model: a function's own optimizers
        # (other functions may build theirs over the same name for another model), or a
        # class's (`self.` models) across its methods.
        coverage: dict[tuple[str, str, int | None], set[str] | None] = {}
        parsed: list[tuple[Construct, dict[str, set[str]]]] = []
        summary = facts.summary
        for construct in constructs.values():
            params = argument(construct.node, 0, "params")
            if params is None:
                continue
            if isinstance(params, (cst.List, cst.Tuple)) and not params.elements:
                yield Violation(
                    construct.node,
                    f"`{dotted_name(construct.node.func)}` is given an empty parameter list, so it "
                    "updates nothing; pass `model.parameters()`",
                )
                continue
            picked = self._hand_picked_omission(params, facts)
            if picked is not None:
                yield Violation(construct.node, picked)
                continue
            receivers: list[str] = []
            try:
                _parameter_receivers(params, receivers)
            except _Unknown:
                continue
            parts: dict[str, set[str]] = {}
            for receiver in receivers:
                if id(construct.node) in lightning and receiver.startswith("self."):
                    part = receiver.split(".")[1]
                    parts.setdefault("self", set()).add(part)
                    self_covered = coverage.setdefault(
                        _scope(scopes[id(construct.node)], "self", construct, facts), set()
                    )
                    if self_covered is not None:
                        self_covered.add(part)
                    continue
                # `model.encoder` is a part of `model` when `model` is run, even if the part
                # is also run on its own somewhere (greedy decoding calls `model.encoder`).
                split = _model_of(receiver, summary, facts.program, optimizer_names)
                if split is None and _is_run(receiver, summary, facts.program, optimizer_names):
                    whole = _scope(scopes[id(construct.node)], receiver, construct, facts)
                    coverage[whole] = None  # the whole model
                    continue
                if split is None:
                    parts = {}
                    break
                model, part = split
                parts.setdefault(model, set()).add(part)
                where = _scope(scopes[id(construct.node)], model, construct, facts)
                covered = coverage.setdefault(where, set())
                if covered is not None:
                    covered.add(part)
            if parts:
                parsed.append((construct, parts))
        yield from _built_before_sharding(facts, constructs)
        if summary.freezes_parameters or not (summary.has_backward or lightning):
            return
        yield from _union_left_aside(facts)
        yield from _group_left_aside(facts)
        for construct, parts in parsed:
            for model, given in parts.items():
                covered = coverage.get(_scope(scopes[id(construct.node)], model, construct, facts))
                if covered is None:
                    continue
                if model == "self" and id(construct.node) in lightning:
                    model_class = lightning[id(construct.node)]
                else:
                    found = _model_class(model, given, construct, scopes[id(construct.node)], facts)
                    if found is None:
                        continue
                    model_class = found
                if _blocks_gradients(model_class, facts.program):
                    continue
                members = _submodules(model_class, facts.program)
                if model == "self":
                    # Only layers certainly trained by the loss: a LightningModule also holds
                    # metrics and other helpers that are modules without being layers.
                    members = [m for m in members if _torch_layer(model_class, m, facts.program)]
                omitted = [m for m in members if m not in covered]
                if not omitted or not any(m in given for m in members):
                    continue
                given_text = ", ".join(f"`{model}.{g}`" for g in sorted(given))
                omitted_text = ", ".join(f"`{model}.{m}`" for m in omitted)
                yield Violation(
                    construct.node,
                    f"the optimizer gets the parameters of {given_text} only, but `{model}` is "
                    f"trained as a whole and {omitted_text} is never updated; pass "
                    f"`{model}.parameters()` or freeze the parts you leave out",
                )

    @staticmethod
    def _hand_picked_omission(params: cst.BaseExpression, facts: ModuleFacts) -> str | None:
        if not isinstance(params, (cst.List, cst.Tuple)) or facts.summary.freezes_parameters:
            return None
        chains = [dotted_name(element.value) for element in params.elements]
        if not chains or any(c is None or c.count(".") < 2 for c in chains):
            return None
        present: dict[str, set[str]] = {}
        for chain in chains:
            assert chain is not None
            prefix, _, leaf = chain.rpartition(".")
            if leaf not in ("weight", "bias"):
                return None
            present.setdefault(prefix, set()).add(leaf)
        if not facts.summary.has_backward:
            return None
        for prefix, leaves in present.items():
            if leaves == {"weight"} and not _built_without_bias(prefix, facts):
                return (
                    f"the optimizer is given `{prefix}.weight` but not `{prefix}.bias`, which is "
                    f"trained but never updated; pass `{prefix}.parameters()`"
                )
            if leaves == {"bias"}:
                return (
                    f"the optimizer is given `{prefix}.bias` but not `{prefix}.weight`, which is "
                    f"trained but never updated; pass `{prefix}.parameters()`"
                )
        return None


def _model_class(
    model: str, given: set[str], construct: Construct, function: FunctionInfo, facts: ModuleFacts
) -> ClassInfo | None:
    """The same-module class of `model` when the optimizer is built. A name bound to several
    classes (`model = GCN()` ... `model = GAT()`, or one class per `--type`) means the one
    that has every part handed to the optimizer (the others would raise), else the last
    one bound before the optimizer in the same function."""
    program = facts.program
    bound = dict.fromkeys(facts.summary.instances.get(model, ()))
    classes = [c for c in bound if c in program.classes]
    if len(classes) == 1:
        return program.classes[classes[0]]
    fitting = [c for c in classes if given <= set(_submodules(program.classes[c], program))]
    if len(fitting) == 1:
        return program.classes[fitting[0]]
    latest = _bound_before(model, construct, function, program)
    return program.classes[latest[0]] if latest is not None and latest[0] in fitting else None


def _torch_layer(owner: ClassInfo, attribute: str, program: ModuleProgram) -> bool:
    """Whether `self.attribute` is built as a `torch.nn` layer or a class of this module."""
    for value in owner.attribute_values.get(attribute, ()):
        if not isinstance(value, cst.Call):
            return False
        qualified = program.imports.qualify(value.func) or dotted_name(value.func) or ""
        if not (qualified.startswith("torch.nn.") or qualified in program.classes):
            return False
    return attribute in owner.attribute_values


_SHARDERS = frozenset({"fully_shard", "parallelize_module", "FullyShardedDataParallel", "FSDP"})
"""Calls that replace a module's parameters with sharded ones (DTensors, flat parameters)."""


def _built_before_sharding(
    facts: ModuleFacts, constructs: dict[int, Construct]
) -> Iterator[Violation]:
    """`optimizer = AdamW(model.parameters())` and then `fully_shard(model)`: sharding swaps
    the module's parameters for new tensors, so the optimizer holds the old ones, which no
    longer receive gradients."""
    for function in facts.program.functions:
        frame = Frame(function, {})
        built: list[Construct] = []
        for event in all_events(function.events):
            if not isinstance(event, CallEvent):
                continue
            construct = constructs.get(id(event.node))
            if construct is not None:
                built.append(construct)
                continue
            name = (dotted_name(event.node.func) or "").rsplit(".", 1)[-1]
            module = argument(event.node, 0, "module")
            if name not in _SHARDERS or module is None or not built:
                continue
            sharded = facts.scopes.identity(module, frame)
            if sharded is None:
                continue
            for construct in built:
                if _covered(sharded, set(construct.parameter_sources)):
                    yield Violation(
                        construct.node,
                        f"the optimizer is built over `{source_of(module)}`'s parameters before "
                        f"`{name}(...)` replaces them with sharded ones, so it updates tensors "
                        "that no longer train; build the optimizer after sharding",
                    )
            built = [c for c in built if not _covered(sharded, set(c.parameter_sources))]


def _scope(
    function: FunctionInfo, model: str, construct: Construct, facts: ModuleFacts
) -> tuple[str, str, int | None]:
    """Where optimizers over `model` cover it together: its class for `self` models (an
    optimizer per method of a GAN trainer), else the function that builds them, for the
    instance bound to the name then (`model = GCN()` trained, then `model = GAT()`)."""
    owner = function.owner
    if owner is not None and (model == "self" or model.startswith("self.")):
        return owner.name, model, None
    bound = _bound_before(model, construct, function, facts.program)
    return function.qualname, model, None if bound is None else id(bound[1])


def _bound_before(
    model: str, construct: Construct, function: FunctionInfo, program: ModuleProgram
) -> tuple[str, cst.CSTNode] | None:
    """The same-module class last bound to `model` in `function` before `construct`, with
    the assignment that bound it."""
    latest: tuple[str, cst.CSTNode] | None = None
    for event in all_events(function.events):
        if isinstance(event, AssignEvent) and event.value is not None:
            if any(node is construct.node for node in (event.value, *descendants(event.value))):
                break
            for text, owner in instances_bound(event, function, program):
                if text == model:
                    latest = owner, event.node
    return latest


def _names_bound_to(constructs: dict[int, Construct], facts: ModuleFacts) -> frozenset[str]:
    """The names the optimizers are bound to where they are built (`optimizer`)."""
    names: set[str] = set()
    for function in facts.program.functions:
        for event in all_events(function.events):
            if isinstance(event, AssignEvent) and id(event.value) in constructs:
                names.update(t for target in event.targets if (t := dotted_name(target)))
    return frozenset(names)


def _lightning_trained(owner: ClassInfo) -> bool:
    """A LightningModule with a `training_step`: the trainer runs it as a whole and
    backpropagates the loss that method returns."""
    return "training_step" in owner.methods and any(
        base.rsplit(".", 1)[-1] == "LightningModule" for base in owner.bases
    )


def _covered(receiver: str, sources: set[str]) -> bool:
    """Whether an optimizer built from `sources` updates the module `receiver`."""
    for source in sources:
        base = source.removesuffix(".parameters").removesuffix(".named_parameters")
        if base == receiver or receiver.startswith(base + ".") or base.startswith(receiver + "."):
            return True
    return False


def _union_left_aside(facts: ModuleFacts) -> Iterator[Violation]:
    """`params = list(model.parameters()) + list(criterion.parameters())` gathered, then an
    optimizer built over `model.parameters()` alone: the union says `criterion` (a loss with
    weights of its own, an ArcFace head) is meant to train, yet no optimizer updates it."""
    program = facts.program
    for function, sites in facts.all_sites():
        constructs = [
            s.op for s in sites if isinstance(s.op, Construct) and s.op.kind is ObjectKind.OPTIMIZER
        ]
        if not constructs:
            continue
        sources = {source for c in constructs for source in c.parameter_sources}
        frame = Frame(function, {})
        for event in all_events(function.events):
            if not isinstance(event, AssignEvent) or event.value is None:
                continue
            if len(event.targets) != 1 or event.augmented:
                continue
            union = facts.scopes.identity(event.targets[0], frame)
            receivers: list[str] = []
            try:
                _parameter_receivers(event.value, receivers)
            except _Unknown:
                continue
            if union is None or len(set(receivers)) < 2 or _covered(union, sources):
                continue
            identities = [facts.scopes.identity(cst.parse_expression(r), frame) for r in receivers]
            given = [
                r for r, i in zip(receivers, identities, strict=True) if i and _covered(i, sources)
            ]
            missing = [
                r
                for r, i in zip(receivers, identities, strict=True)
                if i is not None
                and not _covered(i, sources)
                and _trains_own_weights(r, facts, program)
            ]
            if not given or not missing:
                continue
            construct = next(
                c
                for c in constructs
                if any(_covered(i or "", set(c.parameter_sources)) for i in identities)
            )
            names = ", ".join(f"`{m}`" for m in missing)
            yield Violation(
                construct.node,
                f"`{source_of(event.targets[0])}` gathers the parameters of "
                f"{', '.join(f'`{r}`' for r in receivers)}, but the optimizer is built over "
                f"{', '.join(f'`{g}`' for g in given)} only, so {names} is never updated; pass "
                f"`{source_of(event.targets[0])}`",
            )


def _group_left_aside(facts: ModuleFacts) -> Iterator[Violation]:
    """`no_decay = {"params": [], "weight_decay": 0.0}` filled with parameters and never
    appended to the groups the optimizer gets: those parameters are never updated."""
    for function, sites in facts.all_sites():
        constructs = [
            s.op for s in sites if isinstance(s.op, Construct) and s.op.kind is ObjectKind.OPTIMIZER
        ]
        if len(constructs) != 1 or not constructs[0].parameter_sources:
            continue
        sources = set(constructs[0].parameter_sources)
        frame = Frame(function, {})
        groups: dict[str, cst.BaseExpression] = {}
        used: set[str] = set()
        filled: set[str] = set()
        for event in all_events(function.events):
            if isinstance(event, AssignEvent) and isinstance(event.value, cst.Dict):
                target = event.targets[0] if len(event.targets) == 1 else None
                identity = facts.scopes.identity(target, frame) if target is not None else None
                if identity is not None and _entry_of(event.value, "params") is not None:
                    groups[identity] = event.targets[0]
            elif isinstance(event, CallEvent):
                func = event.node.func
                receiver = func.value if isinstance(func, cst.Attribute) else None
                if (
                    isinstance(func, cst.Attribute)
                    and func.attr.value in ("append", "extend")
                    and isinstance(receiver, cst.Subscript)
                ):
                    holder = facts.scopes.identity(receiver.value, frame)
                    if holder is not None:
                        filled.add(holder)
                for arg in event.node.args:
                    for chain in (arg.value, *_chains(arg.value)):
                        identity = facts.scopes.identity(chain, frame)
                        if identity is not None:
                            used.add(identity)
        returned = {
            identity
            for value in function.returns
            for chain in (value, *_chains(value))
            if (identity := facts.scopes.identity(chain, frame)) is not None
        }
        for identity, target in groups.items():
            if identity in filled and identity not in used | returned | sources:
                yield Violation(
                    constructs[0].node,
                    f"the parameter group `{source_of(target)}` is filled but never handed to "
                    f"the optimizer, so its parameters are never updated; add it to the groups",
                )


def _chains(value: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    for node in descendants(value):
        if isinstance(node, (cst.Name, cst.Attribute)):
            yield node


def _entry_of(literal: cst.Dict, key: str) -> cst.BaseExpression | None:
    for element in literal.elements:
        if (
            isinstance(element, cst.DictElement)
            and isinstance(element.key, cst.SimpleString)
            and element.key.evaluated_value == key
        ):
            return element.value
    return None


def _trains_own_weights(receiver: str, facts: ModuleFacts, program: ModuleProgram) -> bool:
    """Whether `receiver` is an instance of a class of this module that has parameters of
    its own and is run (a loss with a weight matrix, a head)."""
    classes = set(facts.summary.instances.get(receiver, ()))
    if len(classes) != 1 or receiver not in facts.summary.called_chains:
        return False
    owner = program.classes[next(iter(classes))]
    return bool(_submodules(owner, program)) and not _blocks_gradients(owner, program)


def _built_without_bias(prefix: str, facts: ModuleFacts) -> bool:
    """Whether the module at `prefix` may have no `.bias`: only a layer seen being built
    with one (`nn.Linear(a, b)`, a same-module subclass of it) certainly has one."""
    attr = prefix.rsplit(".", 1)[-1]
    values = [
        value
        for cls in facts.program.classes.values()
        for value in cls.attribute_values.get(attr, ())
    ]
    return not values or not all(_has_bias(value, facts) for value in values)


def _has_bias(value: cst.BaseExpression, facts: ModuleFacts, depth: int = 0) -> bool:
    """Whether the layer `value` builds certainly has a bias parameter."""
    if not isinstance(value, cst.Call) or depth > 3:
        return False
    bias = keyword_arg(value, "bias")
    if bias is None and len(positional_args(value)) > 2:
        bias = positional_args(value)[2]  # nn.Linear(in, out, False)
    if bias is not None:
        return not (isinstance(bias, cst.Name) and bias.value == "False")
    name = (dotted_name(value.func) or "").rsplit(".", 1)[-1]
    if name in LAYERS_WITH_BIAS:
        return True
    owner = facts.program.classes.get(name)
    if owner is None:
        return False
    init = facts.program.method(owner, "__init__")
    for event in all_events(init.events if init is not None else ()):
        if (
            isinstance(event, CallEvent)
            and isinstance(event.node.func, cst.Attribute)
            and event.node.func.attr.value == "__init__"
            and isinstance(event.node.func.value, cst.Call)
        ):
            base = next(iter(owner.bases), "")
            built = event.node.with_changes(func=cst.parse_expression(base or "object"))
            return _has_bias(built, facts, depth + 1)
    return any(base.rsplit(".", 1)[-1] in LAYERS_WITH_BIAS for base in owner.bases)
