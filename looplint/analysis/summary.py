"""Module-wide textual facts: what is run as a model, frozen, or instantiated where."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import libcst as cst

from looplint.analysis.naming import reads_by_name
from looplint.analysis.program import AssignEvent, CallEvent, ModuleProgram, all_events
from looplint.analysis.syntax import argument, dotted_name


@dataclass(frozen=True, slots=True)
class ModuleSummary:
    """Module-wide textual facts: what is called as a model, frozen, or instantiated."""

    called_chains: frozenset[str]
    freezes_parameters: bool
    has_backward: bool
    instances: Mapping[str, tuple[str, ...]]
    """Dotted target text (`model`, `self.net`) → same-module classes assigned to it."""
    handed_together: tuple[frozenset[str], ...] = ()
    """The dotted arguments of each call given two or more (`Trainer(model=model,
    optimizer=optimizer)`): what is handed along together."""


_FREEZING_WORDS = ("freeze", "trainable")
_MOVES = frozenset({"to", "cuda", "cpu", "float", "double", "half", "bfloat16", "train"})


def _built(value: cst.BaseExpression) -> cst.BaseExpression:
    """`Net(...)` in `Net(...).to(device).train()`: moving a new model to a device or a mode
    returns the same instance."""
    while (
        isinstance(value, cst.Call)
        and isinstance(value.func, cst.Attribute)
        and value.func.attr.value in _MOVES
    ):
        value = value.func.value
    return value


def summarise(program: ModuleProgram) -> ModuleSummary:
    """Compute the `ModuleSummary` of a compiled module (one pass over its events)."""
    called: set[str] = set()
    freezes = False
    has_backward = False
    instances: dict[str, list[str]] = {}
    together: list[frozenset[str]] = []
    for function in program.functions:
        for event in all_events(function.events):
            if isinstance(event, CallEvent):
                call = event.node
                func = call.func
                last = (
                    func.attr.value
                    if isinstance(func, cst.Attribute)
                    else getattr(func, "value", "")
                )
                if last in ("backward", "manual_backward"):
                    has_backward = True
                chain = dotted_name(func)
                if chain is None:
                    continue
                if last == "requires_grad_":
                    first = argument(call, 0, "requires_grad")
                    freezes |= isinstance(first, cst.Name) and first.value == "False"
                elif any(word in last.lower() for word in _FREEZING_WORDS):
                    freezes = True
                called.add(chain.removesuffix(".forward"))
                handed = frozenset(
                    text for arg in call.args if (text := dotted_name(arg.value)) is not None
                )
                if len(handed) >= 2 and not reads_by_name(last):  # not `save(model, opt)`
                    together.append(handed)
            elif isinstance(event, AssignEvent) and event.value is not None:
                for target in event.targets:
                    if isinstance(target, cst.Attribute) and target.attr.value == "requires_grad":
                        freezes |= (
                            isinstance(event.value, cst.Name) and event.value.value == "False"
                        )
                    text = dotted_name(target)
                    value = _built(event.value)
                    if (
                        text is not None
                        and isinstance(value, cst.Call)
                        and isinstance(value.func, cst.Name)
                        and value.func.value in program.classes
                    ):
                        instances.setdefault(text, []).append(value.func.value)
    return ModuleSummary(
        frozenset(called),
        freezes,
        has_backward,
        {key: tuple(value) for key, value in instances.items()},
        tuple(together),
    )
