"""LL011: validation switches the model to eval mode and training never switches back."""

from __future__ import annotations

from collections.abc import Iterator

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import LoopView, ModeSwitch, Step, display_name
from looplint.analysis.syntax import source_of
from looplint.identity import EVAL_MODE_NOT_RESTORED
from looplint.rule import Rule, Violation


def _restores(trained: str, evaluated: str) -> bool:
    """`model.train()` restores `model.eval()`; `model.head.train()` restores only the head."""
    return trained == evaluated or evaluated.startswith(trained + ".")


def _probing(facts: ModuleFacts, module: str) -> bool:
    """A linear probe: part of `module` is frozen and nothing ever puts the whole of it
    in train mode (at most its head), so eval mode is kept on purpose and changes nothing
    that trains."""
    if not facts.partly_frozen(module):
        return False
    name = display_name(module)
    return not any(
        isinstance(site.op, ModeSwitch)
        and site.op.training
        and (_restores(site.op.module, module) or display_name(site.op.module) == name)
        for _, sites in facts.all_sites()
        for site in sites
    )


class EvalModeNotRestored(Rule):
    """
    ## What it does
    Reports `model.eval()` (or `model.train(False)`) inside a training loop that
    steps an optimizer over that model, when nothing in the loop — directly or
    in a same-module function it calls, such as `train_one_epoch()` — ever
    calls `model.train()` again. The finding is on the `eval()` call. An
    optimizer handed in with parameters looplint cannot see trains the model
    handed in with it, unless the loop puts some module back in train mode
    itself (then it manages modes per module).

    Switching a *submodule* to eval mode on purpose (frozen batch-norm
    statistics in a backbone) is not reported; only the model the optimizer
    updates, or a parent of it, counts.

    ## Why is this bad?
    After the first validation the rest of training runs in eval mode: dropout
    is off and batch-norm uses (and stops updating) its running statistics.
    The model trains on, slightly differently and worse, with no error.

    ## References
    - [`nn.Module.train`](https://pytorch.org/docs/stable/generated/torch.nn.Module.html#torch.nn.Module.train)
    """

    identity = EVAL_MODE_NOT_RESTORED
    INVALID = (
        """
        import torch

        optimizer = torch.optim.Adam(model.parameters())
        model.train()
        for epoch in range(10):
            for x, y in train_loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
            model.eval()  # expect: LL011
            with torch.no_grad():
                validate(model, val_loader)
        """,
    )
    VALID = (
        """
        import torch

        optimizer = torch.optim.Adam(model.parameters())
        for epoch in range(10):
            model.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                validate(model, val_loader)
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        for function, sites in facts.all_sites():
            views = None
            for site in sites:
                switch = site.op
                if not isinstance(switch, ModeSwitch) or switch.training or not site.loops:
                    continue
                if _probing(facts, switch.module):
                    continue
                if views is None:
                    views = facts.loop_views(function)
                for loop in reversed(site.loops):
                    view = views[id(loop)]
                    trained = [
                        s
                        for s in view.sites
                        if isinstance(s.op, Step)
                        and not s.exclusive_with(site)  # `if train:` step, `if not train:` eval
                        and _trains(s.op.optimizer, switch.module, view, facts)
                    ]
                    if not trained:
                        continue
                    # `test_model = model.module if ddp else model`: `model.train()` restores
                    # what `test_model.eval()` switched; `model = self.model` in two methods
                    # names one model
                    names = facts.assignments.aliases(switch.module)
                    restored = any(
                        isinstance(s.op, ModeSwitch)
                        and s.op.training
                        and any(
                            _restores(trained, name)
                            for trained in facts.assignments.aliases(s.op.module)
                            for name in names
                        )
                        for s in view.sites
                    )
                    if not restored:
                        name = display_name(switch.module)
                        call = source_of(switch.node)
                        yield Violation(
                            switch.node,
                            f"`{call}` runs inside the training loop and nothing in the "
                            f"loop calls `{name}.train()` again, so later training steps run with "
                            f"dropout off and frozen batch-norm; call `{name}.train()` before "
                            "training",
                        )
                    break


def _trains(optimizer: str, module: str, view: LoopView, facts: ModuleFacts) -> bool:
    """Whether stepping `optimizer` trains `module` (or a part of it): it was built over
    the module, under another name (`raw_model = model.module if ddp else model`), or by
    code looplint cannot see that was handed the module (`opt, sched = build(model, cfg)`),
    or both were handed in together."""
    if facts.optimizes(optimizer, module, whole=True):
        return True
    if not facts.table.updates(optimizer):
        for source in facts.assignments.assigned_from(optimizer):
            if any(_restores(module, alias) for alias in facts.assignments.aliases(source)):
                return True
    return _passed_along(optimizer, module, view, facts)


def _passed_along(optimizer: str, module: str, view: LoopView, facts: ModuleFacts) -> bool:
    """`fit(model, optimizer, ...)`, or a trainer storing both from its `__init__`: an
    optimizer handed in, whose parameters are not visible, trains the model handed in
    with it. Not when the loop puts some module back in train mode itself: then it
    manages modes per module (a linear probe keeps its frozen backbone in eval mode on
    purpose)."""
    if facts.table.updates(optimizer):
        return False
    if not (facts.assignments.handed_in(optimizer) and facts.assignments.handed_in(module)):
        return False
    return not any(isinstance(s.op, ModeSwitch) and s.op.training for s in view.sites)
