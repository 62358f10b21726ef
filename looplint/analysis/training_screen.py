"""The screen of the training-loop rules: can this module hold an optimizer, scheduler or scaler?

Every training-loop rule (LL001 to LL011) reports on an object `ObjectTable` recognised — built,
annotated, handed back by a factory, or used in a role only such an object plays — or on one
another module passes in (the runner re-checks those files whatever their screen says). So a
module in which none of the evidence `recognition` and `evidence` accept can occur is skipped.

Stage 1 (`TRAINING_WORDS`) is the text test the analysis always relied on: it recognises an
object only through code containing one of these words. Stage 2 (`may_hold_training_objects`)
asks the standard library's `ast` tree whether they occur where evidence can:

- a call whose callee is telling: `torch.optim.AdamW(...)`, `self.optimizer_cls(...)`,
  `OPTIMIZERS[name](...)`, `build_optimizer(...)`, `self.optimizers()`, a name imported from
  a module or under a name that is (`from torch.optim import SGD`), `instantiate(cfg.optim)`;
- an argument that names an optimizer or scheduler class (`Trainer(opt_cls=torch.optim.Adam)`),
  or any telling argument of `instantiate(cfg.optimizer, ...)`;
- a parameter annotated with a base class (`optimizer: Optimizer`, `type[LRScheduler]`),
  the only annotations evidence reads;
- a method only these objects have: `step`, `zero_grad`, `unscale_`, `add_param_group`,
  `param_groups`, `state_dict` of a telling receiver;
- a call's result stored under a telling name (`opt = make(model)`: a factory of another module).

Mentions in docstrings, comments, log messages and names that merely contain the words
(`optimize_graph()`, `self.optimization_level`) are none of these.
"""

from __future__ import annotations

import ast
import re

from looplint.analysis.catalog import (
    OPTIMIZER_NAME,
    SCHEDULER_NAME,
    TUPLE_FACTORIES,
    named_class_kind,
    named_factory_kind,
)
from looplint.files.screening import Glance, Screen, dotted_names

TRAINING_WORDS = re.compile(
    # Literal alternatives, each searched at C speed (a character class in front is not).
    r"optim(?![a-z])|Optim(?![a-z])|optimi[sz]er|Optimi[sz]er"
    r"|GradScaler|scaler|AdamW|Adafactor|_schedule|lion_pytorch"
)
"""`optim` as a word part (not `optimize`, `optimal`, `optimization`: no evidence accepts
those), and `optimizer`/`optimiser` anywhere: `torch.optim` (schedulers and `Optimizer`
annotations included), `optimG`, `get_optimizer`, `torch.distributed.optim`,
`bitsandbytes.optim`, `apex.optimizers`, `torch_optimizer`, `timm.optim`; `GradScaler` and
`scaler` (a parameter passed to `scaler.step(x)` is an optimizer); transformers' `AdamW`,
`Adafactor`, `get_*_schedule*`/`get_scheduler` (`_schedule`, also diffusers' one), and
`lion_pytorch`. A parameter used as `x.step()` with `x.zero_grad()` needs none of them, but
it clears its own gradients and has
no scheduler, so no rule can fire on it alone."""

_OBJECT_METHODS = frozenset({"step", "zero_grad", "add_param_group"})
"""Methods that make a receiver named like an optimizer or scheduler one."""
_SCALER_METHODS = frozenset({"step", "unscale_", "scale", "update"})
"""Methods that make a receiver named like a scaler one (and its argument an optimizer)."""
_TUPLE_FACTORY_NAMES = {name.rsplit(".", 1)[-1]: name.split(".", 1)[0] for name in TUPLE_FACTORIES}
"""Library functions handing back tracked objects whatever they are stored as, with their
library (`deepspeed.initialize` returns an optimizer and a scheduler): only that call is
evidence, not every `deepspeed.zero...` helper a model file calls, nor skorch's
`net.initialize()`."""
_TELLING_PARTS = frozenset(
    {"optim", "optimizer", "optimizers", "optimiser", "optimisers", "scheduler", "schedulers"}
)
"""Parts of an identifier (split at `_` and case changes) that name the objects themselves;
`optimize`, `optimal` and `schedule` do not."""
_ANNOTATED_BASES = frozenset(
    {"Optimizer", "LRScheduler", "_LRScheduler", "ReduceLROnPlateau", "GradScaler"}
)
"""The last names of the classes whose annotation `evidence` takes a parameter to hold one
(`catalog.annotated_kind`): `optimizer: torch.optim.Optimizer`, `sched: LRScheduler`."""
_PARTS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def _parts(word: str) -> set[str]:
    return {part.lower() for part in _PARTS.findall(word)}


def _telling(word: str) -> bool:
    """Whether an identifier can name an optimizer, scheduler, scaler or their factory."""
    return (
        not _TELLING_PARTS.isdisjoint(_parts(word))
        or "GradScaler" in word
        or "lion_pytorch" in word
        or named_class_kind(word) is not None
        or named_factory_kind(word) is not None
        or OPTIMIZER_NAME.match(word) is not None
        or SCHEDULER_NAME.match(word) is not None
    )


def _words(node: ast.AST) -> list[str]:
    """The identifiers of an expression: names, attributes, and short strings (`cfg["optim"]`,
    `getattr(torch.optim, "AdamW")`, quoted annotations)."""
    found: list[str] = []
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.append(child.id)
        elif isinstance(child, ast.Attribute):
            found.append(child.attr)
        elif isinstance(child, ast.Constant) and isinstance(child.value, str):
            if len(child.value) <= 80 and "\n" not in child.value:
                found.extend(re.findall(r"\w+", child.value))
    return found


