"""LL001: gradients that are never cleared between optimizer steps."""

from __future__ import annotations

from collections.abc import Iterator

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import (
    Backward,
    Clear,
    Escape,
    LoopView,
    Site,
    Step,
    display_name,
)
from looplint.analysis.syntax import call_display, is_none_check, source_of
from looplint.identity import MISSING_ZERO_GRAD
from looplint.rule import Rule, Violation


class MissingZeroGrad(Rule):
    """
    ## What it does
    Checks loops that run a backward pass and step an optimizer for something that
    clears that optimizer's gradients in every iteration: `opt.zero_grad()`,
    `model.zero_grad()`, `p.grad = None` / `p.grad.zero_()` over parameters, or a
    `zero_grad()` inside the closure given to `opt.step(closure)` — directly or in
    a function of the same module that the loop calls, before or after the step.
    Each optimizer is checked on its own, so clearing one optimizer of a GAN does
    not excuse the other. An unknown helper handed the optimizer may clear it,
    unless its name says it only clips, logs, saves or adjusts the learning rate
    (`clip_gradient(optimizer, max_norm)`, `adjust_learning_rate(optimizer, epoch)`).

    ## Why is this bad?
    `backward()` *adds* into `.grad`. Without clearing, every step applies the sum
    of all gradients seen so far: the effective learning rate grows each batch and
    the update direction is dominated by stale batches. Nothing crashes; the model
    just trains badly or diverges.

    Gradient accumulation (clearing together with the step every N batches) is
    recognised and not reported. The mirror image is: an optimizer that steps every
    iteration while its gradients are cleared only under a condition
    (`if did_step: opt.zero_grad()`) applies stale, summed gradients on most steps.

    ## References
    - [PyTorch: zeroing out gradients](https://pytorch.org/tutorials/recipes/recipes/zeroing_out_gradients.html)
    - [`torch.optim.Optimizer.zero_grad`](https://pytorch.org/docs/stable/generated/torch.optim.Optimizer.zero_grad.html)
    """

    identity = MISSING_ZERO_GRAD
    INVALID = (
        """
        import torch

        model = torch.nn.Linear(4, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()  # expect: LL001
        """,
        """
        from torch import optim

        def train(model, loader, opt_g, opt_d):
            for real in loader:
                opt_d.zero_grad()
                d_loss(model, real).backward()
                opt_d.step()
                g_loss(model).backward()
                opt_g.step()  # expect: LL001

        train(net, data, optim.Adam(net.g.parameters()), optim.Adam(net.d.parameters()))
        """,
    )
    VALID = (
        """
        import torch

        model = torch.nn.Linear(4, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()
        """,
        """
        import torch

        optimizer = torch.optim.AdamW(model.parameters())
        for i, (x, y) in enumerate(loader):
            (loss_fn(model(x), y) / 4).backward()
            if (i + 1) % 4 == 0:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        for site, step, view in facts.in_loops(Step):
            if not any(isinstance(s.op, Backward) for s in view.sites):
                continue
            if any(
                isinstance(s.op, Escape) and s.op.optimizer == step.optimizer for s in view.sites
            ):
                continue
            clears = [
                s
                for s in view.sites
                if isinstance(s.op, Clear) and s.op.optimizer in (None, step.optimizer)
            ]
            name = display_name(step.optimizer)
            if clears:
                rare = _cleared_less_often(site, clears, view)
                if rare is not None:
                    yield Violation(
                        step.node,
                        f"`{call_display(step.node)}` runs every iteration but `{name}`'s "
                        f"gradients are only cleared under `if {rare}:`, so most steps apply "
                        f"gradients summed over earlier batches; clear once per iteration",
                    )
                continue
            yield Violation(
                step.node,
                f"`{call_display(step.node)}` runs every iteration but nothing in the loop "
                f"clears `{name}`'s gradients, so they pile up across batches; call "
                f"`{name}.zero_grad()` once per iteration",
            )


def _cleared_less_often(step: Site, clears: list[Site], view: LoopView) -> str | None:
    """The condition guarding every clear, when the step itself runs every iteration
    (the mirror image of LL010's over-clearing); None when some clear always runs."""
    if step.guards_within(view.loop):
        return None
    arms_cleared: dict[int, set[int]] = {}
    tests: list[str] = []
    for clear in clears:
        # Guards inside a loop over parameters (`if p.grad is not None:`) are per tensor.
        depth = clear.loops.index(view.loop) if view.loop in clear.loops else len(clear.loops)
        nested = {id(g) for inner in clear.loops[depth + 1 :] for g in clear.guards_within(inner)}
        guards = tuple(g for g in clear.guards_within(view.loop) if id(g) not in nested)
        if not guards:
            return None
        outer = guards[0]
        if outer.test is None or is_none_check(outer.test):
            # `except` arms are an error path, and `if params is not None:` skips only
            # the first iteration: neither is a schedule.
            return None
        arms = dict(clear.arms)
        arms_cleared.setdefault(id(outer), set()).add(arms.get(id(outer.node), -1))
        if len(arms_cleared[id(outer)]) == len(outer.arms) > 1:
            return None  # every arm of one `if` clears
        tests.append(source_of(outer.test))
    return tests[0]
