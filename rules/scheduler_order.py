"""LL004: LR schedulers stepped out of order, without their metric, or at the wrong cadence."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import libcst as cst

from looplint.analysis.catalog import PER_BATCH_SCHEDULERS, PLATEAU_SCHEDULERS, ObjectKind
from looplint.analysis.events import BEFORE_UPDATE, Handler
from looplint.analysis.facts import Frame, ModuleFacts, ObjectInfo
from looplint.analysis.operations import SchedulerStep, Site, Step, display_name
from looplint.analysis.program import AssignEvent, all_events
from looplint.analysis.syntax import (
    descendants,
    dotted_name,
    is_none_check,
    source_of,
    statement_of,
)
from looplint.identity import SCHEDULER_ORDER
from looplint.rule import Fix, Rule, Violation

_PER_BATCH_WORDS = ("steps_per_epoch", "iters_per_epoch", "batches_per_epoch", "num_batches")


def _mentions_batches(
    expression: cst.CSTNode, assigned: dict[str, cst.BaseExpression], depth: int = 0
) -> bool:
    """Whether an argument is built from `len(loader)` or a steps-per-epoch count."""
    for node in (expression, *descendants(expression)):
        if (
            isinstance(node, cst.Call)
            and isinstance(node.func, cst.Name)
            and node.func.value == "len"
        ):
            return True
        if isinstance(node, (cst.Name, cst.Attribute)):
            name = dotted_name(node) or ""
            if any(word in name for word in _PER_BATCH_WORDS):
                return True
            if depth < 2 and isinstance(node, cst.Name) and node.value in assigned:
                if _mentions_batches(assigned[node.value], assigned, depth + 1):
                    return True
    return False


def _entry(literal: cst.Dict, key: str) -> cst.BaseExpression | None:
    for element in literal.elements:
        if (
            isinstance(element, cst.DictElement)
            and isinstance(element.key, cst.SimpleString)
            and element.key.evaluated_value == key
        ):
            return element.value
    return None


def _epoch_interval_schedulers(returned: cst.BaseExpression) -> Iterator[cst.BaseExpression]:
    """Schedulers a Lightning `configure_optimizers` return value leaves at Lightning's
    default interval, once per epoch: `[opt], [sched]`, `{"lr_scheduler": sched}`, or a
    scheduler config without `"interval": "step"`."""
    configs: list[cst.BaseExpression] = []
    if isinstance(returned, (cst.Tuple, cst.List)) and len(returned.elements) == 2:
        second = returned.elements[1].value
        if isinstance(second, (cst.List, cst.Tuple)):
            configs = [e.value for e in second.elements]
    elif isinstance(returned, cst.Dict):
        found = _entry(returned, "lr_scheduler")
        configs = [found] if found is not None else []
    for config in configs:
        if isinstance(config, cst.Dict):
            interval = _entry(config, "interval")
            scheduler = _entry(config, "scheduler")
            if interval is None and scheduler is not None:
                yield scheduler
        else:
            yield config


def _lightning_epoch_interval(facts: ModuleFacts) -> Iterator[Violation]:
    """A per-batch schedule returned from a LightningModule's `configure_optimizers`
    without `"interval": "step"`: Lightning steps it once per epoch."""
    for function in facts.program.functions:
        owner = function.owner
        if function.name != "configure_optimizers" or owner is None:
            continue
        if not any(base.rsplit(".", 1)[-1] == "LightningModule" for base in owner.bases):
            continue
        frame = Frame(function, {})
        for returned in function.returns:
            for scheduler in _epoch_interval_schedulers(returned):
                identity = facts.scopes.identity(scheduler, frame)
                info = facts.scheduler_info(identity) if identity is not None else None
                if info is None or info.call is None or not _is_per_batch(info, facts):
                    continue
                name = source_of(scheduler)
                yield Violation(
                    scheduler,
                    f"`{name}` is a per-batch schedule but `configure_optimizers` returns it "
                    'without `"interval": "step"`, so Lightning steps it once per epoch; '
                    f'return `{{"scheduler": {name}, "interval": "step"}}`',
                )


def _is_per_batch(info: ObjectInfo, facts: ModuleFacts) -> bool:
    if info.qualified in PER_BATCH_SCHEDULERS or info.qualified.startswith("transformers."):
        return True
    if info.call is None:
        return False
    assigned = _assignments_around(info.call, facts)
    return any(_mentions_batches(arg.value, assigned) for arg in info.call.args[1:])


def _assignments_around(call: cst.Call, facts: ModuleFacts) -> dict[str, cst.BaseExpression]:
    """Simple `name = value` assignments of the function that builds `call`."""
    for function in facts.program.functions:
        found: dict[str, cst.BaseExpression] = {}
        contains = False
        for event in all_events(function.events):
            if (
                isinstance(event, AssignEvent)
                and event.value is not None
                and len(event.targets) == 1
            ):
                target = event.targets[0]
                if isinstance(target, cst.Name):
                    found[target.value] = event.value
                if event.value is call:
                    contains = True
            elif getattr(event, "node", None) is call:
                contains = True
        if contains:
            return found
    return {}


def _move_after(
    module: cst.Module, scheduler_step: cst.Call, optimizer_step: cst.Call
) -> Callable[[], Fix | None]:
    """Move the scheduler's statement right after the optimizer's (and `scaler.update()`)."""

    def build() -> Fix | None:
        moved = statement_of(module, scheduler_step)
        anchor = statement_of(module, optimizer_step)
        if moved is None or anchor is None or moved[0] is not anchor[0] or moved[1] > anchor[1]:
            return None
        block, body = moved[0], list(moved[0].body)  # type: ignore[attr-defined]
        statement = body[moved[1]]
        target = anchor[1]
        following = body[target + 1] if target + 1 < len(body) else None
        if (
            isinstance(following, cst.SimpleStatementLine)
            and isinstance(following.body[0], cst.Expr)
            and isinstance(call := following.body[0].value, cst.Call)
            and isinstance(call.func, cst.Attribute)
            and call.func.attr.value == "update"
        ):
            target += 1
        body.insert(target + 1, statement)
        del body[moved[1]]
        return Fix(((block, block.with_changes(body=body)),))

    return build


class SchedulerOrder(Rule):
    """
    ## What it does
    Reports an LR scheduler's `.step()` that
    - runs before its optimizer's step in the same iteration, including a
      scheduler stepped at the top of the epoch loop before the batch loop that
      steps the optimizer;
    - calls `ReduceLROnPlateau.step()` without the metric it reduces on;
    - steps a per-batch schedule (`OneCycleLR`, `CyclicLR`, transformers'
      `get_*_schedule_with_warmup`, or any schedule sized from `len(loader)` or
      steps per epoch) once per epoch, including one that a LightningModule's
      `configure_optimizers` returns without `"interval": "step"` (Lightning
      steps it once per epoch by default);
    - runs in a pytorch-ignite handler of `Events.ITERATION_STARTED` or
      `Events.EPOCH_STARTED` (`@trainer.on(...)`, `trainer.add_event_handler(...,
      lambda _: scheduler.step())`) of an engine whose update function steps the
      optimizer: the engine fires those events before the update. `*_COMPLETED`
      handlers, one-off filters (`once=`) and ignite's own parameter schedulers
      are not reported.

    ## Why is this bad?
    Since PyTorch 1.1 the scheduler must step *after* the optimizer: stepping it
    first skips the first value of the schedule (PyTorch warns once, at run time,
    and the warning is easy to miss). A plateau scheduler without its metric
    cannot work at all. A per-batch schedule stepped once per epoch stretches a
    warm-up or a one-cycle policy over hundreds of epochs: the learning rate
    barely moves from its initial value.

    ## References
    - [How to adjust learning rate](https://pytorch.org/docs/stable/optim.html#how-to-adjust-learning-rate)
    - [`OneCycleLR`](https://pytorch.org/docs/stable/generated/torch.optim.lr_scheduler.OneCycleLR.html)
    """

    identity = SCHEDULER_ORDER
    fix_safety = """
        Safe where offered: when the scheduler's `step()` and the optimizer's step are plain
        statements of the same block, the scheduler's statement moves to just after the
        optimizer step (after `scaler.update()` when that follows it). No fix is offered
        when the optimizer steps in an inner loop (the scheduler may be meant per epoch)
        or for the metric and cadence findings, which need a decision.
        """
    FIXES = (
        (
            """
            import torch

            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, s / 500))
            for x, y in loader:
                optimizer.zero_grad()
                scheduler.step()
                loss_fn(model(x), y).backward()
                optimizer.step()
            """,
            """
            import torch

            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, s / 500))
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
                scheduler.step()
            """,
        ),
    )
    INVALID = (
        """
        import torch

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
        for epoch in range(100):
            scheduler.step()  # expect: LL004
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """,
        """
        import torch
        from torch.optim.lr_scheduler import OneCycleLR

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = OneCycleLR(optimizer, max_lr=0.1, total_steps=len(loader) * 10)
        for epoch in range(10):
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
            scheduler.step()  # expect: LL004
        """,
    )
    VALID = (
        """
        import torch

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
        for epoch in range(100):
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
            scheduler.step()
        """,
        """
        from torch.optim.lr_scheduler import ReduceLROnPlateau

        scheduler = ReduceLROnPlateau(optimizer)
        for epoch in range(10):
            train_one_epoch(model, optimizer)
            scheduler.step(evaluate(model))
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        yield from _lightning_epoch_interval(facts)
        yield from _handler_before_update(facts)
        for function, sites in facts.all_sites():
            views = None
            for site in sites:
                op = site.op
                if not isinstance(op, SchedulerStep):
                    continue
                info = facts.scheduler_info(op.scheduler)
                name = display_name(op.scheduler)
                if info is not None and info.qualified in PLATEAU_SCHEDULERS and not op.has_metric:
                    yield Violation(
                        op.node,
                        f"`{name}` is a ReduceLROnPlateau but `{name}.step()` gets no metric; "
                        f"pass the monitored value, e.g. `{name}.step(val_loss)`",
                    )
                    continue
                if site.loop is None:
                    continue
                if views is None:
                    views = facts.loop_views(function)
                view = views[id(site.loop)]
                steps = [
                    s
                    for s in view.sites
                    if isinstance(s.op, Step)
                    and (info is None or info.optimizer is None or s.op.optimizer == info.optimizer)
                ]
                if not steps:
                    continue
                if (
                    info is not None
                    and self._stepped_per_epoch(site, steps)
                    and _is_per_batch(info, facts)
                ):
                    yield Violation(
                        op.node,
                        f"`{name}` is a per-batch schedule but `{name}.step()` runs once per "
                        "epoch, outside the batch loop that steps the optimizer; step it right "
                        "after the optimizer step",
                    )
                    continue
                # A condition of its own (`if epoch == warmup:`) makes it a one-off; one it
                # shares with the optimizer step (`if step % accum == 0:`) does not.
                shared = {id(g) for g in steps[0].guards}
                if (
                    # `sched.step(epoch)` (timm's contract) says where in the schedule it
                    # is, and `plateau.step(val_loss)` follows a metric: neither skips one.
                    not op.has_metric
                    and all(s.order > site.order for s in steps)
                    and not any(
                        isinstance(g.test, cst.Comparison)
                        and id(g) not in shared
                        and not is_none_check(g.test)
                        for g in site.guards_within(view.loop)
                    )
                    and not _silences_warnings(site)
                ):
                    first = steps[0].op
                    assert isinstance(first, Step)
                    optimizer = display_name(first.optimizer)
                    yield Violation(
                        op.node,
                        f"`{name}.step()` runs before `{optimizer}` steps in this iteration, so "
                        "the first value of the schedule is skipped; call it after "
                        "the optimizer step",
                        fix=_move_after(facts.program.module, op.node, first.node),
                    )

    @staticmethod
    def _stepped_per_epoch(site: Site, steps: list[Site]) -> bool:
        loop = site.loop
        return all(
            len(s.loops) > len(site.loops) and s.loops[len(site.loops) - 1] is loop for s in steps
        )


