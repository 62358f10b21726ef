"""Real training stacks under `watch`: accelerate, `transformers.Trainer`, timm.

Each library is imported for real (tiny models, CPU, seconds) and skipped when
the `test-integrations` extra is not installed.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from looplint.runtime_check import watch  # noqa: E402
from third_party import import_library, quiet_trainer  # noqa: E402


def same_tensors(left: torch.nn.Module, right: torch.nn.Module) -> bool:
    return all(
        torch.equal(a, b)
        for a, b in zip(left.state_dict().values(), right.state_dict().values(), strict=True)
    )


def accelerate_loop(clear: bool, watched: bool) -> tuple[torch.nn.Module, Any]:
    accelerate = import_library("accelerate")
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    model, optimizer = accelerate.Accelerator(cpu=True).prepare(
        model, torch.optim.AdamW(model.parameters())
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (step + 1))

    def run() -> None:
        for _ in range(4):
            if clear:
                optimizer.zero_grad()
            model(torch.randn(8, 4)).pow(2).mean().backward()
            optimizer.step()
            scheduler.step()

    if not watched:
        run()
        return model, None
    with watch(model, optimizer, mode="warn") as report:
        run()
    return model, report


def test_accelerate_prepared_optimizer_is_unwrapped() -> None:
    plain, _ = accelerate_loop(clear=True, watched=False)
    model, report = accelerate_loop(clear=True, watched=True)
    assert report.findings == [] and report.unchecked == []
    assert report.steps == 4
    assert same_tensors(plain, model)


def test_accelerate_missing_zero_grad_is_found_on_the_inner_optimizer() -> None:
    with pytest.warns(UserWarning):
        _, report = accelerate_loop(clear=False, watched=True)
    assert [(f.code, f.check) for f in report.findings] == [("LL001", "stale-gradient")]
    assert report.findings[0].optimizer == "AdamW #0 (optimizer)"


def gpt2_trainer(output_dir: str) -> tuple[Any, torch.nn.Module]:
    transformers = import_library("transformers")
    torch.manual_seed(0)
    ids = torch.randint(0, 50, (16, 8))

    class Data(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
        def __len__(self) -> int:
            return len(ids)

        def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
            return {"input_ids": ids[index], "labels": ids[index]}

    config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    args = transformers.TrainingArguments(
        output_dir=output_dir,
        max_steps=4,
        per_device_train_batch_size=4,
        report_to=[],
        save_strategy="no",
        use_cpu=True,
        seed=0,
        data_seed=0,
    )
    return transformers.Trainer(model=model, args=args, train_dataset=Data()), model


def test_transformers_trainer_default_optimizer_is_followed() -> None:
    with tempfile.TemporaryDirectory() as output_dir:
        trainer, plain_model = gpt2_trainer(output_dir)
        initial = copy.deepcopy(plain_model.state_dict())
        trainer.train()
        trainer, model = gpt2_trainer(output_dir)
        model.load_state_dict(initial)
        with watch(model, mode="warn") as report:
            trainer.train()
    assert report.findings == [], str(report)
    assert report.unchecked == []
    assert report.steps == 4
    assert same_tensors(plain_model, model)


def test_timm_lookahead_is_unwrapped_to_its_base_optimizer() -> None:
    timm_optim = import_library("timm.optim")

    def run(clear: bool) -> Any:
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 2)
        optimizer = timm_optim.create_optimizer_v2(model, opt="lookahead_adamw", lr=1e-3)
        with watch(model, mode="warn") as report:
            optimizer.zero_grad()  # torch's zero_grad hooks Lookahead.step itself
            for _ in range(4):
                if clear:
                    optimizer.zero_grad()
                model(torch.randn(8, 4)).pow(2).mean().backward()
                optimizer.step()
        return report

    clean = run(clear=True)
    assert clean.findings == [] and clean.unchecked == [] and clean.steps == 4
    with pytest.warns(UserWarning):
        buggy = run(clear=False)
    assert [(f.code, f.check) for f in buggy.findings] == [("LL001", "stale-gradient")]


def test_lightning_lr_find_then_fit_is_not_a_rebuild_bug(tmp_path: Path) -> None:
    L = import_library("lightning")
    tuner = import_library("lightning.pytorch.tuner")

    class Lit(L.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Linear(6, 3)
            self.lr = 1e-2

        def training_step(self, batch: list[torch.Tensor], index: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.cross_entropy(self.net(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.Adam(self.parameters(), lr=self.lr)

    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(torch.randn(64, 6), torch.randint(0, 3, (64,))),
        batch_size=4,
    )
    model = Lit()
    trainer = quiet_trainer(L, default_root_dir=tmp_path)
    with watch(model, mode="warn") as report:
        # lr_find trains a few steps, then restores the weights it started from.
        tuner.Tuner(trainer).lr_find(model, train_dataloaders=data, num_training=10)
        trainer.fit(model, data)
    assert report.findings == [], str(report)
    assert report.steps == 26
