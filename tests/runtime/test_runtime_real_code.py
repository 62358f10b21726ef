"""Regression tests from the field report on real training code (runtime-real-code.md).

Each test is the report's reproduction of one problem (C3, F1-F7, M1-M5),
plus the correct or buggy twin that must keep its verdict.
"""

from __future__ import annotations

import copy
import threading
import warnings

import pytest

torch = pytest.importorskip("torch")

from looplint.runtime_check import LoopLintRuntimeError, LoopLintRuntimeWarning, watch  # noqa: E402
from runtime_loops import Net, batches, train  # noqa: E402
from torch import nn  # noqa: E402


def checks(findings: object) -> list[tuple[str, str]]:
    return [(finding.code, finding.check) for finding in findings]  # type: ignore[attr-defined]


# -- C3: lazy modules -----------------------------------------------------------


def test_lazy_module_watched_before_its_first_forward() -> None:
    model = nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.Linear(8, 3))
    optimizer = torch.optim.Adam(model.parameters())
    with watch(model, optimizer) as report:
        for _ in range(4):
            optimizer.zero_grad()
            model(torch.randn(2, 6)).sum().backward()
            optimizer.step()
    assert report.findings == [] and report.steps == 4
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for _ in range(4):
            model(torch.randn(2, 6)).sum().backward()
            optimizer.step()
    assert checks(caught.value.findings) == [("LL001", "stale-gradient")]
    assert "0.weight" in caught.value.findings[0].parameters


# -- F1, F2: gradients written through `.data` ------------------------------------


def test_clearing_through_grad_data_is_not_stale() -> None:
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with watch(model, optimizer) as report:
        for _ in range(5):
            for p in model.parameters():
                if p.grad is not None:
                    p.grad.data.zero_()  # d2l style: clears without moving the version
            model(torch.randn(8, 4)).pow(2).mean().backward()
            optimizer.step()
    assert report.findings == []


def test_missing_clear_is_still_stale_after_the_value_probe() -> None:
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for _ in range(5):
            model(torch.randn(8, 4)).pow(2).mean().backward()
            optimizer.step()
    (finding,) = caught.value.findings
    assert (finding.check, finding.step, finding.occurrences) == ("stale-gradient", 1, 4)


def test_reptile_meta_gradient_written_through_data_is_not_reused() -> None:
    model = nn.Linear(4, 2)
    meta = torch.optim.Adam(model.parameters(), lr=1e-2)
    with watch(model, meta) as report:
        for _ in range(3):
            fast = copy.deepcopy(model)
            inner = torch.optim.SGD(fast.parameters(), lr=0.1)
            for _ in range(2):
                inner.zero_grad()
                fast(torch.randn(8, 4)).pow(2).mean().backward()
                inner.step()
            for p, q in zip(model.parameters(), fast.parameters(), strict=True):
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                p.grad.data.zero_()
                p.grad.data.add_(p.data - q.data)
            meta.step()
    assert report.findings == []


# -- F3: one deliberate rebuild ---------------------------------------------------


def test_two_phase_fine_tuning_is_not_a_rebuild_bug() -> None:
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))

    def run(optimizer: torch.optim.Optimizer) -> None:
        for _ in range(3):
            optimizer.zero_grad()
            model(torch.randn(4, 6)).pow(2).mean().backward()
            optimizer.step()

    with watch(model) as report:
        for p in model[0].parameters():
            p.requires_grad_(False)
        run(torch.optim.Adam(model[2].parameters(), lr=1e-2))
        for p in model.parameters():
            p.requires_grad_(True)
        run(torch.optim.Adam(model.parameters(), lr=1e-4))
    assert report.findings == []


def test_new_optimizer_after_restoring_the_weights_is_a_fresh_start() -> None:
    model = Net()
    start = copy.deepcopy(model.state_dict())
    with watch(model) as report:
        train(model, torch.optim.Adam(model.parameters(), lr=0.01), batches(3))  # a trial run
        model.load_state_dict(start)  # roll back, as Lightning's lr_find does
        train(model, torch.optim.Adam(model.parameters(), lr=0.01), batches(3))
    assert report.findings == []


