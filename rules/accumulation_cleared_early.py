"""LL010: gradient accumulation whose gradients are cleared before the step uses them."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import Backward, Branch, Clear, Loop, LoopView, Site, Step
from looplint.analysis.syntax import call_display, descendants, dotted_name, source_of
from looplint.identity import ACCUMULATION_CLEARED_EARLY
from looplint.rule import Rule, Violation


def _looks_like_accumulation(test: cst.BaseExpression | None) -> bool:
    """`(i + 1) % accum_steps == 0`, `step % self.grad_accum == 0`, `if accumulate:`, and
    flags that say a step happens now (`if do_sync_step:`, `if accelerator.sync_gradients:`,
    `if should_step:`, `if is_update:`)."""
    if test is None:
        return False
    flag = test.expression if isinstance(test, cst.UnaryOperation) else test
    name = (dotted_name(flag) or "").rsplit(".", 1)[-1].lower()
    if name and (
        "sync" in name or name.endswith("step") or name.startswith(("should_", "do_", "is_update"))
    ):
        return True
    for node in (test, *descendants(test)):
        if isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo):
            return True
        if isinstance(node, (cst.Name, cst.Attribute)) and "accum" in (dotted_name(node) or ""):
            return True
    return False


def _steps_every_iteration(steps: list[Site], loop: Loop) -> bool:
    # Only steps this loop runs: PPG's policy phase steps the same optimizer in another loop.
    steps = [s for s in steps if any(outer is loop for outer in s.loops)]
    if all(any(_looks_like_accumulation(g.test) for g in s.guards_within(loop)) for s in steps):
        return False  # `if (i + 1) % accum == 0:` around every step, whatever is inside
    for step in steps:
        if not step.guards_within(loop):
            return True
    branches: dict[int, tuple[Branch, set[int]]] = {}
    for step in steps:
        if any(_looks_like_accumulation(g.test) for g in step.guards_within(loop)):
            continue  # `if accum > 1: ... if (i + 1) % accum == 0: step()` steps every N
        for guard in step.guards_within(loop):
            entry = branches.setdefault(id(guard), (guard, set()))
            for index, arm in enumerate(guard.arms):
                if any(item is step.op for item in _flat(arm)):
                    entry[1].add(index)
    return any(len(arms) == len(branch.arms) > 1 for branch, arms in branches.values())


def _flat(items: tuple[object, ...]) -> Iterator[object]:
    for item in items:
        yield item
        if isinstance(item, (Loop,)):
            yield from _flat(item.body)
        elif isinstance(item, Branch):
            for arm in item.arms:
                yield from _flat(arm)


def _in_accumulate(site: Site) -> bool:
    """Inside `with accelerator.accumulate(model):` (Accelerate decides there, per
    micro-batch, whether the prepared optimizer's `step`/`zero_grad` really run)."""
    return any(context.rsplit(".", 1)[-1] == "accumulate" for context in site.contexts)


def _early_in_accumulate(site: Site, clear: Clear, steps: list[Site], view: LoopView) -> str | None:
    """Under `accelerator.accumulate`, the prepared optimizer's `zero_grad()` runs only on
    the sync step, together with its `step()`. Two placements still lose micro-batches:
    a model's `zero_grad()` (or `p.grad = None`), which Accelerate does not hold back, and
    an optimizer clear *before* the backward pass, which on the sync step wipes what the
    earlier micro-batches accumulated."""
    stepped = [s for s in steps if s.loop is site.loop and _in_accumulate(s)]
    if not stepped:
        return None
    name = source_of(clear.node)
    if clear.optimizer is None:
        return (
            f"`{name}` clears the gradients on every micro-batch inside "
            "`accelerator.accumulate(...)`: only the prepared optimizer's `zero_grad()` waits "
            "for the sync step, so each micro-batch throws the previous ones away; call "
            "`optimizer.zero_grad()` after `optimizer.step()` instead"
        )
    backward = next(
        (
            s
            for s in view.sites
            if isinstance(s.op, Backward) and s.order > site.order and _in_accumulate(s)
        ),
        None,
    )
    if backward is None or not any(
        isinstance(s.op, Step) and s.op.optimizer == clear.optimizer and s.order > backward.order
        for s in stepped
    ):
        return None
    return (
        f"`{name}` runs before the backward pass inside `accelerator.accumulate(...)`: on the "
        "sync step it really clears, wiping the micro-batches accumulated so far, and the step "
        "uses only the last one; clear after `optimizer.step()`"
    )


class AccumulationClearedEarly(Rule):
    """
    ## What it does
    Reports gradient accumulation that clears the gradients more often than the
    optimizer steps: `opt.zero_grad()` every micro-batch while `opt.step()`
    runs only every N iterations (`if (i + 1) % accum == 0:`), or a clear inside
    an inner micro-batch loop whose step comes after that loop. Inside
    Accelerate's `accelerator.accumulate(...)`, where the prepared optimizer's
    `zero_grad()` waits for the sync step: a `model.zero_grad()` (not held back)
    or an optimizer clear before the backward pass (which wipes the window on
    the sync step). The finding is on the clear.

    Clearing together with the step (under the same condition, or right after
    it) is correct and not reported; nor is a step skipped for another reason
    (a non-finite loss), nor a clear of another optimizer or model.

    ## Why is this bad?
    Each clear throws away what the previous micro-batches accumulated, so the
    step uses only the last micro-batch: the effective batch size is N times
    smaller than intended, and the learning rate tuned for the large batch is
    now too high. Training still converges, to something worse.

    ## References
    - [Gradient accumulation (Hugging Face Accelerate)](https://huggingface.co/docs/accelerate/usage_guides/gradient_accumulation)
    """

    identity = ACCUMULATION_CLEARED_EARLY
    INVALID = (
        """
        import torch

        optimizer = torch.optim.AdamW(model.parameters())
        for i, (x, y) in enumerate(loader):
            optimizer.zero_grad()  # expect: LL010
            (loss_fn(model(x), y) / accum_steps).backward()
            if (i + 1) % accum_steps == 0:
                optimizer.step()
        """,
        """
        import torch

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for batch in loader:
            for micro in batch.split(8):
                optimizer.zero_grad()  # expect: LL010
                loss_fn(model(micro)).backward()
            optimizer.step()
        """,
    )
    VALID = (
        """
        import torch

        optimizer = torch.optim.AdamW(model.parameters())
        for i, (x, y) in enumerate(loader):
            (loss_fn(model(x), y) / accum_steps).backward()
            if (i + 1) % accum_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        for function, sites in facts.all_sites():
            steps = [s for s in sites if isinstance(s.op, Step) and s.loop is not None]
            if not steps:
                continue
            views = facts.loop_views(function)
            for site in sites:
                clear = site.op
                if not isinstance(clear, Clear) or site.loop is None or site.in_closure:
                    continue
                if _in_accumulate(site):
                    message = _early_in_accumulate(site, clear, steps, views[id(site.loop)])
                    if message is not None:
                        yield Violation(clear.node, message)
                    continue
                for step_site in steps:
                    step = step_site.op
                    assert isinstance(step, Step)
                    sole = facts.sole_optimizer(views[id(step_site.loop)])
                    if not facts.clears(clear, step.optimizer, sole):
                        continue
                    same_optimizer = [
                        s
                        for s in steps
                        if isinstance(s.op, Step) and s.op.optimizer == step.optimizer
                    ]
                    message = self._early(site, step_site, same_optimizer, views)
                    if message is not None:
                        yield Violation(
                            clear.node,
                            f"`{source_of(clear.node)}` {message}, but `{call_display(step.node)}` "
                            "does not: the micro-batches accumulated in between are thrown away; "
                            "clear together with the step",
                        )
                        break

    @staticmethod
    def _early(
        clear: Site, step: Site, same_optimizer: list[Site], views: dict[int, LoopView]
    ) -> str | None:
        common = 0
        while (
            common < min(len(clear.loops), len(step.loops))
            and clear.loops[common] is step.loops[common]
        ):
            common += 1
        if common == 0 or clear.exclusive_with(step):
            return None  # no shared loop, or never both (`if accum > 1: ... else: ...`)
        loop = clear.loops[common - 1]
        view = views[id(loop)]
        order = view.sites
        if len(clear.loops) > common and len(step.loops) == common:
            inner = clear.loops[common]
            consumed = [
                s
                for s in order
                if s.order < step.order
                and (isinstance(s.op, Backward) or (isinstance(s.op, Clear) and s is not clear))
            ]
            last = consumed[-1] if consumed else None
            if (
                last is not None
                and isinstance(last.op, Backward)
                and inner in last.loops
                and last.order > clear.order
                and not clear.guards_within(inner)
            ):
                return "runs on every pass of the inner loop"
            return None
        if len(clear.loops) != common or len(step.loops) != common:
            return None
        step_guards = step.guards_within(loop)
        # A clear under a condition of its own that is no schedule (`if args.fp16:` picking
        # the backward pass) still runs every micro-batch of that path.
        if not step_guards or any(
            _looks_like_accumulation(g.test) or g.test is None for g in clear.guards_within(loop)
        ):
            return None
        if not any(_looks_like_accumulation(g.test) for g in step_guards):
            return None
        if _steps_every_iteration(same_optimizer, loop):
            return None
        # Over-clearing loses gradients only when a backward pass runs in an iteration
        # that does not step: one under the step's own guard (WGAN's generator under
        # `if i % n_critic == 0:`) is always stepped on.
        guard_ids = {id(g) for g in step_guards}
        if any(
            isinstance(s.op, Backward)
            and s.order < step.order
            and guard_ids <= {id(g) for g in s.guards}
            for s in order
        ):
            # A skip schedule: the step's own backward runs under its condition too; the
            # backward passes outside it (the critic's, every iteration) are another loss.
            return None
        backward_between = any(
            isinstance(s.op, Backward)
            and s.order > clear.order
            and not guard_ids <= {id(g) for g in s.guards}
            for s in order
        )
        return "runs on every iteration" if backward_between else None