def _callee_words(func: ast.expr) -> list[str]:
    """The names a callee is spelled with, the called name first: `optimizer_cls` of
    `self.optimizer_cls`, `OPTIMIZERS` of `OPTIMIZERS[name]`; for `getattr(torch.optim, name)`
    the words of its arguments; never the arguments of a call it is made from
    (`super(AdaBelief, self).__init__`)."""
    found: list[str] = []
    while True:
        if isinstance(func, ast.Attribute):
            found.append(func.attr)
            func = func.value
        elif isinstance(func, ast.Subscript):
            func = func.value
        elif isinstance(func, ast.Call):
            if not found and isinstance(func.func, ast.Name) and func.func.id == "getattr":
                words = [word for arg in func.args for word in _words(arg)]
                return sorted(words, key=lambda word: not _telling(word))
            func = func.func
        elif isinstance(func, ast.Name):
            found.append(func.id)
            return found
        else:
            return found


def _last_name(node: ast.expr) -> str:
    """`Type` of `typing.Type`, `type` of `type`; empty for anything else."""
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _receiver_name(func: ast.Attribute) -> str:
    """`self.scaler` of `self.scaler.step(opt)`: the receiver's last name."""
    value = func.value
    if isinstance(value, ast.Attribute):
        return value.attr
    if isinstance(value, ast.Name):
        return value.id
    if isinstance(value, ast.Subscript):
        return _receiver_name(ast.Attribute(value.value, "", ast.Load()))
    return ""


class _Evidence:
    """A look at a module's `ast` nodes for anything a rule could start from."""

    def __init__(self, glance: Glance) -> None:
        self.glance = glance
        self.imported: set[str] = set()
        """Local names bound by a telling import (`SGD` of `from torch.optim import SGD`)."""
        self.libraries: set[str] = set()
        """Top-level packages the module imports from."""
        for node in glance.nodes(ast.ImportFrom):
            module = node.module or ""
            self.libraries.add(module.split(".")[0])
            for alias in node.names:
                if any(_telling(part) for part in module.split(".")) or _telling(alias.name):
                    self.imported.add(alias.asname or alias.name)
        for statement in glance.nodes(ast.Import):
            for alias in statement.names:
                self.libraries.add(alias.name.split(".")[0])
                if any(_telling(part) for part in alias.name.split(".")):
                    self.imported.add((alias.asname or alias.name).split(".")[0])

    def telling(self, words: list[str]) -> bool:
        return any(_telling(word) or word in self.imported for word in words)

    def found(self) -> bool:
        glance = self.glance
        return (
            any(self._telling_call(call) for call in glance.nodes(ast.Call))
            or any(
                arg.annotation is not None and self._names_a_base(arg.annotation)
                for arg in glance.nodes(ast.arg)
            )
            or any(
                attribute.attr == "param_groups" and _receiver_name(attribute) != "self"
                for attribute in glance.nodes(ast.Attribute)
            )
            or any(
                isinstance(assign.value, ast.Call)
                and any(
                    OPTIMIZER_NAME.match(word) or SCHEDULER_NAME.match(word)
                    for target in assign.targets
                    for word in _words(target)
                )
                for assign in glance.nodes(ast.Assign)
            )
        )

    def _names_a_base(self, annotation: ast.expr) -> bool:
        """A parameter annotation `evidence` accepts: the base class itself
        (`torch.optim.Optimizer`, `lr_scheduler.LRScheduler`, an alias imported from a
        telling module), or `type[...]` of one. `Optional[Optimizer]`, `tuple[Optimizer,
        LambdaLR]`, quoted names, return and variable annotations name no parameter's object."""
        if (
            isinstance(annotation, ast.Subscript)
            and _last_name(annotation.value) in ("type", "Type")
            and not isinstance(annotation.slice, ast.Tuple)
        ):
            annotation = annotation.slice
        names = dotted_names(annotation)
        return names is not None and (names[-1] in _ANNOTATED_BASES or names[0] in self.imported)

    def _telling_call(self, call: ast.Call) -> bool:
        func = call.func
        if isinstance(func, ast.Attribute):
            receiver = _receiver_name(func)
            if func.attr in _SCALER_METHODS and "scaler" in receiver.lower():
                return True
            if func.attr in _OBJECT_METHODS:
                return self.telling([receiver]) or func.attr == "add_param_group"
        callee = _callee_words(func)
        if self.telling(callee[:1]) or self._tuple_factory(callee):
            return True  # what is called names a tracked class or factory
        values = [*call.args, *(keyword.value for keyword in call.keywords)]
        if callee[:1] in (["instantiate"], ["call"]):
            return any(self.telling(_words(value)) for value in values)
        return any(self._names_a_class(value) for value in values)

    def _tuple_factory(self, callee: list[str]) -> bool:
        """`deepspeed.initialize(...)`, or `initialize(...)` in a module importing deepspeed."""
        library = _TUPLE_FACTORY_NAMES.get(callee[0]) if callee else None
        return library is not None and (library in callee or library in self.libraries)

    def _names_a_class(self, value: ast.expr) -> bool:
        """`torch.optim.Adam`, `optim.lr_scheduler.StepLR`, an imported `AdamW`: a class
        handed over to be built elsewhere."""
        names = dotted_names(value)
        return names is not None and (
            named_class_kind(names[-1]) is not None
            or names[-1] in self.imported
            or bool({"optim", "lr_scheduler"} & set(names))
        )


def may_hold_training_objects(glance: Glance) -> bool:
    """Whether evidence of an optimizer, LR scheduler or GradScaler can occur in a module."""
    return _Evidence(glance).found()


TRAINING_CODE = Screen(TRAINING_WORDS, may_hold_training_objects)
"""The screen of every rule about training loops (the default of `Rule.screen`)."""
