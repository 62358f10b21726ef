"""What the watched models themselves show: eval mode while training (LL011/LL021) and
submodules kept where `parameters()` cannot see them (LL017).

A model is known when it is given to `watch(model)` or found next to an
optimizer as it is built (`construction`). Its dropout and batch-norm layers are
listed once; each optimizer step then reads only their `training` flags (a few
attribute reads), and looks further only when one of them is off.

Eval mode is a bug only where it is not a choice: a layer put in eval on its own
(`bn.eval()` to freeze batch statistics while fine-tuning) is a recipe, so what
is reported is a *container* module in eval mode (its parent, if any, in train
mode) whose dropout or batch-norm layers are off while the optimizer updates
its parameters: `model.eval()` for validation never undone (LL011), or a
`from_pretrained` model, which Hugging Face returns in eval mode, trained as it
came (LL021).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd
from torch.optim import Optimizer

from looplint.identity import (
    EVAL_MODE_NOT_RESTORED,
    PRETRAINED_MODEL_IN_EVAL_MODE,
    UNREGISTERED_SUBMODULES,
)

from .call_site import CallSite
from .finding import describe_names
from .records import OptimizerTracker
from .report import IssueLog

_MODULE_INTERNALS = frozenset(nn.Module().__dict__)


def _mode_dependent(module: nn.Module) -> bool:
    """Whether train/eval mode changes what `module` computes (dropout, batch statistics)."""
    if isinstance(module, _DropoutNd):
        return module.p > 0
    return isinstance(module, _BatchNorm) and module.track_running_stats


class WatchedModel:
    """One model's mode-dependent layers, listed once; who contains whom, and each
    module's name, read only when a layer is found in eval mode."""

    __slots__ = ("__weakref__", "_tree", "layers", "ref")

    def __init__(self, model: nn.Module, modules: list[tuple[str, nn.Module]]) -> None:
        """`modules` is `list(model.named_modules())`, which the caller walks once for
        every check made on entry."""
        self.ref: weakref.ref[nn.Module] = weakref.ref(model)
        self.layers = [module for _, module in modules if _mode_dependent(module)]
        self._tree: tuple[dict[int, nn.Module], dict[int, str]] | None = None

    def tree(self) -> tuple[dict[int, nn.Module], dict[int, str]]:
        """Each module's parent and name by `id`: built on first need (a layer in eval
        mode), so entering a block does not map a model it never has to name."""
        if self._tree is None:
            parents: dict[int, nn.Module] = {}
            names: dict[int, str] = {}
            model = self.ref()
            if model is not None:
                for name, module in model.named_modules():
                    names[id(module)] = name or type(model).__name__
                    for child in module.children():
                        parents[id(child)] = module
            self._tree = (parents, names)
        return self._tree

    def eval_containers(self) -> Iterator[nn.Module]:
        """The outermost containers in eval mode that switch a dropout/batch-norm layer off."""
        seen: set[int] = set()
        parents = self.tree()[0]
        for layer in self.layers:
            if layer.training:
                continue
            top = layer
            parent = parents.get(id(top))
            while parent is not None and not parent.training:
                top = parent
                parent = parents.get(id(top))
            if top is not layer and id(top) not in seen:
                seen.add(id(top))
                yield top


def _updated_by(module: nn.Module, optimizer: Optimizer) -> list[str]:
    """The names of `module`'s parameters that `optimizer` holds and that have gradients."""
    held = {id(param) for group in optimizer.param_groups for param in group["params"]}
    return [
        name
        for name, param in module.named_parameters()
        if id(param) in held and param.requires_grad and param.grad is not None
    ]


def _looks_pretrained(module: nn.Module) -> bool:
    """A Hugging Face style model: built by `from_pretrained`, which returns it in eval mode."""
    return hasattr(type(module), "from_pretrained") and hasattr(module, "config")


def _class_site(module: nn.Module) -> CallSite | None:
    """Where the module's class builds it (`__init__`), for a finding about its layout."""
    code = getattr(type(module).__init__, "__code__", None)
    if code is None:
        return None
    return CallSite(code.co_filename, code.co_firstlineno)


