"""LL016: gradient clipping placed where it cannot change what the optimizer steps on."""

from __future__ import annotations

from collections.abc import Iterator

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import (
    Backward,
    Clear,
    Clip,
    Escape,
    LoopView,
    Site,
    Step,
    condition_of,
)
from looplint.analysis.syntax import argument, call_display, source_of
from looplint.identity import CLIPPING_WITHOUT_EFFECT
from looplint.rule import Rule, Violation


def _unbounded(clip: Clip) -> bool:
    """`clip_grad_norm_(params, float("inf"))`: a norm measured, nothing clipped."""
    limit = argument(clip.node, 1, "max_norm") or argument(clip.node, 1, "clip_value")
    return limit is not None and "inf" in source_of(limit).lower()


def _training_view(site: Site, views: dict[int, LoopView]) -> LoopView | None:
    """The innermost loop around `site` that steps an optimizer (outside closures)."""
    for loop in reversed(site.loops):
        view = views[id(loop)]
        if any(isinstance(s.op, Step) and not s.in_closure for s in view.sites):
            return view
    return None


def _always_with(other: Site, clip: Site, view: LoopView) -> bool:
    """`other` runs whenever the clip does: every condition of its own inside the loop is
    one the clip is under too (`if args.fp16:` written twice, once around the backward
    pass and once around the clip)."""
    clip_guards = {id(g) for g in clip.guards}
    held = set(clip.conditions)
    arms = dict(other.arms)
    for guard in other.guards_within(view.loop):
        if id(guard) in clip_guards:
            continue
        condition = condition_of(guard.test) if len(guard.arms) <= 2 else None
        if condition is None:
            return False
        name, polarity = condition
        holds = polarity if arms.get(id(guard.node)) == 0 else not polarity
        if (name, holds) not in held:
            return False
    return True


class ClippingWithoutEffect(Rule):
    """
    ## What it does
    Follows one iteration of a training loop from a
    `torch.nn.utils.clip_grad_norm_` / `clip_grad_value_` call and reports the
    clip when the next thing to happen to the gradients is not the optimizer's
    step: a backward pass (the clip ran before `loss.backward()`, or after the
    step, so the next iteration's backward comes first) or a `zero_grad()`
    (the clipped gradients are cleared right away).

    Only loops that step one optimizer are checked; a step that may be hidden in
    code looplint cannot see (the optimizer handed to an unknown function after the
    clip), a
    condition that only the clip or only the next operation is under, and a clip
    with an infinite bound (a norm measured for logging) are never reported.

    ## Why is this bad?
    The step uses the gradients as the backward pass left them, unclipped:
    exploding gradients go straight into the weights, and the loss spikes or
    turns `nan` exactly as if there were no clipping — while the code says
    there is.

    ## References
    - [`clip_grad_norm_`](https://pytorch.org/docs/stable/generated/torch.nn.utils.clip_grad_norm_.html)
    - [pytorch/pytorch#72580](https://github.com/pytorch/pytorch/issues/72580)
    """

    identity = CLIPPING_WITHOUT_EFFECT
    INVALID = (
        """
        import torch

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # expect: LL016
        """,
        """
        import torch

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            optimizer.zero_grad()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # expect: LL016
            loss_fn(model(x), y).backward()
            optimizer.step()
        """,
    )
    VALID = (
        """
        import torch

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        for function, sites in facts.all_sites():
            for site in sites:
                clip = site.op
                if not isinstance(clip, Clip) or not site.loops or site.in_closure:
                    continue
                if _unbounded(clip):
                    continue
                view = _training_view(site, facts.loop_views(function))
                if view is None or not facts.sole_optimizer(view):
                    continue
                message = self._no_effect(facts, site, view)
                if message is not None:
                    yield Violation(
                        clip.node, f"`{call_display(clip.node)}` {message}; clip between "
                        "the backward pass and the step",
                    )  # fmt: skip

    @staticmethod
    def _no_effect(facts: ModuleFacts, site: Site, view: LoopView) -> str | None:
        """Why the clip cannot reach the step, or None when it may."""
        step = next(s.op for s in view.sites if isinstance(s.op, Step))
        after_step = (
            f"runs after `{call_display(step.node)}` has used the gradients"
            if _follows_step(site, view)
            else None
        )
        for later in view.following(site):
            op = later.op
            if later.exclusive_with(site):
                continue
            if isinstance(op, (Step, Escape)):
                return None  # stepped, or handed to code that may step it
            if isinstance(op, Backward):
                if not _always_with(later, site, view):
                    return None
                if after_step is not None:
                    return f"{after_step} and before the next backward pass: it clips nothing"
                return (
                    f"runs before `{call_display(op.node)}`, so "
                    f"`{call_display(step.node)}` steps on gradients it never clipped"
                )
            if isinstance(op, Clear) and facts.clears(op, step.optimizer, sole=True):
                if not _always_with(later, site, view) or _steps_next(later, view):
                    return None  # a clear between backward and step: LL005's finding
                if after_step is not None:
                    return f"{after_step}, and `{source_of(op.node)}` clears what it clipped"
                return (
                    f"clips gradients that `{source_of(op.node)}` clears right after, "
                    f"before `{call_display(step.node)}` can use them"
                )
        return None


def _steps_next(clear: Site, view: LoopView) -> bool:
    """After the clear, the step comes before any backward pass."""
    for later in view.following(clear):
        if isinstance(later.op, Step):
            return True
        if isinstance(later.op, Backward):
            return False
    return False


def _follows_step(site: Site, view: LoopView) -> bool:
    """Earlier in the same iteration, the last step-or-backward before the clip is a step."""
    for earlier in reversed([s for s in view.sites if s.order < site.order]):
        if earlier.in_closure or earlier.exclusive_with(site):
            continue
        if isinstance(earlier.op, Step):
            return True
        if isinstance(earlier.op, Backward):
            return False
    return False
