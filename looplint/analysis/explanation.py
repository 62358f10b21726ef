"""Which recognised objects a finding involves, so its evidence can travel with it.

A rule reports a node and a message; a reader who doubts the finding asks "why does
looplint think `opt` is an optimizer?". The answer is in the object table
(`ObjectInfo.evidence`). This module finds the objects a finding is about without asking
the rules: the operations at the reported node (the optimizer a step steps, the
scheduler stepped, what a construction builds, what a checkpoint saves), then every
object the message names in backticks (`optimizer`, `self.opt.step()`), resolved in the
function that holds the node, exactly as the analysis resolves names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import (
    Clear,
    Construct,
    Escape,
    LoadState,
    Operation,
    Save,
    ScalerCall,
    SchedulerStep,
    Step,
)
from looplint.analysis.program import FunctionInfo
from looplint.analysis.recognition import ObjectInfo
from looplint.analysis.scopes import Frame
from looplint.analysis.syntax import descendants

_QUOTED = re.compile(r"`([^`]+)`")
_CHAIN = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")


class FindingExplainer:
    """Answers, for each reported node of one module, which objects it involves."""

    def __init__(self, facts: ModuleFacts, nodes: Iterable[cst.CSTNode]) -> None:
        self.facts = facts
        self._holder = self._holders({id(node) for node in nodes})
        self._built: dict[int, list[str]] | None = None

    def _holders(self, wanted: set[int]) -> dict[int, FunctionInfo]:
        """The innermost function around each wanted node (functions come parents first,
        so a nested function overwrites its parent)."""
        holder: dict[int, FunctionInfo] = {}
        if not wanted:
            return holder
        for function in self.facts.program.functions[1:]:
            if id(function.node) in wanted:
                holder[id(function.node)] = function
            for node in descendants(function.node):
                if id(node) in wanted:
                    holder[id(node)] = function
        return holder

    def involved(self, node: cst.CSTNode, message: str) -> list[tuple[str, ObjectInfo]]:
        """(identity, how it was recognised) for each object the finding at `node`
        involves, in the order a reader meets them; nothing for a finding about tensors."""
        function = self._holder.get(id(node), self.facts.program.body)
        identities: list[str] = []
        inside = {id(node), *(id(child) for child in descendants(node))}
        for site in self.facts.sites(function):
            if id(site.op.node) in inside:
                identities += self._objects_of(site.op)
        frame = Frame(function, {})
        for quoted in _QUOTED.findall(message):
            chain = _CHAIN.match(quoted.strip())
            if chain is None:
                continue
            parts = chain.group(0).split(".")
            # `optimizer.step()` names `optimizer`; `self.opt` names itself.
            for length in range(len(parts), 0, -1):
                identity = self.facts.scopes.resolve_name(parts[0], frame)
                if length > 1:
                    identity = ".".join([identity, *parts[1:length]])
                if self.facts.objects.get(identity):
                    identities.append(identity)
                    break
        found: list[tuple[str, ObjectInfo]] = []
        seen: set[str] = set()
        for identity in identities:
            if identity in seen:
                continue
            seen.add(identity)
            found += [(identity, info) for info in self.facts.objects.get(identity, ())]
        return found

    def _objects_of(self, op: Operation) -> Sequence[str]:
        """The tracked objects one operation acts on."""
        if isinstance(op, (Step, Escape)):
            return [op.optimizer]
        if isinstance(op, Clear):
            return [op.optimizer] if op.optimizer is not None else []
        if isinstance(op, SchedulerStep):
            return [op.scheduler]
        if isinstance(op, ScalerCall):
            return [op.scaler, *([op.optimizer] if op.optimizer is not None else [])]
        if isinstance(op, LoadState):
            return [op.target]
        if isinstance(op, Save):
            return sorted(op.states)
        if isinstance(op, Construct):
            return self._built_by(op.node)
        return []

    def _built_by(self, call: cst.Call) -> list[str]:
        """The identities that hold what `call` builds."""
        if self._built is None:
            self._built = {}
            for identity, infos in self.facts.objects.items():
                for info in infos:
                    if info.call is not None:
                        self._built.setdefault(id(info.call), []).append(identity)
        return self._built.get(id(call), [])