def _handler_before_update(facts: ModuleFacts) -> Iterator[Violation]:
    """A scheduler stepped in a pytorch-ignite handler of `ITERATION_STARTED` (or
    `EPOCH_STARTED`): the engine fires it before the update function steps the optimizer."""
    for handler in facts.handlers:
        if handler.event not in BEFORE_UPDATE or handler.once:
            continue
        engine = facts.training_engines.get(handler.engine)
        if engine is None:
            continue
        if engine.update is not None:
            stepped = {s.op.optimizer for s in facts.sites(engine.update) if isinstance(s.op, Step)}
        else:
            stepped = {engine.optimizer} if engine.optimizer is not None else set()
        if not stepped:
            continue
        for call, scheduler, has_metric in _scheduler_steps(handler, facts):
            info = facts.scheduler_info(scheduler)
            if has_metric or (info is not None and info.optimizer not in (None, *stepped)):
                continue
            name = display_name(scheduler)
            optimizer = display_name(sorted(stepped)[0])
            yield Violation(
                call,
                f"`{name}.step()` runs in an `Events.{handler.event}` handler, which the engine "
                f"fires before its update steps `{optimizer}`, so the first value of the "
                f"schedule is skipped; attach it to "
                f"`Events.{handler.event.replace('STARTED', 'COMPLETED')}` instead",
            )


def _scheduler_steps(handler: Handler, facts: ModuleFacts) -> Iterator[tuple[cst.Call, str, bool]]:
    """(call, scheduler, whether it gets a metric) for each scheduler step a handler runs."""
    if handler.function is not None:
        for site in facts.sites(handler.function):
            if isinstance(site.op, SchedulerStep):
                yield site.op.node, site.op.scheduler, site.op.has_metric
        return
    body = handler.body
    if (
        isinstance(body, cst.Call)
        and isinstance(body.func, cst.Attribute)
        and body.func.attr.value == "step"
    ):
        scheduler = facts.scopes.identity(body.func.value, handler.frame)
        if scheduler is not None and ObjectKind.SCHEDULER in facts.kinds(scheduler):
            yield body, scheduler, bool(body.args)


def _silences_warnings(site: Site) -> bool:
    """Stepped inside `warnings.catch_warnings()`: the author silenced torch's own
    "lr_scheduler.step() before optimizer.step()" warning, so the order is deliberate
    (Ultralytics steps at the top of the epoch and warms up per batch by hand)."""
    return "warnings.catch_warnings" in site.contexts
