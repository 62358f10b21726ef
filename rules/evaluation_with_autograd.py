"""LL014: an evaluation loop that runs the model with autograd on."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

import libcst as cst

from looplint.analysis.catalog import switches_grad_mode
from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import (
    Backward,
    Forward,
    LoopView,
    ModeSwitch,
    Site,
    Step,
    display_name,
)
from looplint.analysis.syntax import call_display, descendants, source_of
from looplint.files.screening import Glance, Screen, dotted_names
from looplint.identity import EVALUATION_WITH_AUTOGRAD
from looplint.rule import Rule, Violation

_LOOPS = (ast.For, ast.AsyncFor, ast.While, ast.ListComp, ast.SetComp, ast.DictComp,
          ast.GeneratorExp)  # fmt: skip


def _dotted(node: ast.expr) -> str | None:
    names = dotted_names(node)
    return None if names is None else ".".join(names)


def _runs_a_switched_model_in_a_loop(glance: Glance) -> bool:
    """Whether a loop (or comprehension) calls something the module switches with
    `.train(...)` / `.eval()`: the analysis sees a model forward only in such a call
    (`model(x)` where `model.eval()` is written), and the rule only where a loop's own
    source holds it."""
    switched: set[str] = set()
    for call in glance.nodes(ast.Call):
        func = call.func
        if isinstance(func, ast.Attribute) and func.attr in ("train", "eval"):
            receiver = func.value
            while isinstance(receiver, ast.Call) and isinstance(receiver.func, ast.Attribute):
                receiver = receiver.func.value  # `model.to(device).eval()`
            name = _dotted(receiver)
            if name is not None:
                switched.add(name)
    if not switched:
        return False
    return any(
        isinstance(node, ast.Call) and _dotted(node.func) in switched
        for loop in (node for kind in _LOOPS for node in glance.nodes(kind))
        for node in ast.walk(loop)
    )


def _same_model(evaluated: str, run: str) -> bool:
    return run == evaluated or run.startswith(evaluated + ".")


def _evaluated_span(switch: Site, sites: list[Site]) -> list[Site] | None:
    """What runs after `model.eval()` until `model.train()`; None when gradients are
    used in it (a backward pass or a step: test-time training, a loss over collected
    outputs) — then autograd is on on purpose."""
    assert isinstance(switch.op, ModeSwitch)
    span: list[Site] = []
    for site in sites[switch.order + 1 :]:
        op = site.op
        if isinstance(op, (Backward, Step)):
            return None
        if isinstance(op, ModeSwitch) and op.training and _same_model(op.module, switch.op.module):
            break
        span.append(site)
    return span


def _evaluates_each_pass(switch: Site, run: Site, views: dict[int, LoopView]) -> bool:
    """`model.eval()` in the same loop as the forward, in a loop that never trains:
    no backward pass, no step, no switch back to train mode anywhere in it."""
    if not switch.loops or not any(loop is switch.loops[-1] for loop in run.loops):
        return False
    assert isinstance(switch.op, ModeSwitch)
    return not any(
        isinstance(s.op, (Backward, Step)) or (isinstance(s.op, ModeSwitch) and s.op.training)
        for s in views[id(switch.loops[-1])].sites
    )


def _written_in(call: cst.Call, loop: cst.CSTNode) -> bool:
    """Whether the loop's own source holds the call (not only a helper it calls)."""
    return any(node is call for node in descendants(loop))


class EvaluationWithAutograd(Rule):
    """
    ## What it does
    Reports a model run forward in an evaluation loop with autograd on: the
    model is switched to `eval()`, a loop then calls it, nothing in between or
    after computes a gradient (no backward pass, no step) — and neither a
    `with torch.no_grad():` / `torch.inference_mode()` /
    `torch.set_grad_enabled(...)` block nor a decorator on the function (or on
    any same-module function calling it) turns autograd off. The finding is on
    the model call.

    A module that asks for input gradients (`torch.autograd.grad`,
    `x.requires_grad_()`), turns `requires_grad` off, or switches grad mode with a bare
    `torch.set_grad_enabled(...)` statement is not checked.

    ## Why is this bad?
    `eval()` changes dropout and batch-norm; it does not turn autograd off. Every
    batch records a graph and keeps every activation for a backward pass that
    never comes: evaluation needs several times the memory and runs slower, and
    if outputs or losses are kept in a list, every batch's graph stays alive
    until the GPU runs out of memory.

    ## References
    - [`torch.no_grad`](https://pytorch.org/docs/stable/generated/torch.no_grad.html)
    - [Autograd mechanics: locally disabling gradient computation](https://pytorch.org/docs/stable/notes/autograd.html#locally-disabling-gradient-computation)
    """

    identity = EVALUATION_WITH_AUTOGRAD
    INVALID = (
        """
        def evaluate(model, loader):
            model.eval()
            correct = 0
            for x, y in loader:
                logits = model(x)  # expect: LL014
                correct += (logits.argmax(1) == y).sum().item()
            return correct
        """,
    )
    VALID = (
        """
        import torch

        def evaluate(model, loader):
            model.eval()
            correct = 0
            with torch.no_grad():
                for x, y in loader:
                    logits = model(x)
                    correct += (logits.argmax(1) == y).sum().item()
            return correct
        """,
        """
        import torch

        @torch.inference_mode()
        def evaluate(model, loader):
            model.eval()
            return [model(x).argmax(1) for x in loader]
        """,
    )
    screen = Screen(
        re.compile(r"\.eval\(|\.train\(False\)|\.train\(mode=False\)"),
        _runs_a_switched_model_in_a_loop,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        summary = facts.summary
        if (
            summary.switches_grad_outside_with
            or summary.takes_input_gradients
            or summary.turns_requires_grad_off
        ):
            return
        for function, sites in facts.all_sites():
            if any(isinstance(site.op, Forward) for site in sites) and (
                not facts.calls.reached_without_grad(function)
            ):
                yield from self._check_function(sites, facts.loop_views(function))

    @staticmethod
    def _check_function(sites: list[Site], views: dict[int, LoopView]) -> Iterator[Violation]:
        reported: set[int] = set()
        for switch in sites:
            if not isinstance(switch.op, ModeSwitch) or switch.op.training:
                continue
            span = _evaluated_span(switch, sites)
            if span is None:
                continue
            outer = {id(loop) for loop in switch.loops}
            for site in span:
                run = site.op
                if not isinstance(run, Forward) or not _same_model(switch.op.module, run.module):
                    continue
                inner = [loop for loop in site.loops if id(loop) not in outer]
                if not inner and _evaluates_each_pass(switch, site, views):
                    inner = [switch.loops[-1]]  # `for batch in loader: model.eval(); ...`
                if not inner or id(inner[0]) in reported or site.in_closure:
                    continue
                if inner[0].runs_once:
                    continue
                if not any(_written_in(run.node, loop.node) for loop in inner):
                    continue  # a helper run once per pass of a retry loop, not per batch
                if any(switches_grad_mode(context) for context in site.contexts):
                    continue
                reported.add(id(inner[0]))
                name = display_name(switch.op.module)
                yield Violation(
                    run.node,
                    f"`{call_display(run.node)}` runs in an evaluation loop (after "
                    f"`{source_of(switch.op.node)}`, no backward pass) with autograd on, so "
                    f"every batch builds a graph of `{name}` that is never used; wrap the "
                    "loop in `with torch.no_grad():` or `torch.inference_mode()`",
                )
