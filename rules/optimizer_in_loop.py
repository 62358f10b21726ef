"""LL002: optimizers, schedulers and scalers rebuilt inside the training loop."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from looplint.analysis.catalog import ObjectKind, optimizer_keeps_state
from looplint.analysis.conditions import holds_on_many_iterations
from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import (
    Assign,
    Backward,
    Construct,
    LoadState,
    LoopView,
    Reinit,
    Site,
    Step,
)
from looplint.analysis.syntax import call_display, dotted_name
from looplint.identity import OPTIMIZER_IN_LOOP
from looplint.rule import Rule, Violation

_STATE = {
    ObjectKind.OPTIMIZER: "momentum and adaptive moments are",
    ObjectKind.SCHEDULER: "the learning-rate schedule is",
    ObjectKind.SCALER: "the loss scale is",
}


def _covers(target: str, source: str) -> bool:
    return source == target or source.startswith(target + ".")


def _recreated(sources: frozenset[str], view: LoopView) -> bool:
    """Whether what an optimizer is built over is itself new in every iteration."""
    pending = set(sources)
    seen: set[str] = set()
    assigns = [site.op for site in view.sites if isinstance(site.op, Assign)]
    # Weights re-initialised in place (`reset_parameters()`, `load_state_dict(initial)`)
    # make the model as new as a fresh construction would.
    renewed = [
        site.op.module if isinstance(site.op, Reinit) else site.op.target
        for site in view.sites
        if isinstance(site.op, (Reinit, LoadState))
    ]
    while pending:
        source = pending.pop()
        if source in seen:
            continue
        seen.add(source)
        if any(_covers(target, source) for target in view.loop.targets):
            return True
        if any(_covers(target, source) for target in renewed):
            return True
        for assign in assigns:
            if not _covers(assign.target, source):
                continue
            if assign.fresh and not _aliases(assign):
                return True
            pending.update(assign.sources)
    return False


def _aliases(assign: Assign) -> bool:
    """`peft_model = model.module` (or `model.module if distributed else model`): a second
    name for an existing object, nothing new; what it names decides whether it is new."""
    value = getattr(assign.node, "value", None)
    arms = (value.body, value.orelse) if isinstance(value, cst.IfExp) else (value,)
    return all(
        isinstance(arm, (cst.Name, cst.Attribute)) and dotted_name(arm) is not None
        for arm in arms
    )


class OptimizerInLoop(Rule):
    """
    ## What it does
    Reports an optimizer, LR scheduler or `GradScaler` constructed inside a
    training loop (a loop that runs a backward pass or an optimizer step), either
    directly or in a same-module function the loop calls, when what it manages
    persists across iterations.

    Not reported: the model is re-created in the same iteration (k-fold
    cross-validation, hyper-parameter sweeps, ensembles) or re-initialised in place
    (`reset_parameters()`, `p.data.normal_()`, `load_state_dict(initial)`); a fresh
    leaf tensor optimised per outer step (adversarial examples); construction under a
    condition that holds once (a one-off rebuild at `if epoch == unfreeze_epoch:`,
    lazy creation under `if opt is None:` or a flag the loop sets); a scheduler over
    an optimizer that is itself rebuilt (the optimizer is reported instead). A
    periodic condition (`if epoch % 30 == 0:`) or one the loop never changes (`if
    args.optim == "sgd":`) still rebuilds on many iterations and is reported.

    ## Why is this bad?
    Optimizers carry state between steps: SGD momentum buffers, Adam's first and
    second moments, the scheduler's position in its schedule, the scaler's loss
    scale. Re-creating them every epoch or batch silently throws that state away:
    Adam restarts with zero moments (large, noisy first steps), the learning rate
    jumps back to its initial value, and AMP re-discovers its scale. Training
    still runs, only worse.

    ## References
    - [PyTorch: `torch.optim`](https://pytorch.org/docs/stable/optim.html)
    - [How to adjust learning rate](https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate)
    """

    identity = OPTIMIZER_IN_LOOP
    INVALID = (
        """
        import torch.optim as optim

        for epoch in range(10):
            optimizer = optim.Adam(model.parameters(), lr=1e-3)  # expect: LL002
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """,
        """
        from torch.optim.lr_scheduler import StepLR

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for epoch in range(10):
            scheduler = StepLR(optimizer, step_size=3)  # expect: LL002
            train_one_epoch(model, optimizer)
            scheduler.step()

        def train_one_epoch(model, optimizer):
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()
        """,
    )
    VALID = (
        """
        import torch.optim as optim

        optimizer = optim.Adam(model.parameters(), lr=1e-3)
        for epoch in range(10):
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """,
        """
        import torch

        for fold, (train_idx, val_idx) in enumerate(kfold.split(data)):
            model = Net()
            optimizer = torch.optim.Adam(model.parameters())
            for x, y in batches(train_idx):
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        for function, sites in facts.all_sites():
            views = None
            for site in sites:
                op = site.op
                if not isinstance(op, Construct) or site.loop is None:
                    continue
                if views is None:
                    views = facts.loop_views(function)
                view = views[id(site.loop)]
                if self._legitimate(site, op, view, facts):
                    continue
                what = {
                    ObjectKind.OPTIMIZER: "optimizer",
                    ObjectKind.SCHEDULER: "LR scheduler",
                    ObjectKind.SCALER: "GradScaler",
                }[op.kind]
                lost = _STATE[op.kind]
                if op.kind is ObjectKind.OPTIMIZER and not optimizer_keeps_state(
                    op.qualified, op.node
                ):
                    lost = _STATE[ObjectKind.SCHEDULER]  # plain SGD: only its schedule is lost
                yield Violation(
                    op.node,
                    f"{what} `{call_display(op.node)}` is re-created on every iteration of the "
                    f"training loop, so {lost} reset each time; build it once before the loop",
                )

    @staticmethod
    def _legitimate(site: Site, op: Construct, view: LoopView, facts: ModuleFacts) -> bool:
        if not any(isinstance(s.op, (Backward, Step)) for s in view.sites):
            return True  # not a training loop (e.g. building per-parameter optimizers)
        if any(
            not holds_on_many_iterations(guard.test, view.loop.node)
            for guard in site.guards_within(view.loop)
        ):
            return True  # one-off or lazy construction
        if _is_phase_loop(view) or _is_sweep(view):
            return True  # each iteration is a whole training run (stages, phases, settings)
        constructed_here = [s.op for s in view.sites if isinstance(s.op, Construct)]
        if op.kind is ObjectKind.OPTIMIZER:
            if not optimizer_keeps_state(op.qualified, op.node) and not _scheduled(
                site, view, facts
            ):
                return True  # plain SGD has nothing to lose (and no schedule drives it)
            return not op.parameter_sources or _recreated(op.parameter_sources, view)
        if op.kind is ObjectKind.SCHEDULER:
            if op.optimizer is None:
                return True
            return any(
                c.kind is ObjectKind.OPTIMIZER and _assigned_to(c, op.optimizer, view)
                for c in constructed_here
            ) or _recreated(frozenset({op.optimizer}), view)
        return any(c.kind is ObjectKind.OPTIMIZER for c in constructed_here)


def _scheduled(site: Site, view: LoopView, facts: ModuleFacts) -> bool:
    """Whether a learning-rate schedule drives the optimizer `site` builds: a scheduler
    built beside it in the loop, or one built anywhere over the name it is bound to. The
    latter keeps adjusting the optimizer it was built over, so the rebuilt one never sees
    its learning rate change: even plain SGD loses its schedule."""
    if any(
        isinstance(s.op, Construct) and s.op.kind is ObjectKind.SCHEDULER for s in view.sites
    ):
        return True
    index = next(i for i, s in enumerate(view.sites) if s.op is site.op)
    bound = next(
        (s.op.target for s in view.sites[index + 1 : index + 3] if isinstance(s.op, Assign)),
        None,
    )
    return bound is not None and any(
        info.kind is ObjectKind.SCHEDULER and info.optimizer == bound
        for infos in facts.objects.values()
        for info in infos
    )


def _is_phase_loop(view: LoopView) -> bool:
    """Whether every optimizer step is two or more loops deeper (stage → epoch → batch)."""
    depths = [
        len(site.loops) - site.loops.index(view.loop) - 1
        for site in view.sites
        if isinstance(site.op, Step)
    ]
    return bool(depths) and min(depths) >= 2


def _is_sweep(view: LoopView) -> bool:
    """`for lr in (1e-3, 1e-4):` around the loop that steps: one run per listed setting."""
    node = view.loop.node
    if not (isinstance(node, cst.For) and isinstance(node.iter, (cst.List, cst.Tuple, cst.Set))):
        return False
    steps = [site for site in view.sites if isinstance(site.op, Step)]
    return bool(steps) and all(site.loops[-1] is not view.loop for site in steps)


def _assigned_to(construct: Construct, identity: str, view: LoopView) -> bool:
    """Whether the optimizer built by `construct` is bound to `identity` in this loop."""
    for index, site in enumerate(view.sites):
        if site.op is construct:
            for later in view.sites[index + 1 : index + 3]:
                if isinstance(later.op, Assign) and later.op.target == identity:
                    return True
    return any(
        isinstance(site.op, Assign) and site.op.target == identity and site.op.fresh
        for site in view.sites
    )
