"""Steps with a closure (Lightning's automatic optimization, LBFGS) are judged after the closure."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")

from looplint.runtime_check import LoopLintRuntimeError, Report, watch  # noqa: E402
from runtime_loops import Net, batches, loss_of  # noqa: E402
from third_party import import_library, quiet_trainer  # noqa: E402


def closure_for(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, ...],
    *,
    clear_before: bool = True,
    clear_after: bool = False,
    scale: int = 1,
) -> Callable[[], torch.Tensor]:
    def closure() -> torch.Tensor:
        if clear_before:
            optimizer.zero_grad()
        loss = loss_of(model, batch) / scale  # type: ignore[arg-type]
        loss.backward()
        if clear_after:
            optimizer.zero_grad()
        return loss

    return closure


def test_closure_clearing_every_micro_batch_breaks_declared_accumulation() -> None:
    model = Net()
    optimizer = torch.optim.Adam(model.parameters())
    with (
        pytest.raises(LoopLintRuntimeError) as caught,
        watch(model, optimizer, accumulation_steps=4),
    ):
        for index, batch in enumerate(batches(8)):
            closure = closure_for(model, optimizer, batch)
            if (index + 1) % 4 == 0:
                step_line = sys._getframe().f_lineno + 1
                optimizer.step(closure)  # how Lightning's automatic optimization steps
            else:
                closure()
    (finding,) = caught.value.findings
    assert (finding.code, finding.check) == ("LL001", "accumulation-broken")
    assert finding.file == __file__ and finding.line == step_line


def test_closure_accumulating_four_micro_batches_is_silent() -> None:
    model = Net()
    optimizer = torch.optim.Adam(model.parameters())
    with watch(model, optimizer, accumulation_steps=4) as report:
        for index, batch in enumerate(batches(8)):
            closure = closure_for(model, optimizer, batch, clear_before=index % 4 == 0, scale=4)
            if (index + 1) % 4 == 0:
                optimizer.step(closure=closure)
            else:
                closure()
    assert report.findings == [] and report.unchecked == []


def test_closure_clearing_after_backward_is_ll005() -> None:
    model = Net()
    optimizer = torch.optim.Adam(model.parameters())
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for batch in batches(4):
            optimizer.step(closure_for(model, optimizer, batch, clear_after=True))
    assert [(f.code, f.check) for f in caught.value.findings] == [("LL005", "cleared-before-step")]


def test_lbfgs_accumulation_is_reported_unchecked_not_judged() -> None:
    model = Net()
    optimizer = torch.optim.LBFGS(model.parameters(), max_iter=3)
    with watch(model, optimizer, accumulation_steps=2) as report:
        for batch in batches(3):
            optimizer.step(closure_for(model, optimizer, batch))
    assert report.findings == []
    (line,) = report.unchecked
    assert "accumulation-broken is not judged" in line and "LBFGS #0" in line
    assert "unchecked: LL001 accumulation-broken" in str(report)


def lightning_fit(module_cls: type, accumulate: int, **watch_options: object) -> Report:
    """Fit a tiny LightningModule for one epoch of 8 batches under `watch`."""
    L = import_library("lightning")

    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(32, 6), torch.randint(0, 3, (32,))),
        batch_size=4,
    )
    model = module_cls()
    trainer = quiet_trainer(L, accumulate_grad_batches=accumulate)
    with watch(model, mode="warn", **watch_options) as report:  # type: ignore[arg-type]
        trainer.fit(model, data)
    return report


def lit_module(clear_in: str) -> type:
    """A LightningModule with automatic optimization that clears gradients in `clear_in`."""
    L = import_library("lightning")

    class Lit(L.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(6, 3)

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            if clear_in == "training_step":
                self.optimizers().zero_grad()
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
            if clear_in == "on_before_optimizer_step":
                optimizer.zero_grad()

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    return Lit


def test_lightning_automatic_optimization_correct_run_is_silent() -> None:
    report = lightning_fit(lit_module("nowhere"), accumulate=4, accumulation_steps=4)
    assert report.findings == [] and report.unchecked == []
    assert report.steps == 2


def test_lightning_clearing_before_the_step_is_ll005() -> None:
    with pytest.warns(UserWarning, match="LL005"):
        report = lightning_fit(lit_module("on_before_optimizer_step"), accumulate=1)
    assert [(f.code, f.check) for f in report.findings] == [("LL005", "cleared-before-step")]


def test_lightning_clearing_in_training_step_breaks_accumulation() -> None:
    with pytest.warns(UserWarning, match="accumulation-broken"):
        report = lightning_fit(lit_module("training_step"), accumulate=4, accumulation_steps=4)
    assert [(f.code, f.check) for f in report.findings] == [("LL001", "accumulation-broken")]
