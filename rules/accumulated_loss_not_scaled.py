"""LL013: gradients accumulated over N micro-batches from a loss never divided by N."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import (
    Assign,
    Backward,
    Branch,
    Clear,
    Escape,
    LoopView,
    Site,
    Step,
    display_name,
)
from looplint.analysis.summary import named_parts
from looplint.analysis.syntax import call_display, descendants, source_of
from looplint.identity import ACCUMULATED_LOSS_NOT_SCALED
from looplint.rule import Rule, Violation


def _window(guard: Branch) -> cst.BaseExpression | None:
    """`N` in a step guard `(i + 1) % N == 0`."""
    return _modulus(guard.test)


def _modulus(test: cst.BaseExpression | None) -> cst.BaseExpression | None:
    """`N` in a test `(i + 1) % N == 0`."""
    if test is None:
        return None
    for node in (test, *descendants(test)):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo):
            return node.right
    return None


def _rescales(node: cst.CSTNode) -> bool:
    """A division or multiplication anywhere in an assignment or a backward receiver;
    dividing by the batch's own size (`loss.sum() / x.shape[0]`) is a mean over the
    micro-batch, not a rescaling over the accumulation window."""
    if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.MultiplyAssign):
        return True
    if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.DivideAssign):
        return not _batch_size(node.value)
    return any(
        (
            isinstance(part, cst.BinaryOperation)
            and (
                isinstance(part.operator, cst.Multiply)
                or (isinstance(part.operator, cst.Divide) and not _batch_size(part.right))
            )
        )
        or (
            isinstance(part, cst.Call)
            and isinstance(part.func, cst.Attribute)
            and part.func.attr.value in ("div", "div_", "mul", "mul_", "true_divide")
        )
        for part in descendants(node)
    )


def _batch_size(divisor: cst.BaseExpression) -> bool:
    """`x.shape[0]`, `x.size(0)`, `len(x)`, `x.numel()`: the size of a tensor or batch."""
    if isinstance(divisor, cst.Subscript):
        value = divisor.value
        return isinstance(value, cst.Attribute) and value.attr.value == "shape"
    if not isinstance(divisor, cst.Call):
        return False
    func = divisor.func
    if isinstance(func, cst.Name):
        return func.value == "len"
    return isinstance(func, cst.Attribute) and func.attr.value in ("size", "numel", "nelement")


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


def _handed_window(call: cst.Call) -> cst.BaseExpression | None:
    """`N` in a keyword argument `update_grad=(i + 1) % N == 0` (`need_update=` in timm):
    a call told on which iterations to step."""
    for arg in call.args:
        if arg.keyword is not None and isinstance(arg.value, cst.Comparison):
            window = _modulus(arg.value)
            if window is not None:
                return window
    return None


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
    module by `N`. The finding is on the backward pass. A timm-style scaler
    call that backpropagates and steps when told (`loss_scaler(loss, optimizer,
    update_grad=(i + 1) % N == 0)`, as in ConvNeXt and Swin) counts as a
    backward pass on every micro-batch with a step every N. A division by the
    batch's own size (`loss.sum() / x.shape[0]`) is a mean, not a division by
    `N`; a division on another path of the loop (`else: loss /= N`) does not
    cover this one.

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
            if self._clears_every_iteration(facts, view, step.optimizer, site, guard):
                continue
            for backward in self._every_iteration(view, site, guard):
                assert isinstance(backward.op, Backward)
                if self._loss_rescaled(facts, view, backward, backward.op.tensor, window):
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
        yield from self._scaler_calls(facts)

    def _scaler_calls(self, facts: ModuleFacts) -> Iterator[Violation]:
        """`loss_scaler(loss, optimizer, update_grad=(i + 1) % N == 0)` on every micro-batch:
        a timm-style scaler of another module backpropagates the loss on each call and
        steps when told to, so the window is an argument, not an `if` around a step."""
        for site, escape, view in facts.in_loops(Escape):
            window = _handed_window(escape.node)
            if window is None or any(_window(g) is not None for g in site.guards_within(view.loop)):
                continue
            stepped = {s.op.optimizer for s in view.sites if isinstance(s.op, Step)}
            if stepped - {escape.optimizer} or escape.first is None:
                continue
            if self._clears_every_iteration(facts, view, escape.optimizer, site, None):
                continue
            if self._loss_rescaled(facts, view, site, escape.first, window):
                continue
            yield Violation(
                escape.node,
                f"`{call_display(escape.node)}` backpropagates `{display_name(escape.first)}` "
                f"on every micro-batch but steps only every `{source_of(window)}` iterations, "
                "and the loss is never divided: the step applies the sum of the accumulated "
                "gradients, an update that many times too large; divide the loss by "
                f"`{source_of(window)}` first",
            )

    @staticmethod
    def _every_iteration(view: LoopView, step: Site, guard: Branch) -> Iterator[Site]:
        """Plain backward passes outside the step's window guard and under no other
        window, on the step's path (not in the other arm of `if accum_steps > 1:`)."""
        step_guards = {id(g) for g in step.guards}
        for site in view.ops(Backward):
            assert isinstance(site.op, Backward)
            if site.in_closure or not _plain_backward(site.op) or site.exclusive_with(step):
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
        facts: ModuleFacts, view: LoopView, optimizer: str, anchor: Site, guard: Branch | None
    ) -> bool:
        """A clear of `optimizer` on the path of `anchor` (the step, or a scaler call that
        steps) and outside the window: `guard`, or for a scaler call any window guard. A
        clear in the other arm of `if accum_steps > 1: ... else: zero_grad(); step()`
        belongs to the path that does not accumulate."""
        return any(
            isinstance(site.op, Clear)
            and facts.clears(site.op, optimizer, sole=True)
            and (
                id(guard) not in {id(g) for g in site.guards}
                if guard is not None
                else all(_window(g) is None for g in site.guards)
            )
            and not site.exclusive_with(anchor)
            for site in view.sites
        )

    @staticmethod
    def _loss_rescaled(
        facts: ModuleFacts,
        view: LoopView,
        backward: Site,
        tensor: str | None,
        window: cst.BaseExpression,
    ) -> bool:
        """Whether the backpropagated loss may be divided by the window: in the backward
        receiver, in an assignment of it on the backward's path in the loop, or — when
        the loop divides it on no path — anywhere in the module by the window's name (a
        helper, a loss function, a closure). A loop that divides the loss on another
        path only (`if use_amp: ... else: loss /= N`) shows where its division belongs."""
        if isinstance(backward.op, Backward):
            func = backward.op.node.func
            if isinstance(func, cst.Attribute) and _rescales(func.value):
                return True
        if tensor is None:
            return False
        rescaling = [
            site
            for site in view.sites
            if isinstance(site.op, Assign)
            and (site.op.target == tensor or site.op.target.startswith(tensor + "."))
            and (_rescales(site.op.node) or _returned_rescaled(facts, site.op.node))
        ]
        if any(not site.exclusive_with(backward) for site in rescaling):
            return True
        if rescaling:
            return False
        divisors = facts.divisors
        return bool(named_parts(window) & divisors) or any("acc" in d.lower() for d in divisors)
