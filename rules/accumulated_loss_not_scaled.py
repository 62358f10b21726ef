"""LL013: gradients accumulated over N micro-batches from a loss never divided by N."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import Assign, Backward, Branch, Clear, LoopView, Site, Step
from looplint.analysis.summary import named_parts
from looplint.analysis.syntax import call_display, descendants, source_of
from looplint.identity import ACCUMULATED_LOSS_NOT_SCALED
from looplint.rule import Rule, Violation


def _window(guard: Branch) -> cst.BaseExpression | None:
    """`N` in a step guard `(i + 1) % N == 0`."""
    if guard.test is None:
        return None
    for node in (guard.test, *descendants(guard.test)):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo):
            return node.right
    return None


def _names(expression: cst.BaseExpression) -> set[str]:
    """`accum_steps` for `args.accum_steps` (the last name of each chain, as
    `summary.divisors` keeps them); an integer by its text."""
    return named_parts(expression)


def _rescales(node: cst.CSTNode) -> bool:
    """A division or multiplication anywhere in an assignment or a backward receiver."""
    if isinstance(node, cst.AugAssign) and isinstance(
        node.operator, (cst.DivideAssign, cst.MultiplyAssign)
    ):
        return True
    return any(
        (
            isinstance(part, cst.BinaryOperation)
            and isinstance(part.operator, (cst.Divide, cst.Multiply))
        )
        or (
            isinstance(part, cst.Call)
            and isinstance(part.func, cst.Attribute)
            and part.func.attr.value in ("div", "div_", "mul", "mul_", "true_divide")
        )
        for part in descendants(node)
    )


def _returned_rescaled(facts: ModuleFacts, assignment: cst.CSTNode) -> bool:
    """`loss = self.compute_loss(batch)` where a function of this module by that name
    returns a divided or multiplied value."""
    value = getattr(assignment, "value", None)
    if not isinstance(value, cst.Call):
        return False
    func = value.func
    name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", None)
    return any(
        function.name == name and any(_rescales(cst.Expr(r)) for r in function.returns)
        for function in facts.program.functions
    )


def _plain_backward(backward: Backward) -> bool:
    """`loss.backward()` or `scaler.scale(loss).backward()`; not an engine's
    `accelerator.backward(loss)` / `engine.backward(loss)`, which may divide by the
    accumulation steps it was configured with."""
    func = backward.node.func
    return (
        isinstance(func, cst.Attribute)
        and func.attr.value == "backward"
        and not any(arg.keyword is None for arg in backward.node.args)
    )


class AccumulatedLossNotScaled(Rule):
    """
    ## What it does
    Reports a backward pass that runs on every micro-batch of a loop whose
    optimizer steps only every N iterations (`if (i + 1) % N == 0:
    opt.step()`), when the loss is never divided (nor multiplied) before
    `backward()` — neither where it is computed in the loop nor anywhere in the
    module by `N`. The finding is on the backward pass.

    Loops that clear gradients every iteration (LL010's bug), step more than
    one optimizer, or call an engine's backward (`accelerator.backward(loss)`,
    DeepSpeed's `engine.backward(loss)`: they divide by their own accumulation
    steps) are not reported.

    ## Why is this bad?
    Gradients add up over the N micro-batches, so the step uses the *sum* of N
    mean-reduced gradients: an update N times larger than with one batch of
    N times the size. The learning rate tuned for the large batch is
    effectively multiplied by N, and changing N changes the training dynamics.

    ## References
    - [Gradient accumulation (Hugging Face Accelerate)](https://huggingface.co/docs/accelerate/usage_guides/gradient_accumulation)
    """

    identity = ACCUMULATED_LOSS_NOT_SCALED
    INVALID = (
        """
        import torch

        optimizer = torch.optim.AdamW(model.parameters())
        for i, (x, y) in enumerate(loader):
            loss = loss_fn(model(x), y)
            loss.backward()  # expect: LL013
            if (i + 1) % accum_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
    )
    VALID = (
        """
        import torch

        optimizer = torch.optim.AdamW(model.parameters())
        for i, (x, y) in enumerate(loader):
            loss = loss_fn(model(x), y) / accum_steps
            loss.backward()
            if (i + 1) % accum_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        for site, step, view in facts.in_loops(Step):
            guard = next((g for g in site.guards_within(view.loop) if _window(g) is not None), None)
            if guard is None or not facts.sole_optimizer(view):
                continue
            window = _window(guard)
            assert window is not None
            names = _names(window)
            if names & facts.divisors or any("acc" in d.lower() for d in facts.divisors):
                continue  # divided somewhere: in a helper, a loss function, a closure
            if self._clears_every_iteration(facts, view, step, guard):
                continue
            for backward in self._every_iteration(view, site, guard):
                assert isinstance(backward.op, Backward)
                if self._loss_rescaled(facts, view, backward):
                    continue
                yield Violation(
                    backward.op.node,
                    f"`{call_display(backward.op.node)}` runs on every micro-batch while "
                    f"`{call_display(step.node)}` runs every `{source_of(window)}` iterations, "
                    "and the loss is never divided: the step applies the sum of the "
                    "accumulated gradients, an update that many times too large; divide the "
                    f"loss by `{source_of(window)}` before `backward()`",
                )
                break

    @staticmethod
    def _every_iteration(view: LoopView, step: Site, guard: Branch) -> Iterator[Site]:
        """Plain backward passes outside the step's window guard and under no other
        window."""
        step_guards = {id(g) for g in step.guards}
        for site in view.ops(Backward):
            assert isinstance(site.op, Backward)
            if site.in_closure or not _plain_backward(site.op):
                continue
            guards = site.guards_within(view.loop)
            if id(guard) in {id(g) for g in guards}:
                continue
            # A backward under a condition of its own runs every micro-batch too when the
            # condition picks a path (`if args.fp16:`), not a schedule (`% n_critic`).
            if all(id(g) in step_guards or _window(g) is None for g in guards):
                yield site

    @staticmethod
    def _clears_every_iteration(
        facts: ModuleFacts, view: LoopView, step: Step, guard: Branch
    ) -> bool:
        return any(
            isinstance(site.op, Clear)
            and facts.clears(site.op, step.optimizer, sole=True)
            and id(guard) not in {id(g) for g in site.guards}
            for site in view.sites
        )

    @staticmethod
    def _loss_rescaled(facts: ModuleFacts, view: LoopView, backward: Site) -> bool:
        """A division or multiplication in the backward receiver or in any assignment
        of the backpropagated loss in the loop."""
        assert isinstance(backward.op, Backward)
        func = backward.op.node.func
        if isinstance(func, cst.Attribute) and _rescales(func.value):
            return True
        tensor = backward.op.tensor
        if tensor is None:
            return False
        return any(
            isinstance(site.op, Assign)
            and (site.op.target == tensor or site.op.target.startswith(tensor + "."))
            and (_rescales(site.op.node) or _returned_rescaled(facts, site.op.node))
            for site in view.sites
        )
