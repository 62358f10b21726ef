"""LL018: `self.w = nn.Parameter(t).cuda()` stores the moved copy, a plain tensor."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.syntax import keyword_arg, source_of
from looplint.files.screening import Screen, bracketed
from looplint.identity import PARAMETER_UNREGISTERED_BY_MOVE
from looplint.rule import Fix, Rule, Violation

MOVES = frozenset({"cuda", "to", "double", "half", "bfloat16", "type"})
"""Tensor methods that return a new tensor when they change device or dtype. (`.cpu()` and
`.float()` return the parameter itself for the usual CPU float32 tensor.)"""


def _moved_parameter(value: cst.BaseExpression) -> tuple[cst.Call, list[cst.Call]] | None:
    """`nn.Parameter(...)` and the move calls after it, outermost first, when `value` is
    `nn.Parameter(...).move(...)...`."""
    moves: list[cst.Call] = []
    current = value
    while (
        isinstance(current, cst.Call)
        and isinstance(current.func, cst.Attribute)
        and current.func.attr.value in MOVES
    ):
        moves.append(current)
        current = current.func.value
    if not moves or not isinstance(current, cst.Call):
        return None
    return current, moves


def _inside_fix(
    outer: cst.Call, parameter: cst.Call, moves: list[cst.Call]
) -> Callable[[], Fix | None]:
    """`nn.Parameter(t).cuda()` → `nn.Parameter(t.cuda())`."""

    def build() -> Fix | None:
        if not parameter.args or parameter.args[0].keyword is not None or parameter.args[0].star:
            return None
        tensor = parameter.args[0].value
        if not isinstance(tensor, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)):
            return None
        moved: cst.BaseExpression = tensor
        for move in reversed(moves):
            assert isinstance(move.func, cst.Attribute)
            moved = move.with_changes(func=move.func.with_changes(value=moved))
        first = parameter.args[0].with_changes(value=moved)
        return Fix(((outer, parameter.with_changes(args=(first, *parameter.args[1:]))),))

    return build


class _MovedParameterWords:
    """Stage 1 (no syntax stage): `Parameter(...)` followed by a move, `.cuda(`, `.to(`,
    ... The wrapped expression is read to its closing bracket, however deeply it nests
    (`nn.Parameter(torch.log(torch.expm1(torch.tensor(x))).unsqueeze(0)).cuda()`); one
    that does not close nearby is let through."""

    _WRAP = re.compile(r"Parameter\s*\(")
    _MOVE = re.compile(r"\s*\.\s*(?:" + "|".join(sorted(MOVES)) + r")\s*\(")

    def search(self, string: str) -> object | None:
        for wrap in self._WRAP.finditer(string):
            found = bracketed(string, wrap.end() - 1, limit=20_000)
            if found is None or self._MOVE.match(string, found[1] + 1) is not None:
                return wrap
        return None


class ParameterUnregisteredByMove(Rule):
    """
    ## What it does
    Reports `self.w = nn.Parameter(t).cuda()` — or `.to(device)`, `.double()`,
    `.half()`, `.bfloat16()`, `.type(...)` after the `nn.Parameter(...)` — in a
    method of an `nn.Module` subclass. `nn.Parameter(t.cuda())`, moving the
    whole model with `model.to(device)`, and a parameter moved and then wrapped
    again are fine.

    ## Why is this bad?
    The move returns a *new* tensor: a non-leaf copy that is not a `Parameter`.
    Assigned to the module it is stored as a plain attribute, so it is missing
    from `model.parameters()` — the optimizer never updates it, `state_dict()`
    does not save it and `model.to()` does not move it. Training runs and the
    weight stays at its initial value.

    ## References
    - [`nn.Parameter`](https://pytorch.org/docs/stable/generated/torch.nn.parameter.Parameter.html)
    - [`Tensor.to`](https://pytorch.org/docs/stable/generated/torch.Tensor.to.html)
    """

    identity = PARAMETER_UNREGISTERED_BY_MOVE
    screen = Screen(_MovedParameterWords())
    fix_safety = """
        Safe: the move is applied to the tensor before it is wrapped
        (`nn.Parameter(t.cuda())`), so the module stores a registered parameter on the
        intended device and dtype. Only a tensor given by name, attribute, call or
        subscript is rewritten; other shapes get no automatic fix.
    """
    INVALID = (
        """
        import torch
        import torch.nn as nn

        class Scaler(nn.Module):
            def __init__(self, dim, device):
                super().__init__()
                self.gain = nn.Parameter(torch.ones(dim)).to(device)  # expect: LL018
                self.bias = nn.Parameter(torch.zeros(dim)).cuda()  # expect: LL018

            def forward(self, x):
                return x * self.gain + self.bias
        """,
    )
    VALID = (
        """
        import torch
        import torch.nn as nn

        class Scaler(nn.Module):
            def __init__(self, dim, device):
                super().__init__()
                self.gain = nn.Parameter(torch.ones(dim, device=device))
                self.bias = nn.Parameter(torch.zeros(dim).cuda())

            def forward(self, x):
                return x * self.gain + self.bias
        """,
    )
    FIXES = (
        (
            """
            import torch
            import torch.nn as nn

            class Gate(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.w = nn.Parameter(torch.randn(4)).cuda()
            """,
            """
            import torch
            import torch.nn as nn

            class Gate(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.w = nn.Parameter(torch.randn(4).cuda())
            """,
        ),
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        networks = facts.networks
        for network in networks.classes.values():
            for store in network.stores:
                found = _moved_parameter(store.value)
                if found is None or not networks.is_parameter_call(found[0]):
                    continue
                parameter, moves = found
                move = moves[-1]
                assert isinstance(move.func, cst.Attribute)
                method = move.func.attr.value
                frozen = keyword_arg(parameter, "requires_grad")
                lost = (
                    "`state_dict()` never saves it"
                    if isinstance(frozen, cst.Name) and frozen.value == "False"
                    else "the optimizer never updates it"
                )
                yield Violation(
                    store.value,
                    f"`self.{store.attribute} = {source_of(store.value)}` stores the tensor "
                    f"`.{method}()` returns, not the `nn.Parameter`: it is not registered, so "
                    f"{lost}; move the tensor first (`nn.Parameter(t.{method}(...))`)",
                    fix=_inside_fix(moves[0], parameter, moves),
                )
