"""`looplint.integrations.lightning.LoopLint` with a real Lightning `Trainer` (CPU, tiny model)."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from third_party import import_library, quiet_trainer  # noqa: E402

L = import_library("lightning")

from looplint.integrations.lightning import LoopLint  # noqa: E402
from looplint.runtime_check import LoopLintRuntimeError, LoopLintRuntimeWarning  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

BATCHES = 8


class Classifier(L.LightningModule):  # type: ignore[misc]
    """A three-class MLP; the options inject the bugs the tests look for."""

    def __init__(
        self,
        *,
        manual: bool = False,
        clear: bool = True,
        last_layer_only: bool = False,
        clear_in_step: bool = False,
        fail_at: int | None = None,
    ) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
        self.automatic_optimization = not manual
        self.clear = clear
        self.last_layer_only = last_layer_only
        self.clear_in_step = clear_in_step
        self.fail_at = fail_at
        self.lr = 1e-2

    def training_step(self, batch: Any, index: int) -> Any:
        if index == self.fail_at:
            raise ValueError("data error")
        x, y = batch
        loss = nn.functional.cross_entropy(self.net(x), y)
        if self.automatic_optimization:
            if self.clear_in_step:
                self.optimizers().zero_grad()  # clears every micro-batch
            return loss
        optimizer = self.optimizers()
        if self.clear:
            optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        return None

    def configure_optimizers(self) -> Any:
        params = self.net[2].parameters() if self.last_layer_only else self.parameters()
        return torch.optim.Adam(params, lr=self.lr)


def data() -> DataLoader[Any]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(4 * BATCHES, 6, generator=generator)
    y = torch.randint(0, 3, (4 * BATCHES,), generator=generator)
    return DataLoader(TensorDataset(x, y), batch_size=4)


def trainer(*callbacks: Any, **options: Any) -> Any:
    return quiet_trainer(L, *callbacks, **options)


def fit(model: Classifier, *callbacks: Any, **options: Any) -> Classifier:
    trainer(*callbacks, **options).fit(model, data())
    return model


def hook_count() -> int:
    """The global optimizer step hooks installed now (looplint's are removed after a run)."""
    optim = importlib.import_module("torch.optim.optimizer")
    return len(optim._global_optimizer_pre_hooks) + len(optim._global_optimizer_post_hooks)


@pytest.fixture(autouse=True)
def _quiet_lightning() -> Iterator[None]:
    """Lightning warns about worker counts and log intervals; looplint's warnings stay visible."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="lightning")
        warnings.filterwarnings("ignore", category=UserWarning, message=".*(worker|log_every).*")
        warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
        yield


@pytest.mark.parametrize("manual", [False, True], ids=["automatic", "manual"])
def test_correct_fit_is_silent_and_trains_bit_identically(manual: bool) -> None:
    torch.manual_seed(0)
    plain = fit(Classifier(manual=manual))
    torch.manual_seed(0)
    callback = LoopLint()
    watched = fit(Classifier(manual=manual), callback)
    assert callback.report is not None
    assert callback.report.findings == []
    assert callback.report.unchecked == []
    assert callback.report.steps == BATCHES
    for (name, a), (_, b) in zip(
        plain.state_dict().items(), watched.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert hook_count() == 0


def test_optimizer_missing_a_layer_fails_fit_with_ll003() -> None:
    with pytest.raises(LoopLintRuntimeError, match="LL003") as caught:
        fit(Classifier(last_layer_only=True), LoopLint())
    assert "net.0.weight" in str(caught.value)
    assert hook_count() == 0


def test_manual_optimization_without_zero_grad_warns_ll001() -> None:
    callback = LoopLint(mode="warn")
    with pytest.warns(LoopLintRuntimeWarning, match="LL001"):
        fit(Classifier(manual=True, clear=False), callback)
    assert callback.report is not None
    assert [(f.code, f.check) for f in callback.report.findings] == [("LL001", "stale-gradient")]
    assert "net.0.weight" in callback.report.findings[0].parameters
    assert "(optimizer)" in str(callback.report.findings[0])


def test_a_failed_fit_removes_the_hooks_and_notes_the_findings() -> None:
    with pytest.raises(ValueError, match="data error") as caught:
        fit(Classifier(manual=True, clear=False, fail_at=5), LoopLint())
    assert "LL001" in "\n".join(getattr(caught.value, "__notes__", []))
    assert hook_count() == 0


def test_accumulation_is_taken_from_the_trainer() -> None:
    callback = LoopLint(mode="warn")
    with pytest.warns(LoopLintRuntimeWarning, match="accumulation_steps=4"):
        fit(Classifier(clear_in_step=True), callback, accumulate_grad_batches=4)
    assert callback.report is not None
    assert [(f.code, f.check) for f in callback.report.findings] == [
        ("LL001", "accumulation-broken")
    ]


def test_correct_accumulation_is_silent() -> None:
    callback = LoopLint()
    fit(Classifier(), callback, accumulate_grad_batches=4)
    assert callback.report is not None
    assert callback.report.findings == []
    assert callback.report.steps == BATCHES // 4


def test_resuming_from_a_checkpoint_is_silent(tmp_path: Any) -> None:
    run = trainer()
    run.fit(Classifier(), data())
    run.save_checkpoint(tmp_path / "last.ckpt")
    callback = LoopLint()
    resumed = trainer(callback, max_epochs=2)
    resumed.fit(Classifier(), data(), ckpt_path=tmp_path / "last.ckpt")
    assert callback.report is not None
    assert callback.report.findings == []
    assert callback.report.steps == BATCHES


def test_fit_twice_is_not_a_rebuilt_optimizer() -> None:
    model = Classifier()
    callback = LoopLint()
    fit(model, callback)
    fit(model, callback)  # a new Trainer: `configure_optimizers` builds a fresh Adam
    assert callback.report is not None
    assert callback.report.findings == []
    assert callback.report.steps == BATCHES


def test_lr_find_then_fit_is_not_a_rebuilt_optimizer() -> None:
    from lightning.pytorch.tuner import Tuner

    model = Classifier()
    callback = LoopLint()
    run = trainer(callback)
    Tuner(run).lr_find(model, train_dataloaders=data(), num_training=6, early_stop_threshold=None)
    assert hook_count() == 0
    run.fit(model, data())
    assert callback.report is not None
    assert callback.report.findings == []


def test_pytorch_lightning_package_name_has_its_own_callback() -> None:
    pl = import_library("pytorch_lightning")
    from looplint.integrations.pytorch_lightning import LoopLint as PlLoopLint

    class PlClassifier(pl.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))

        def training_step(self, batch: Any, index: int) -> Any:
            x, y = batch
            return nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.Adam(self.net[2].parameters(), lr=1e-2)

    run = quiet_trainer(pl, PlLoopLint())
    with pytest.raises(LoopLintRuntimeError, match="LL003"):
        run.fit(PlClassifier(), data())


def test_bad_options_fail_when_the_callback_is_built() -> None:
    with pytest.raises(ValueError, match="mode"):
        LoopLint(mode="loud")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="accumulation_steps"):
        LoopLint(accumulation_steps=0)
