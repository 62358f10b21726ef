"""LL008: checkpoints that save or restore the model but not the optimizer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import libcst as cst

from looplint.analysis.catalog import ObjectKind, optimizer_keeps_state
from looplint.analysis.conditions import is_loop_invariant
from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import Assign, LoadState, Loop, Save, Site, Step, display_name
from looplint.analysis.program import CallEvent, FunctionInfo, all_events
from looplint.analysis.syntax import descendants, dotted_name
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


_PROGRESS_KEY = re.compile(r"epoch|step|iter", re.IGNORECASE)


def _records_progress(save: Save) -> bool:
    """A checkpoint dict that records how far training went (`"epoch"`, `"global_step"`,
    `"iteration"`): only a resume reads that back. The weights with what rebuilds the
    model (`{"hparams": params, "weights": vae.state_dict()}`) are an export for the next
    script, like a bare `model.state_dict()`."""
    return any(_PROGRESS_KEY.search(key) for key in save.keys)


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
            keys = _literal_keys(op.node)
            if keys is None:
                return None
            states = frozenset(
                source.removesuffix(".state_dict")
                for source in op.sources
                if source.endswith(".state_dict")
            )
            return replace(save, states=states, keys=keys, literal=True)
    return None


def _literal_keys(node: cst.CSTNode) -> frozenset[str] | None:
    """The keys of a checkpoint dict built by `state = {...}` or `state = dict(k=...)`,
    else None (the payload is computed some other way)."""
    if not isinstance(node, cst.Assign):
        return None
    value = node.value
    if isinstance(value, cst.Dict):
        return frozenset(
            key
            for element in value.elements
            if isinstance(element, cst.DictElement)
            and isinstance(element.key, cst.SimpleString)
            and isinstance(key := element.key.evaluated_value, str)
        )
    if isinstance(value, cst.Call) and dotted_name(value.func) == "dict":
        return frozenset(arg.keyword.value for arg in value.args if arg.keyword is not None)
    return None


def _copies_live_weights(load: LoadState) -> bool:
    """`target.load_state_dict(online.state_dict())`: the state comes from a model in memory."""
    return any(
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "state_dict"
        for node in descendants(load.node)
    )


def _resumes(site: Site, sites: list[Site], function: FunctionInfo, facts: ModuleFacts) -> bool:
    """A load that resumes training, as opposed to loading weights for evaluation.

    Either training steps follow it in the same function, or it sits in a helper that
    is handed the optimizer (`resume(model, optimizer, path)`) and still leaves it be.
    Copying a live model's weights (`target_net.load_state_dict(q_net.state_dict())`, a
    DQN target network or an EMA) restores nothing from a file.
    """
    load = site.op
    assert isinstance(load, LoadState)
    if _copies_live_weights(load):
        return False
    if any(isinstance(s.op, Step) and s.loop is not None and s.order > site.order for s in sites):
        return True
    return "resume" in function.name.lower() or any(
        ObjectKind.OPTIMIZER in facts.kinds(f"{function.qualname}:{param}")
        for param in function.params
    )


def _trains_after(site: Site, function: FunctionInfo, facts: ModuleFacts) -> bool:
    """A load in the module body followed by a call of a function of the module that trains
    (`model.load_state_dict(torch.load(path)); train(...)` under `if __name__ ==
    "__main__":`): the run continues from the loaded weights. A load after the training
    (the best weights reloaded for a test) is no resume."""
    if not isinstance(function.node, cst.Module):
        return False
    program = facts.program
    seen = False
    for event in all_events(function.events):
        if not isinstance(event, CallEvent):
            continue
        if event.node is site.op.node:
            seen = True
        elif seen and isinstance(event.node.func, cst.Name):
            callee = program.module_functions.get(event.node.func.value)
            if callee is not None and any(
                isinstance(s.op, Step) and s.loop is not None for s in facts.sites(callee)
            ):
                return True
    return False


def _loads_trained_model(
    target: str, stepped: set[str], function: FunctionInfo, facts: ModuleFacts
) -> bool:
    """Whether a load fills a model that an optimizer of the module trains. A network no
    optimizer updates (a distillation teacher, a frozen reference) is loaded for use, not
    resumed. When no optimizer's parameters are visible, or the load fills a model handed
    to a helper (`resume(model, optimizer, path)`), any model may be the trained one."""
    known = [o for o in stepped if facts.table.updates(o)]
    handed_in = target.split(".")[0] in {f"{function.qualname}:{p}" for p in function.params}
    trains_here = any(o.startswith(f"{function.qualname}:") for o in known)
    if not known or (handed_in and not trains_here):
        return True
    return any(facts.optimizes(o, target) for o in known)


def _scheduler_saved(view: list[Site], facts: ModuleFacts) -> bool:
    """The same iteration saves a scheduler's state (`model.save_pretrained(dir)` next to
    `torch.save(scheduler.state_dict(), ...)`): a checkpoint meant for resuming."""
    return any(
        isinstance(site.op, Save)
        and any(ObjectKind.SCHEDULER in facts.kinds(state) for state in site.op.states)
        for site in view
    )


def _full_checkpoint_elsewhere(
    site: Site, view: list[Site], facts: ModuleFacts, steps: list[Site]
) -> bool:
    """The same iteration also writes a full checkpoint (or one looplint cannot read, other
    than a dict of plain numbers and lists: the run's metric history) where the optimizer
    steps. One written only under the opposite outcome of a condition every one of its
    `steps` sits under (`if using_deepspeed: engine.save_checkpoint(dir)` while
    `optimizer.step()` runs in the `else:`) belongs to another configuration: it saves the
    engine's own optimizer, never this one."""
    for other in view:
        if other is site or not isinstance(other.op, Save):
            continue
        if steps and all(other.exclusive_with(step) for step in steps):
            continue
        full = _written_out(other, view)
        if full is None and not _metrics_only(other.op, facts):
            return True
        if full is not None and _holds_optimizer_state(full, facts):
            return True
    return False


def _metrics_only(save: Save, facts: ModuleFacts) -> bool:
    """A save of a name only ever assigned a dict of constants and empty lists
    (`history = {"train_loss": [], "epoch": [0]}`, appended to as training goes)."""
    values = facts.assignments.values(save.payload) if save.payload is not None else []
    return bool(values) and all(
        isinstance(value, cst.Dict)
        and value.elements
        and not any(
            isinstance(node, (cst.Name, cst.Attribute, cst.Call)) for node in descendants(value)
        )
        for value in values
    )


def _best_weights(site: Site, loop: Loop) -> bool:
    """`if val_acc > best_acc: torch.save(model.state_dict(), "best.pt")`: weights for later use."""
    for guard in site.guards_within(loop):
        test = guard.test
        if (
            isinstance(test, cst.Comparison)
            and not any(
                isinstance(node, cst.BinaryOperation) and isinstance(node.operator, cst.Modulo)
                for node in (test, *descendants(test))
            )
            # `if cfg.GPUS > 1:` compares configuration, not a metric the loop measures
            and not is_loop_invariant(test, loop.node)
        ):
            return True
    return False


def _partial_optimizer_state(facts: ModuleFacts, reported: set[int]) -> Iterator[Violation]:
    """A checkpoint that holds some optimizers' state but not that of another stateful
    optimizer stepped in the same loop over a model it saves (a GAN's `optim_d` saved,
    `optim_g` forgotten): resuming restarts that one optimizer."""
    for function, sites in facts.all_sites():
        views = facts.loop_views(function)
        loops = {id(loop): loop for s in sites if isinstance(s.op, Save) for loop in s.loops}
        for key in loops:
            view = views[key].sites
            saves = [
                (site, full)
                for site in view
                if isinstance(site.op, Save) and (full := _written_out(site, view)) is not None
            ]
            saved = {state for _, full in saves for state in full.states}
            if not any(ObjectKind.OPTIMIZER in facts.kinds(state) for state in saved):
                continue
            stepped = {
                s.op.optimizer
                for s in view
                if isinstance(s.op, Step) and _stateful(facts, s.op.optimizer)
            }
            # `distr_opt` stepped is `opt` saved when a call handed `opt` back wrapped
            originals = facts.table.handed_back.originals
            held = {original for state in saved for original in originals(state)}
            missing = {o for o in stepped if not originals(o) & held}
            for optimizer in sorted(missing):
                for site, full in saves:
                    model = next(
                        (
                            m
                            for m in sorted(full.states, key=lambda s: (len(s), s))
                            if facts.optimizes(optimizer, m)
                        ),
                        None,
                    )
                    if model is None or id(site.op.node) in reported:
                        continue
                    reported.add(id(site.op.node))
                    yield Violation(
                        site.op.node,
                        f"this checkpoint saves `{display_name(model)}.state_dict()` and other "
                        f"optimizers' state but not `{display_name(optimizer)}.state_dict()`, so "
                        "a resumed run restarts that optimizer's momentum and moments; save it too",
                    )
                    break


class CheckpointWithoutOptimizerState(Rule):
    """
    ## What it does
    In a loop that steps a stateful optimizer (Adam-family, RMSprop, Adagrad,
    SGD with momentum, …), reports a periodic `torch.save` whose payload holds
    the model's `state_dict()` but not the optimizer's. Also reports a resume
    that loads the model from a checkpoint written with optimizer state
    (`model.load_state_dict(ckpt["model"])`) but never calls the optimizer's
    `load_state_dict`. Saves include helpers handed a dict of `state_dict()`s
    (`save_checkpoint(path, {...})`) and `model.save_pretrained(dir)`; a
    checkpoint that holds some optimizers' state but not another stateful
    optimizer stepped in the same loop (a GAN's generator optimizer) is reported.
    A file resumes when it loads a model that one of its optimizers trains before
    training it, also under `if __name__ == "__main__":`; loading a teacher is
    no resume.

    Saving final weights after training ends (outside the loop), loading
    pretrained or best weights for evaluation, and plain SGD without momentum
    are not reported; nor are weights-only snapshots (`torch.save(model.state_dict(),
    ...)`, or a dict of the weights and the hyperparameters that rebuild the model) in
    a module that never resumes training from a load (unless the checkpoint records the
    epoch or step, or the same iteration saves the scheduler's state: both mark a
    checkpoint meant for resuming). A full checkpoint written only where the optimizer
    never steps (`if using_deepspeed: engine.save_checkpoint(dir)` while the `else:`
    steps `optimizer`) does not cover the plain path's save; an optimizer handed to a
    wrapping call and stepped as what it returns (`distr_opt` from
    `backend.distribute(optimizer=opt)`) is the same optimizer. A best-metric guard
    (`if acc > best:`) must compare something the loop measures; `if cfg.gpus > 1:`
    is none. A checkpoint written as several files is reported once.

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
        stepped = {
            s.op.optimizer
            for _, sites in facts.all_sites()
            for s in sites
            if isinstance(s.op, Step) and s.loop is not None
        }
        resumes = any(
            not facts.is_optimizer(site.op.target)  # type: ignore[union-attr]
            and not _copies_live_weights(site.op)  # type: ignore[arg-type]
            and _loads_trained_model(site.op.target, stepped, function, facts)  # type: ignore[union-attr]
            and (
                _resumes(site, sites, function, facts)
                or _trains_after(site, function, facts)  # `if __name__ == "__main__":` resume
            )
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
                    if not (resumes or _records_progress(save) or _scheduler_saved(view, facts)):
                        break  # weights (and what rebuilds the model) nobody resumes from
                    optimizers = {
                        s.op.optimizer
                        for s in view
                        if isinstance(s.op, Step) and _stateful(facts, s.op.optimizer)
                    }
                    steps = [
                        s for s in view if isinstance(s.op, Step) and s.op.optimizer in optimizers
                    ]
                    if _full_checkpoint_elsewhere(site, view, facts, steps):
                        break
                    if _best_weights(site, loop) and (full_saves or not resumes):
                        break  # the best weights, beside a resumable checkpoint
                    # Sets have no order: name the most specific state saved (`model.module`
                    # over `model`), so the message is the same on every run.
                    saved = [
                        (o, m)
                        for o in sorted(optimizers, key=str)
                        for m in sorted(save.states, key=lambda s: (-len(str(s)), str(s)))
                        if facts.optimizes(o, m)
                    ]
                    if saved and id(save.node) not in reported:
                        reported.add(id(save.node))
                        reported.add(id(loop))
                        optimizer, model = saved[0]
                        yield Violation(
                            save.node,
                            f"this checkpoint saves `{display_name(model)}.state_dict()` but "
                            f"not `{display_name(optimizer)}.state_dict()`, so a resumed run "
                            "restarts the optimizer's momentum and moments; save both "
                            f"`{display_name(model)}.state_dict()` and "
                            f"`{display_name(optimizer)}.state_dict()` in the checkpoint",
                        )
                        break
        yield from _partial_optimizer_state(facts, reported)
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
            if not _loads_trained_model(load.target, stepped, function, facts):
                continue  # a teacher or reference network, not the model being trained
            key = _loaded_key(load)
            if key is not None and key in full_keys and "optim" not in key.lower():
                yield Violation(
                    load.node,
                    f"`{display_name(load.target)}` is restored from a checkpoint that also holds "
                    "the optimizer's state, which is never loaded: the resumed run restarts the "
                    "optimizer; call the optimizer's `load_state_dict` too",
                )
