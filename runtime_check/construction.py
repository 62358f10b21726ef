"""Where optimizers are built, and the model found next to each one.

While a block is open, `scoped_patches` tells it about every `Optimizer.__init__`
that completes. The block then knows the user's line that built the optimizer
(so a finding can say "`SGD #0`, built at train.py:41") and looks for the model
the optimizer serves: the outermost `nn.Module` in the building code's local
variables (or on its `self`) that holds at least one of the optimizer's
parameters. That is how a block opened without a model (the pytest plugin,
`looplint run`) still checks coverage (LL003): an optimizer over half of a model
is measured against the whole model it was built from.
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Iterator
from types import FrameType
from typing import Any

from torch import nn
from torch.optim import Optimizer

from .call_site import CallSite, is_library_file, is_own_file

_MAX_FRAMES = 12
"""How far out from the building call the model is looked for (helpers, trainers)."""


def construction_site(optimizer: Optimizer, frame: FrameType | None) -> CallSite | None:
    """The user's line that built `optimizer`: the first frame outward from `frame`
    that is not the optimizer's own (sub)class `__init__` and not torch or looplint."""
    fallback: CallSite | None = None
    for current in _frames(frame):
        if current.f_locals.get("self") is optimizer:
            continue
        file = current.f_code.co_filename
        if is_own_file(file):
            continue
        site = CallSite(file, current.f_lineno or 0)
        if not is_library_file(file):
            return site
        if fallback is None:
            fallback = site
    return fallback


def models_near(optimizer: Optimizer, frame: FrameType | None) -> list[nn.Module]:
    """The outermost modules, in the frames that built `optimizer`, holding its parameters.

    The innermost frame that has any such module decides (a helper that gets the
    model as an argument, `configure_optimizers(self)`, a trainer's `self.model`);
    a module inside another candidate is dropped in favour of the outer one.
    """
    wanted = {id(param) for group in optimizer.param_groups for param in group["params"]}
    if not wanted:
        return []
    for current in _frames(frame):
        if current.f_locals.get("self") is optimizer or is_own_file(current.f_code.co_filename):
            continue
        holders = [module for module in _modules_in(current) if _shares(module, wanted)]
        if holders:
            return _outermost(holders)
    return []


def _frames(frame: FrameType | None) -> Iterator[FrameType]:
    current = frame
    for _ in range(_MAX_FRAMES):
        if current is None:
            return
        yield current
        current = current.f_back


def _modules_in(frame: FrameType) -> list[nn.Module]:
    found: dict[int, nn.Module] = {}
    for value in list(frame.f_locals.values()):
        if isinstance(value, nn.Module):
            found[id(value)] = value
    owner = frame.f_locals.get("self")
    attributes: dict[str, Any] = getattr(owner, "__dict__", {}) if owner is not None else {}
    for value in list(attributes.values()):
        if isinstance(value, nn.Module):
            found[id(value)] = value
    return list(found.values())


def _shares(module: nn.Module, wanted: set[int]) -> bool:
    return any(id(param) in wanted for param in module.parameters())


def _outermost(modules: list[nn.Module]) -> list[nn.Module]:
    inside: set[int] = set()
    for module in modules:
        inside.update(id(sub) for sub in module.modules() if sub is not module)
    return [module for module in modules if id(module) not in inside]


class Constructions:
    """The optimizers built while one block was open, and the models found for them."""

    def __init__(self) -> None:
        self._sites: weakref.WeakKeyDictionary[Optimizer, CallSite] = weakref.WeakKeyDictionary()
        self.models: list[weakref.ref[nn.Module]] = []

    def built(self, optimizer: Optimizer) -> list[nn.Module]:
        """Note where `optimizer` was built; return the models newly found for it."""
        frame: FrameType | None = sys._getframe(1)
        try:
            site = construction_site(optimizer, frame)
            if site is not None:
                self._sites[optimizer] = site
            known = {id(ref()) for ref in self.models}
            new = [model for model in models_near(optimizer, frame) if id(model) not in known]
        finally:
            del frame
        self.models.extend(weakref.ref(model) for model in new)
        return new

    def site_of(self, optimizer: Optimizer | None) -> CallSite | None:
        """The line that built `optimizer` (only for those built while the block was open)."""
        if optimizer is None:
            return None
        try:
            return self._sites.get(optimizer)
        except TypeError:
            return None
