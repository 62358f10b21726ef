"""LL008: checkpoints that save or restore the model but not the optimizer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import libcst as cst

from looplint.analysis.catalog import ObjectKind, optimizer_keeps_state
from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import Assign, LoadState, Loop, Save, Site, Step, display_name
from looplint.analysis.program import FunctionInfo
from looplint.analysis.syntax import descendants
from looplint.identity import CHECKPOINT_WITHOUT_OPTIMIZER_STATE
from looplint.rule import Rule, Violation


def _stateful(facts: ModuleFacts, optimizer: str) -> bool:
    """Momentum, Adam moments, … — an optimizer whose state a resume must restore."""
    return any(
        info.kind is ObjectKind.OPTIMIZER
        and info.call is not None
        and optimizer_keeps_state(info.qualified, info.call)
        for info in facts.objects.get(optimizer, ())
    )


def _holds_optimizer_state(save: Save, facts: ModuleFacts) -> bool:
    return any(ObjectKind.OPTIMIZER in facts.kinds(s) for s in save.states) or any(
        "optim" in key.lower() for key in save.keys
    )


def _loaded_key(load: LoadState) -> str | None:
    """`"model"` in `model.load_state_dict(checkpoint["model"])`."""
    if not load.node.args:
        return None
    argument = load.node.args[0].value
    if isinstance(argument, cst.Subscript) and len(argument.slice) == 1:
        index = argument.slice[0].slice
        if isinstance(index, cst.Index) and isinstance(index.value, cst.SimpleString):
            value = index.value.evaluated_value
            return value if isinstance(value, str) else None
    return None


def _written_out(site: Site, view: list[Site]) -> Save | None:
    """The save with its payload visible: given inline, or built as a dict just before."""
    save = site.op
    assert isinstance(save, Save)
    if save.literal:
        return save
    for other in reversed([s for s in view if s.order < site.order]):
        op = other.op
        if isinstance(op, Assign) and op.target == save.payload:
            node = op.node
            if not (isinstance(node, cst.Assign) and isinstance(node.value, cst.Dict)):
                return None
            keys = frozenset(
                value
                for element in node.value.elements
                if isinstance(element, cst.DictElement)
                and isinstance(element.key, cst.SimpleString)
                and isinstance(value := element.key.evaluated_value, str)
            )
            states = frozenset(
                source.removesuffix(".state_dict")
                for source in op.sources
                if source.endswith(".state_dict")
            )
            return replace(save, states=states, keys=keys, literal=True)
    return None


def _copies_live_weights(load: LoadState) -> bool:
    """`target.load_state_dict(online.state_dict())`: the state comes from a model in memory."""
    return any(
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "state_dict"
        for node in descendants(load.node)
    )


def _trained(model: str, facts: ModuleFacts) -> bool:
    """Whether an optimizer of the module updates `model`, or none says what it updates
    (then any model may be the trained one)."""
    optimizers = [identity for identity in facts.objects if facts.is_optimizer(identity)]
    known = [opt for opt in optimizers if facts.table.updates(opt)]
    return not known or any(facts.optimizes(opt, model) for opt in known)


def _resumes(site: Site, sites: list[Site], function: FunctionInfo, facts: ModuleFacts) -> bool:
    """A load that resumes training, as opposed to loading weights for evaluation.

    Either training steps follow it in the same function, or it sits in a helper that
    is handed the optimizer (`resume(model, optimizer, path)`) and still leaves it be.
    Copying a live model's weights (`target_net.load_state_dict(q_net.state_dict())`, a
    DQN target network or an EMA) restores nothing from a file, and loading a network no
    optimizer trains (a distillation teacher) resumes no training.
    """
    load = site.op
    assert isinstance(load, LoadState)
    if _copies_live_weights(load) or not _trained(load.target, facts):
        return False
    if any(isinstance(s.op, Step) and s.loop is not None and s.order > site.order for s in sites):
        return True
    return "resume" in function.name.lower() or any(
        ObjectKind.OPTIMIZER in facts.kinds(f"{function.qualname}:{param}")
        for param in function.params
    )


def _full_checkpoint_elsewhere(site: Site, view: list[Site], facts: ModuleFacts) -> bool:
    """The same iteration also writes a full checkpoint (or one looplint cannot read)."""
    return any(
        other is not site
        and isinstance(other.op, Save)
        and ((full := _written_out(other, view)) is None or _holds_optimizer_state(full, facts))
        for other in view
    )


def _best_weights(site: Site, loop: Loop) -> bool:
    """`if val_acc > best_acc: torch.save(model.state_dict(), "best.pt")`: weights for later use."""
    for guard in site.guards_within(loop):
        test = guard.test
        if isinstance(test, cst.Comparison) and not any(
            isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo)
            for node in (test, *descendants(test))
        ):
            return True
    return False


class CheckpointWithoutOptimizerState(Rule):
    """
    ## What it does
    In a loop that steps a stateful optimizer (Adam-family, RMSprop, Adagrad,
    SGD with momentum, …), reports a periodic `torch.save` whose payload holds
    the model's `state_dict()` but not the optimizer's. Also reports a resume
    that loads the model from a checkpoint written with optimizer state
    (`model.load_state_dict(ckpt["model"])`) but never calls the optimizer's
    `load_state_dict`.

    Saving final weights after training ends (outside the loop), loading
    pretrained or best weights for evaluation, and plain SGD without momentum
    are not reported; nor are weights-only snapshots (`torch.save(model.state_dict(),
    ...)`) in a module that never resumes training from a load. A checkpoint written
    as several files is reported once.

    ## Why is this bad?
    A run resumed from such a checkpoint restarts the optimizer from scratch:
    Adam's moment estimates are zero again and the first steps after resuming
    are large and noisy, momentum is lost, and the learning-rate warm-up is
    effectively skipped. The resumed run quietly diverges from the one that
    was interrupted.

    ## References
    - [Saving and loading a general checkpoint](https://pytorch.org/tutorials/recipes/recipes/saving_and_loading_a_general_checkpoint.html)
    """

    identity = CHECKPOINT_WITHOUT_OPTIMIZER_STATE
    INVALID = (
        """
        import torch

        optimizer = torch.optim.Adam(model.parameters())
        for epoch in range(100):
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
            torch.save({"epoch": epoch, "model": model.state_dict()}, "ckpt.pt")  # expect: LL008
        """,
    )
    VALID = (
        """
        import torch

        optimizer = torch.optim.Adam(model.parameters())
        for epoch in range(100):
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
            torch.save(
                {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict()},
                "ckpt.pt",
            )
        torch.save(model.state_dict(), "final.pt")
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        full_keys: set[str] = set()
        full_saves = False
        loads: list[tuple[Site, list[Site], FunctionInfo]] = []
        reported: set[int] = set()
        for function, sites in facts.all_sites():
            for site in sites:
                if isinstance(site.op, Save) and _holds_optimizer_state(site.op, facts):
                    full_keys |= site.op.keys
                    full_saves = True
                if isinstance(site.op, LoadState):
                    loads.append((site, sites, function))
        # Weights-only snapshots matter only where training is resumed from a load.
        resumes = any(
            not facts.is_optimizer(site.op.target)  # type: ignore[union-attr]
            and _resumes(site, sites, function, facts)
            for site, sites, function in loads
        )
        for function, sites in facts.all_sites():
            saves = [s for s in sites if isinstance(s.op, Save) and s.loop is not None]
            if not saves:
                continue
            views = facts.loop_views(function)
            for site in saves:
                for loop in reversed(site.loops):
                    if id(loop) in reported:
                        break  # one finding per checkpoint, however many files it writes
                    view = views[id(loop)].sites
                    save = _written_out(site, view)
                    if save is None or _holds_optimizer_state(save, facts):
                        break
                    if not save.keys and not resumes:
                        break  # `torch.save(model.state_dict(), ...)` nobody resumes from
                    if _full_checkpoint_elsewhere(site, view, facts):
                        break
                    if _best_weights(site, loop) and (full_saves or not resumes):
                        break  # the best weights, beside a resumable checkpoint
                    optimizers = {
                        s.op.optimizer
                        for s in views[id(loop)].sites
                        if isinstance(s.op, Step) and _stateful(facts, s.op.optimizer)
                    }
                    saved = [
                        (o, m) for o in optimizers for m in save.states if facts.optimizes(o, m)
                    ]
                    if saved and id(save.node) not in reported:
                        reported.add(id(save.node))
                        reported.add(id(loop))
                        optimizer, model = saved[0]
                        yield Violation(
                            save.node,
                            f"this checkpoint saves `{display_name(model)}.state_dict()` but "
                            f"not `{display_name(optimizer)}.state_dict()`, so a resumed run "
                            "restarts the optimizer's momentum and moments; save both",
                        )
                        break
        if not full_keys:
            return
        restores_optimizer = any(
            ObjectKind.OPTIMIZER in facts.kinds(site.op.target)  # type: ignore[union-attr]
            or "optim" in site.op.target.lower()  # type: ignore[union-attr]
            for site, _, _ in loads
        )
        if restores_optimizer:
            return
        for site, sites, function in loads:
            load = site.op
            assert isinstance(load, LoadState)
            if site.loops or not _resumes(site, sites, function, facts):
                continue
            key = _loaded_key(load)
            if key is not None and key in full_keys and "optim" not in key.lower():
                yield Violation(
                    load.node,
                    f"`{display_name(load.target)}` is restored from a checkpoint that also holds "
                    "the optimizer's state, which is never loaded: the resumed run restarts the "
                    "optimizer; call the optimizer's `load_state_dict` too",
                )
