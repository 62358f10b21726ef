"""LL005: gradients cleared between the backward pass and the step that needs them."""

from __future__ import annotations

from collections.abc import Iterator

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import Backward, Clear, Site, Step, display_name
from looplint.analysis.syntax import call_display, source_of
from looplint.identity import GRADIENTS_CLEARED_BEFORE_STEP
from looplint.rule import Rule, Violation


def _unconditional_before(clear: Site, step: Site) -> bool:
    """The clear runs whenever the step does: no extra guard, no deeper loop."""
    step_guards = {id(g) for g in step.guards}
    if any(id(g) not in step_guards for g in clear.guards):
        return False
    return clear.loops == step.loops[: len(clear.loops)] and len(clear.loops) <= len(step.loops)


def _cleared_in_wrapper(facts: ModuleFacts) -> Iterator[Violation]:
    """A method the trainer calls once per update (`step(loss)`: backward, clip, step), no
    loop in sight: a clear between its own backward pass and its step wipes the gradients
    that step was meant to apply, whatever calls it."""
    for _function, sites in facts.all_sites():
        for site in sites:
            step = site.op
            if not isinstance(step, Step) or site.loops or site.in_closure:
                continue
            sequence = [
                s
                for s in sites
                if not s.loops
                and s.order < site.order
                and (
                    isinstance(s.op, Backward)
                    or (isinstance(s.op, Clear) and facts.clears(s.op, step.optimizer, True))
                )
            ]
            if len(sequence) < 2 or not isinstance(sequence[-1].op, Clear):
                continue
            clear = sequence[-1]
            if not any(isinstance(s.op, Backward) for s in sequence[:-1]):
                continue
            if not _unconditional_before(clear, site) or clear.exclusive_with(site):
                continue
            yield Violation(
                clear.op.node,
                f"`{source_of(clear.op.node)}` clears the gradients after the backward pass and "
                f"before `{call_display(step.node)}`, so the step sees none; clear at the start "
                "of the iteration or after the step",
            )


class GradientsClearedBeforeStep(Rule):
    """
    ## What it does
    Follows one iteration of a training loop, per optimizer, and reports when the
    last thing to touch that optimizer's gradients before its `step()` is a
    clear rather than a backward pass:
    `loss.backward(); opt.zero_grad(); opt.step()` (reported at the clear), or
    `opt.zero_grad(); opt.step(); loss.backward()` where the step always runs
    before the backward pass of its iteration (reported at the step). A
    `zero_grad()` after the backward inside an optimizer closure is reported too,
    and so is a clear between the backward pass and the step of a method that runs
    both once per call (an optimizer wrapper's `step(loss)`), loop or not.

    Clearing at the start or the end of the iteration is correct and not
    reported; so are two optimizers whose clears and steps interleave (GANs):
    only clears of the stepped optimizer, or of the model it optimizes, count.

    ## Why is this bad?
    The optimizer never sees a gradient: `step()` with all-`None` gradients
    does nothing, and with zeroed gradients only weight decay and momentum
    move the weights. The loss curve stays flat or drifts, and nothing fails.

    ## References
    - [PyTorch: zeroing out gradients](https://pytorch.org/tutorials/recipes/recipes/zeroing_out_gradients.html)
    """

    identity = GRADIENTS_CLEARED_BEFORE_STEP
    INVALID = (
        """
        import torch

        optimizer = torch.optim.Adam(model.parameters())
        for x, y in loader:
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.zero_grad()  # expect: LL005
            optimizer.step()
        """,
        """
        import torch

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            optimizer.zero_grad()
            optimizer.step()  # expect: LL005
            loss_fn(model(x), y).backward()
        """,
    )
    VALID = (
        """
        import torch

        optimizer = torch.optim.Adam(model.parameters())
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
        """,
        """
        import torch

        optimizer = torch.optim.Adam(model.parameters())
        for x, y in loader:
            loss_fn(model(x), y).backward()
            optimizer.step()
            optimizer.zero_grad()
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        yield from _cleared_in_wrapper(facts)
        for site, step, view in facts.in_loops(Step):
            sole = facts.sole_optimizer(view)
            relevant = [
                s
                for s in view.sites
                if (
                    isinstance(s.op, Backward)
                    or (isinstance(s.op, Clear) and facts.clears(s.op, step.optimizer, sole))
                )
                and not s.exclusive_with(site)  # `if frozen: clear` / `else: step` never meet
            ]
            if not any(isinstance(s.op, Backward) for s in relevant):
                continue
            before = [s for s in relevant if s.order < site.order]
            nearest = before[-1] if before else relevant[-1]
            if not isinstance(nearest.op, Clear) or not _unconditional_before(nearest, site):
                continue
            name = display_name(step.optimizer)
            backward_first = any(isinstance(s.op, Backward) for s in before[:-1])
            if before and backward_first:
                yield Violation(
                    nearest.op.node,
                    f"`{source_of(nearest.op.node)}` clears the gradients after the backward "
                    f"pass and before `{call_display(step.node)}`, so the step sees none; "
                    "clear at the start of the iteration or after the step",
                )
            else:
                yield Violation(
                    step.node,
                    f"`{call_display(step.node)}` runs before this iteration's backward pass, "
                    f"right after `{name}`'s gradients were cleared, so it never sees a "
                    "gradient; call it after `backward()`",
                )