def test_rebuilding_with_a_new_learning_rate_every_epoch_is_caught_at_the_second() -> None:
    model = Net()
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model):
        for epoch in range(3):
            train(model, torch.optim.Adam(model.parameters(), lr=0.01 / (epoch + 1)), batches(2))
    (finding,) = caught.value.findings
    assert (finding.code, finding.check) == ("LL002", "optimizer-recreated")
    assert finding.optimizer == "Adam #2"


# -- F4: fp32 master weights ------------------------------------------------------


def test_fp32_master_weights_with_assigned_gradients_are_covered() -> None:
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3)).to(torch.bfloat16)
    master = [p.detach().float().clone().requires_grad_() for p in model.parameters()]
    optimizer = torch.optim.Adam(master, lr=1e-2)
    with watch(model, optimizer) as report:
        for _ in range(4):
            model.zero_grad()
            logits = model(torch.randn(4, 6, dtype=torch.bfloat16)).float()
            nn.functional.cross_entropy(logits, torch.randint(0, 3, (4,))).backward()
            for m, p in zip(master, model.parameters(), strict=True):
                m.grad = p.grad.float()
            optimizer.step()
            optimizer.zero_grad()
            with torch.no_grad():
                for m, p in zip(master, model.parameters(), strict=True):
                    p.copy_(m)
    assert report.findings == []


# -- F5: one batch skipped for a non-finite loss -------------------------------------


def test_one_skipped_backward_is_not_ll005_but_every_step_is() -> None:
    model = nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters())
    with watch(model, optimizer) as report:
        for i in range(8):
            optimizer.zero_grad()
            loss = model(torch.randn(8, 4)).pow(2).mean()
            if i == 3:
                loss = loss * float("nan")
            if torch.isfinite(loss):
                loss.backward()
            optimizer.step()
    assert report.findings == []


# -- F6: a step that raised and was caught ----------------------------------------


def test_a_caught_step_error_leaves_the_optimizer_checked() -> None:
    model = nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters())
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 2)
    failures = iter([True])

    def flaky(*_: object) -> None:
        if next(failures, False):
            raise RuntimeError("out of memory")

    optimizer.register_step_pre_hook(flaky)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for _ in range(6):
            model(torch.randn(8, 4)).pow(2).mean().backward()  # no zero_grad: LL001
            try:
                optimizer.step()
            except RuntimeError:
                continue
            scheduler.step()
    assert checks(caught.value.findings) == [("LL001", "stale-gradient")]


def test_a_step_that_raised_consumed_no_gradient() -> None:
    """The loop keeps the gradient of a batch whose step failed for the next step: nothing
    was applied twice, so no stale gradient."""
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    failures = iter([False, True])

    def flaky(*_: object) -> None:
        if next(failures, False):
            raise RuntimeError("out of memory")

    optimizer.register_step_pre_hook(flaky)
    with watch(model, optimizer) as report:
        for _ in range(5):
            model(torch.randn(8, 4)).pow(2).mean().backward()
            try:
                optimizer.step()
            except RuntimeError:
                continue  # the gradient stays for the next step
            optimizer.zero_grad()
    assert report.findings == [] and report.steps == 4


def test_subclass_step_calling_super_is_still_one_step() -> None:
    class Clipped(torch.optim.SGD):
        def step(self, closure=None):  # type: ignore[no-untyped-def]
            return super().step(closure)

    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)  # hooks SGD.step too
    model = Net()
    optimizer = Clipped(model.parameters(), lr=0.1)
    with watch(model, optimizer) as report:
        train(model, optimizer, batches(4))
    assert report.findings == [] and report.steps == 4


# -- F7: other threads ----------------------------------------------------------------