class ModelChecks:
    """LL011/LL021 on every step, LL017 once per model, for the models a block knows."""

    def __init__(
        self,
        issues: IssueLog,
        site: Callable[[], CallSite | None],
        step_observers: list[Callable[[Optimizer, OptimizerTracker], None]],
    ) -> None:
        """`before_step` joins `step_observers` with the first model that has
        dropout or batch-norm layers: until then steps do not call it at all."""
        self._issues = issues
        self._site = site
        self._step_observers = step_observers
        self._models: list[WatchedModel] = []
        self._layered: list[WatchedModel] = []

    def add(
        self, model: nn.Module, modules: list[tuple[str, nn.Module]], registered: set[int]
    ) -> None:
        """Start watching `model` (given to the block or found next to an optimizer):
        `modules` is `list(model.named_modules())`, and `registered` holds the `id`s of
        the tensors `model.parameters()` yields."""
        if any(known.ref() is model for known in self._models):
            return
        known = WatchedModel(model, modules)
        self._models.append(known)
        if known.layers:
            if not self._layered:
                self._step_observers.append(self.before_step)
            self._layered.append(known)
        self._check_containers(model, modules, registered)

    def models(self) -> list[nn.Module]:
        """The models still alive."""
        return [model for known in self._models if (model := known.ref()) is not None]

    def before_step(self, optimizer: Optimizer, tracker: OptimizerTracker) -> None:
        """Report a model trained in eval mode (read only the layers' flags when all is well)."""
        for known in self._layered:
            if all(layer.training for layer in known.layers):
                continue
            for container in known.eval_containers():
                updated = _updated_by(container, optimizer)
                if updated:
                    self._note_eval(known, container, tracker, updated)

    def _note_eval(
        self,
        known: WatchedModel,
        container: nn.Module,
        tracker: OptimizerTracker,
        updated: list[str],
    ) -> None:
        names = known.tree()[1]
        name = names.get(id(container), type(container).__name__)
        off = [
            names.get(id(layer), type(layer).__name__)
            for layer in known.layers
            if not layer.training
        ]
        pretrained = _looks_pretrained(container)
        identity = PRETRAINED_MODEL_IN_EVAL_MODE if pretrained else EVAL_MODE_NOT_RESTORED
        cause = (
            f"`{name}` ({type(container).__name__}) came from `from_pretrained`, which returns "
            "models in eval mode, and was never switched to `.train()`"
            if pretrained
            else f"`{name}` ({type(container).__name__}) is in eval mode (`.eval()` without "
            "a `.train()` after it)"
        )
        self._issues.note(
            identity,
            "pretrained-model-in-eval-mode" if pretrained else "eval-mode-step",
            f"{tracker.label} updates {len(updated)} parameter(s) of a model trained in eval "
            f"mode: {cause}, so its dropout is off and batch-norm uses running statistics "
            f"({describe_names(off)}). Call `.train()` before the training loop resumes.",
            optimizer=tracker.label,
            step=tracker.steps,
        )

    def _check_containers(
        self, model: nn.Module, modules: list[tuple[str, nn.Module]], registered: set[int]
    ) -> None:
        for path, module in modules:
            attributes = vars(module)
            # Most modules keep nothing but `nn.Module`'s own attributes and a few
            # numbers: a set difference in C leaves the few worth a look.
            own = attributes.keys() - _MODULE_INTERNALS
            kept = [name for name in own if isinstance(attributes[name], _CONTAINERS)]
            if len(kept) > 1:
                kept.sort(key=list(attributes).index)  # the class's order, run after run
            for attribute in kept:
                value = attributes[attribute]
                hidden = _hidden_parameters(value, registered)
                if not hidden:
                    continue
                owner = f"{path}.{attribute}" if path else attribute
                kind = type(value).__name__
                replacement = "nn.ModuleDict" if isinstance(value, dict) else "nn.ModuleList"
                self._issues.note(
                    UNREGISTERED_SUBMODULES,
                    "unregistered-submodules",
                    f"`{type(model).__name__}.{owner}` keeps modules in a plain `{kind}`: their "
                    f"{hidden} parameter tensor(s) are not in `model.parameters()`, so no "
                    "optimizer built from it trains them, `.to()` does not move them and "
                    f"`state_dict()` does not save them. Use `{replacement}`.",
                    group=f"{type(module).__qualname__}.{attribute}",
                    site=_class_site(module) or self._site(),
                )


def named_parameters(
    model: nn.Module, modules: list[tuple[str, nn.Module]]
) -> Iterator[tuple[str, nn.Parameter]]:
    """`model.named_parameters()` (names, order, each tensor once), read from `modules`
    (`list(model.named_modules())`, which entering a block needs anyway) instead of
    walking the modules again; a model class with its own `named_parameters` (FSDP's
    cleans its wrappers' prefixes) is asked directly."""
    if type(model).named_parameters is not nn.Module.named_parameters:
        yield from model.named_parameters()
        return
    seen: set[int] = set()
    for prefix, module in modules:
        for local, param in module._parameters.items():
            if param is not None and id(param) not in seen:
                seen.add(id(param))
                yield (f"{prefix}.{local}" if prefix else local), param


_CONTAINERS = (list, tuple, dict)
"""The plain containers that can hide modules from `parameters()`."""


def _hidden_parameters(value: object, registered: set[int]) -> int:
    """How many trainable parameter tensors of modules in a plain container `parameters()`
    misses. A frozen module kept in a list on purpose (a perceptual-loss network hidden
    from `state_dict()`) has none."""
    if isinstance(value, dict):
        items = list(value.values())
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        return 0
    return sum(
        1
        for item in items
        if isinstance(item, nn.Module)
        for param in item.parameters()
        if param.requires_grad and id(param) not in registered
    )
