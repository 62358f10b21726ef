"""Who calls each function of a module, and whether autograd may be off at the call.

Execution trees inline a helper only where a loop calls it, so a helper called once
from under `with torch.no_grad():` is analysed on its own as if autograd were on. The
call sites recorded here let a rule ask whether every way into a function keeps
gradients on.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from looplint.analysis.catalog import switches_grad_mode
from looplint.analysis.imports import ImportTable
from looplint.analysis.program import (
    BranchEvent,
    CallEvent,
    Event,
    FunctionInfo,
    LoopEvent,
    ModuleProgram,
    WithEvent,
)
from looplint.analysis.scopes import Frame, Scopes
from looplint.analysis.syntax import called, dotted_name


@dataclass(frozen=True, slots=True)
class CallSite:
    """One call of a same-module function: who calls it, and under which grad mode."""

    caller: FunctionInfo
    call: cst.Call
    grad_switched: bool
    """Inside a `with` (or a caller decorated with) `no_grad`/`inference_mode`/
    `set_grad_enabled`."""


def grad_switches(function: FunctionInfo, imports: ImportTable) -> tuple[str, ...]:
    """The grad-mode decorators on the function itself (`@torch.no_grad()`,
    `@torch.inference_mode()`), qualified."""
    node = function.node
    if not isinstance(node, cst.FunctionDef):
        return ()
    return tuple(
        name
        for decorator in node.decorators
        if (
            name := imports.qualify(called(decorator.decorator))
            or dotted_name(called(decorator.decorator))
        )
        is not None
        and switches_grad_mode(name)
    )


class CallGraph:
    """Every call between the functions of one module, by callee."""

    def __init__(self, program: ModuleProgram, scopes: Scopes) -> None:
        self.program = program
        self._sites: dict[int, list[CallSite]] = {}
        for function in program.functions:
            switched = bool(grad_switches(function, program.imports))
            self._collect(function.events, function, Frame(function, {}), switched, scopes)

    def _collect(
        self,
        events: tuple[Event, ...],
        caller: FunctionInfo,
        frame: Frame,
        switched: bool,
        scopes: Scopes,
    ) -> None:
        for event in events:
            if isinstance(event, CallEvent):
                callee = scopes.callee(event.node, frame)
                if callee is not None:
                    site = CallSite(caller, event.node, switched)
                    self._sites.setdefault(id(callee[0]), []).append(site)
            elif isinstance(event, (LoopEvent, WithEvent)):
                inner = switched
                if isinstance(event, WithEvent):
                    inner = switched or any(
                        switches_grad_mode(
                            self.program.imports.qualify(called(context))
                            or dotted_name(called(context))
                            or ""
                        )
                        for context in event.contexts
                    )
                self._collect(event.body, caller, frame, inner, scopes)
            elif isinstance(event, BranchEvent):
                for arm in event.arms:
                    self._collect(arm, caller, frame, switched, scopes)

    def callers(self, function: FunctionInfo) -> list[CallSite]:
        """The calls of `function` made in this module."""
        return self._sites.get(id(function), [])

    def reached_without_grad(self, function: FunctionInfo) -> bool:
        """Whether some chain of same-module calls reaches `function` from under a
        grad-mode switch (the call itself, or a caller of a caller, up the chain)."""
        seen: set[int] = set()
        pending = [function]
        while pending:
            current = pending.pop()
            if id(current) in seen:
                continue
            seen.add(id(current))
            for site in self.callers(current):
                if site.grad_switched:
                    return True
                pending.append(site.caller)
        return False