def test_optimizers_stepped_in_other_threads_are_not_reported() -> None:
    def other_job() -> None:
        m = nn.Linear(4, 2)
        o = torch.optim.Adam(m.parameters())
        for _ in range(3):
            m(torch.randn(8, 4)).sum().backward()  # never cleared: that run's own bug
            o.step()

    model = nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters())
    with watch(model, optimizer) as report:
        worker = threading.Thread(target=other_job)
        worker.start()
        worker.join()
        for _ in range(3):
            optimizer.zero_grad()
            model(torch.randn(8, 4)).sum().backward()
            optimizer.step()
    assert report.findings == [] and report.steps == 3
    assert any("other than the one that entered" in line for line in report.unchecked)


# -- M1: CosineAnnealingWarmRestarts ------------------------------------------------------


def test_cosine_warm_restarts_order_is_judged() -> None:
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=3)
    with (
        pytest.raises(LoopLintRuntimeError) as caught,
        warnings.catch_warnings(),
        watch(model, optimizer, schedulers=[scheduler]),
    ):
        warnings.simplefilter("ignore", UserWarning)  # torch's own order warning
        for _ in range(4):
            scheduler.step()
            optimizer.zero_grad()
            model(torch.randn(8, 4)).sum().backward()
            optimizer.step()
            scheduler.step()
    assert checks(caught.value.findings) == [
        ("LL004", "scheduler-before-optimizer"),
        ("LL004", "scheduler-steps-twice"),
    ]


def test_cosine_warm_restarts_after_the_optimizer_is_silent() -> None:
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(optimizer, T_0=3)
    with watch(model, optimizer, schedulers=[scheduler]) as report:
        for i in range(6):
            optimizer.zero_grad()
            model(torch.randn(8, 4)).sum().backward()
            optimizer.step()
            scheduler.step(i / 6)
    assert report.findings == []


# -- M3: in-place clearing between backward and step ---------------------------------


def test_zero_grad_without_set_to_none_before_the_step_is_ll005() -> None:
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for _ in range(4):
            model(torch.randn(8, 4)).pow(2).mean().backward()
            optimizer.zero_grad(set_to_none=False)
            optimizer.step()
    (finding,) = caught.value.findings
    assert (finding.code, finding.check) == ("LL005", "cleared-before-step")
    assert "zeroed in place" in finding.message


def test_clipping_before_the_step_with_a_missing_clear_is_still_ll001() -> None:
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for _ in range(4):
            model(torch.randn(8, 4)).pow(2).mean().backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.01)
            optimizer.step()
    assert checks(caught.value.findings) == [("LL001", "stale-gradient")]


# -- M4: compiled autograd ------------------------------------------------------------


def test_compiled_autograd_is_reported_unchecked() -> None:
    compiled_autograd = pytest.importorskip("torch._dynamo.compiled_autograd")
    model = nn.Linear(4, 2)
    optimizer = torch.optim.Adam(model.parameters())
    try:
        with torch._dynamo.config.patch(compiled_autograd=True):

            @torch.compile(backend="aot_eager")
            def forward_backward(x: torch.Tensor) -> torch.Tensor:
                loss = model(x).pow(2).mean()
                loss.backward()
                return loss

            with watch(model, optimizer) as report:
                for _ in range(3):
                    forward_backward(torch.randn(8, 4))  # LL001 bug: never cleared
                    optimizer.step()
    finally:
        torch._dynamo.reset()
    assert compiled_autograd.in_compiled_autograd_region is False
    assert report.findings == []
    assert any("compiled autograd" in line for line in report.unchecked)
    assert "unchecked: LL001/LL005" in str(report)


# -- M5: no torch.optim optimizer at all ---------------------------------------------------


def test_manual_sgd_without_an_optimizer_is_reported_inactive() -> None:
    model = nn.Linear(4, 2)
    with pytest.warns(LoopLintRuntimeWarning, match="no torch.optim optimizer stepped"):
        with watch(model, mode="warn") as report:
            for _ in range(3):
                model(torch.randn(8, 4)).pow(2).mean().backward()
                for p in model.parameters():
                    p.data.add_(p.grad, alpha=-0.1)
    assert report.findings == []
    assert report.inactive and "manual" in report.inactive[0]


