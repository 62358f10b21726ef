"""The shared analysis layer, tested directly: what it recognises and how it follows calls."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from looplint.analysis.catalog import ObjectKind
from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import Backward, Clear, Construct, Escape, SchedulerStep, Step
from looplint.analysis.program import compile_module


def facts_of(source: str) -> ModuleFacts:
    return ModuleFacts(compile_module(cst.parse_module(textwrap.dedent(source))))


def ops(facts: ModuleFacts, function: str = "<module>") -> list[object]:
    (info,) = [f for f in facts.program.functions if f.qualname == function]
    return [site.op for site in facts.sites(info)]


@pytest.mark.parametrize(
    "imports, constructor",
    [
        ("import torch", "torch.optim.AdamW"),
        ("import torch.optim as optim", "optim.AdamW"),
        ("from torch import optim", "optim.AdamW"),
        ("from torch.optim import AdamW as W", "W"),
        ("from transformers import AdamW", "AdamW"),
        ("import bitsandbytes as bnb", "bnb.optim.AdamW8bit"),
        ("from timm.optim import create_optimizer_v2", "create_optimizer_v2"),
    ],
)
def test_optimizers_are_recognised_through_import_aliases(imports: str, constructor: str) -> None:
    facts = facts_of(f"{imports}\nopt = {constructor}(model.parameters())\n")
    assert facts.kinds("<module>:opt") == {ObjectKind.OPTIMIZER}


def test_unimported_or_shadowed_names_are_not_optimizers() -> None:
    facts = facts_of(
        "def Adam(x):\n    return x\nopt = Adam(model.parameters())\nenv = make_env()\n"
    )
    assert facts.kinds("<module>:opt") == set()


def test_schedulers_scalers_factories_annotations_and_usage() -> None:
    facts = facts_of(
        """
        import torch
        from torch.optim import Optimizer
        from torch.optim.lr_scheduler import OneCycleLR

        def build_optimizer(model):
            return torch.optim.SGD(model.parameters(), lr=0.1)

        opt = build_optimizer(net)
        sched = OneCycleLR(opt, max_lr=1.0, total_steps=10)
        scaler = torch.amp.GradScaler()

        def annotated(o: Optimizer):
            pass

        def used(o, s):
            o.step()
            o.zero_grad()
            s.step()

        class Trainer:
            def __init__(self, model):
                self.optimizer = build_optimizer(model)
        """
    )
    assert facts.kinds("<module>:opt") == {ObjectKind.OPTIMIZER}
    assert facts.kinds("<module>:sched") == {ObjectKind.SCHEDULER}
    info = facts.scheduler_info("<module>:sched")
    assert info is not None and info.optimizer == "<module>:opt"
    assert facts.kinds("<module>:scaler") == {ObjectKind.SCALER}
    assert facts.kinds("annotated:o") == {ObjectKind.OPTIMIZER}
    assert facts.kinds("used:o") == {ObjectKind.OPTIMIZER}
    assert (
        facts.kinds("used:s") == set()
    )  # `.step()` alone is not an optimizer (env, profiler, sampler)
    assert facts.kinds("Trainer.self.optimizer") == {ObjectKind.OPTIMIZER}


def test_steps_clears_and_non_optimizer_steps() -> None:
    facts = facts_of(
        """
        import torch
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.StepLR(opt, 1)
        scaler = torch.cuda.amp.GradScaler()
        for batch in loader:
            env.step(action)
            prof.step()
            scaler.scale(loss).backward()
            scaler.step(opt)
            opt.step()
            sched.step()
            model.zero_grad()
            opt.zero_grad(set_to_none=True)
            for p in model.parameters():
                p.grad = None
            log_optimizer(opt)
        """
    )
    found = [op for op in ops(facts) if not isinstance(op, Construct)]
    kinds = [type(op).__name__ for op in found if not type(op).__name__ == "Assign"]
    assert kinds == [
        "ScalerCall",  # scaler.scale(loss)
        "Backward",
        "Step",
        "Step",
        "SchedulerStep",
        "Clear",
        "Clear",
        "Clear",
        "Escape",
    ]
    (backward,) = [op for op in found if isinstance(op, Backward)]
    assert backward.scaled and backward.tensor == "<module>:loss"
    steps = [op for op in found if isinstance(op, Step)]
    assert [s.via_scaler for s in steps] == [True, False]
    clears = [op for op in found if isinstance(op, Clear)]
    assert [c.optimizer for c in clears] == [None, "<module>:opt", None]
    assert isinstance(found[-1], Escape)


def test_calls_in_loops_are_inlined_with_arguments_bound() -> None:
    facts = facts_of(
        """
        import torch

        def train_step(model, batch, optimizer):
            model(batch).sum().backward()
            optimizer.step()

        class Trainer:
            def fit(self, loader):
                for batch in loader:
                    self._step(batch)

            def _step(self, batch):
                self.opt.zero_grad()

        def main():
            opt = torch.optim.Adam(net.parameters())
            for batch in loader:
                train_step(net, batch, opt)
        """
    )
    inlined = ops(facts, "main")
    assert any(isinstance(op, Backward) for op in inlined)
    (step,) = [op for op in inlined if isinstance(op, Step)]
    assert step.optimizer == "main:opt"
    assert any(isinstance(op, Clear) for op in ops(facts, "Trainer.fit"))


def test_closures_run_inside_the_step_and_recursion_terminates() -> None:
    facts = facts_of(
        """
        import torch
        opt = torch.optim.LBFGS(model.parameters())

        def closure():
            opt.zero_grad()
            loss = model(x).sum()
            loss.backward()
            return loss

        def recurse(n):
            recurse(n - 1)

        for _ in range(10):
            opt.step(closure)
            recurse(3)
        """
    )
    (step,) = [op for op in ops(facts) if isinstance(op, Step)]
    assert [type(op).__name__ for op in step.closure] == ["Clear", "Assign", "Backward"]


def test_scheduler_step_is_never_an_optimizer_step() -> None:
    facts = facts_of(
        "import torch\nopt = torch.optim.SGD(p)\n"
        "s = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)\n"
        "for e in range(3):\n    s.step(val)\n"
    )
    (op,) = [op for op in ops(facts) if isinstance(op, (Step, SchedulerStep))]
    assert isinstance(op, SchedulerStep) and op.has_metric


def test_renamings_are_aliases_and_results_are_not() -> None:
    facts = facts_of(
        """
        import torch

        def train(model, ddp):
            raw_model = model.module if ddp else model
            out = model(x)
            optimizer = torch.optim.AdamW(raw_model.parameters())
        """
    )
    aliases = facts.assignments.aliases("train:raw_model")
    assert aliases == {"train:raw_model", "train:model.module", "train:model"}
    assert facts.assignments.aliases("train:out") == {"train:out"}
    # the optimizer built over the alias updates the model under its own name
    assert facts.optimizes("train:optimizer", "train:model", whole=True)
    assert not facts.optimizes("train:optimizer", "train:out")


def test_attributes_stored_from_parameters_are_handed_in() -> None:
    facts = facts_of(
        """
        class Solver:
            def __init__(self, model, optimizer):
                self.model = model
                self.optimizer = optimizer
                self.loss = make_loss()
        """
    )
    assert facts.assignments.handed_in("Solver.self.optimizer")
    assert facts.assignments.handed_in("Solver.self.model")
    assert not facts.assignments.handed_in("Solver.self.loss")


def test_a_deepspeed_engine_steps_and_clears_the_model_it_wraps() -> None:
    facts = facts_of(
        """
        import deepspeed

        engine, optimizer, _, _ = deepspeed.initialize(model=net, model_parameters=params)
        for batch in loader:
            loss = engine(batch)
            engine.backward(loss)
            engine.step()
        """
    )
    found = ops(facts)
    assert [type(op) for op in found[-3:]] == [Backward, Step, Clear]
    backward = found[-3]
    assert isinstance(backward, Backward) and backward.tensor == "<module>:loss"
    assert facts.optimizes("<module>:engine", "<module>:net", whole=True)
    assert facts.optimizes("<module>:engine", "<module>:engine", whole=True)


def test_an_optimizer_handed_to_a_wrapping_call_comes_back_the_same() -> None:
    facts = facts_of(
        """
        import torch

        optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
        net_d, opt_d, loader_d = launcher.wrap(model=net, optimizer=optimizer, data=ds)
        stats, report = summarize(model=net, optimizer=optimizer)
        for x in loader_d:
            opt_d.zero_grad()
            net_d(x).sum().backward()
            opt_d.step()
            report.step()
        """
    )
    # the one result stepped as an optimizer is the Adam handed in: its construction,
    # what it updates, and one object under two names
    info = facts.table.info("<module>:opt_d", ObjectKind.OPTIMIZER)
    assert info is not None and info.qualified == "torch.optim.Adam"
    assert "handed to `launcher.wrap(...)`" in info.evidence
    assert facts.optimizes("<module>:opt_d", "<module>:net")
    originals = facts.table.handed_back.originals("<module>:opt_d")
    assert originals == {"<module>:opt_d", "<module>:optimizer"}
    # results never used as an optimizer are not made into one
    assert not facts.kinds("<module>:net_d") and not facts.kinds("<module>:loader_d")
    assert not facts.kinds("<module>:report") and not facts.kinds("<module>:stats")


def test_two_stepped_results_of_a_call_are_not_guessed_apart() -> None:
    facts = facts_of(
        """
        import torch

        optimizer = torch.optim.Adam(net.parameters())
        opt_a, opt_b = split(optimizer=optimizer)
        for x in loader:
            for opt in (opt_a, opt_b):
                pass
            opt_a.zero_grad(); opt_b.zero_grad()
            net(x).sum().backward()
            opt_a.step(); opt_b.step()
        """
    )
    for name in ("opt_a", "opt_b"):
        info = facts.table.info(f"<module>:{name}", ObjectKind.OPTIMIZER)
        assert info is not None and info.qualified == "<used as optimizer>"
        assert facts.table.handed_back.originals(f"<module>:{name}") == {f"<module>:{name}"}


def test_a_constant_renames_nothing() -> None:
    facts = facts_of(
        """
        scheduler = None
        vae_params = None
        raw = model.module if ddp else None
        """
    )
    assert facts.assignments.aliases("<module>:scheduler") == {"<module>:scheduler"}
    assert facts.assignments.aliases("<module>:raw") == {"<module>:raw", "<module>:model.module"}


def test_ignite_handlers_and_the_engines_that_train() -> None:
    facts = facts_of(
        """
        from ignite.engine import Engine, Events

        def update(engine, batch):
            optimizer.step()

        trainer = Engine(update)
        evaluator = Engine(lambda e, b: None)

        @trainer.on(Events.ITERATION_STARTED(every=10))
        def before(engine):
            scheduler.step()

        trainer.add_event_handler(Events.EPOCH_STARTED(once=1), lambda _: scheduler.step())
        trainer.on(Events.ITERATION_COMPLETED)(before)
        """
    )
    attached = [(h.event, h.once, h.function is not None) for h in facts.handlers]
    assert sorted(attached) == [
        ("EPOCH_STARTED", True, False),
        ("ITERATION_COMPLETED", False, True),
        ("ITERATION_STARTED", False, True),
    ]
    engines = facts.training_engines
    assert set(engines) == {"<module>:trainer"}
    update = engines["<module>:trainer"].update
    assert update is not None and update.name == "update"