# -- item 4: what was not checked -----------------------------------------------------------


def test_objects_looplint_cannot_follow_are_listed_not_crashed_on() -> None:
    class Bare(torch.optim.Optimizer):
        def __init__(self) -> None:  # never runs Optimizer.__init__, wraps nothing
            self.param_groups = [{"params": [], "lr": 0.1}]

        def step(self, closure=None):  # type: ignore[no-untyped-def]
            return None

    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    bare = Bare()
    scheduler = torch.optim.lr_scheduler.StepLR(bare, 2)
    with watch(model, optimizer, bare, object()) as report:  # type: ignore[arg-type]
        train(model, optimizer, batches(2))
        bare.step()
        scheduler.step()
    assert report.findings == [] and report.steps == 2
    text = "\n".join(report.unchecked)
    assert "`Bare` subclasses torch.optim.Optimizer without running its `__init__`" in text
    assert "`object` passed to watch() is not a torch.optim optimizer" in text
    assert "LL004 is not judged for StepLR #0" in text
    assert len(report.unchecked) == 3


def test_coverage_without_a_model_is_said_plainly() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(None, optimizer) as report:
        train(model, optimizer, batches(2))
    assert report.unchecked == [
        "LL003 coverage (parameters no optimizer updates) is not checked: no model was given "
        "(`watch(model)`, `looplint_watch(model)`) and none was found next to an optimizer "
        "built while the block was open."
    ]
    assert "unchecked: LL003 coverage" in str(report)


def test_scheduler_only_block_is_not_an_order_bug() -> None:
    optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=10.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: min(1.0, (k + 1) / 5))
    with warnings.catch_warnings(), watch() as report:
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(10):
            schedule.step()
    assert report.findings == []
    assert any("never stepped in the block" in line for line in report.unchecked)


def test_a_failure_inside_looplint_never_reaches_training() -> None:
    class Shapeless(torch.Tensor):
        """A state tensor that fails when asked for its number of dimensions."""

        def dim(self) -> int:
            raise RuntimeError("no dimensions here")

    class Custom(torch.optim.SGD):
        def step(self, closure=None):  # type: ignore[no-untyped-def]
            loss = super().step(closure)
            for group in self.param_groups:
                for p in group["params"]:
                    self.state[p]["exp_avg"] = torch.zeros(3).as_subclass(Shapeless)
            return loss

    model = Net()
    optimizer = Custom(model.parameters(), lr=0.1)
    with watch(model, optimizer) as report:
        train(model, optimizer, batches(2))
        optimizer.load_state_dict(optimizer.state_dict())  # looplint's load hook fails
        train(model, optimizer, batches(2))
    assert report.findings == []
    (line,) = report.unchecked
    assert line.startswith("checking of `Custom` stopped after an internal looplint error")


def test_a_failure_inside_a_step_hook_never_reaches_training() -> None:
    class TensorState(torch.optim.SGD):
        """Keeps a bare tensor as each parameter's state: looplint's `bool()` of it raises."""

        def step(self, closure=None):  # type: ignore[no-untyped-def]
            loss = super().step(closure)
            for group in self.param_groups:
                for p in group["params"]:
                    self.state[p] = torch.zeros(3)
            return loss

    model = Net()
    twin = copy.deepcopy(model)
    data = batches(3)
    optimizer = TensorState(model.parameters(), lr=0.1)
    with watch(model, optimizer) as report:
        train(model, optimizer, data)
    train(twin, TensorState(twin.parameters(), lr=0.1), data)
    assert report.findings == []
    (line,) = report.unchecked
    assert line.startswith("checking of `TensorState` stopped after an internal looplint error")
    for (name, watched), plain in zip(
        model.state_dict().items(), twin.state_dict().values(), strict=True
    ):
        assert torch.equal(watched, plain), name
