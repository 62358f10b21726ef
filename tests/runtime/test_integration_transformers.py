"""`looplint.integrations.transformers.LoopLintCallback` with a real `transformers.Trainer`.

A two-layer GPT-2 with a 50-token vocabulary trains for a few steps on CPU.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from third_party import import_library  # noqa: E402

transformers = import_library("transformers")
import_library("accelerate")

from looplint.integrations.transformers import LoopLintCallback  # noqa: E402
from looplint.runtime_check import LoopLintRuntimeError, LoopLintRuntimeWarning  # noqa: E402

SEQUENCES = 16
BATCH = 4


class Tokens(torch.utils.data.Dataset):  # type: ignore[misc]
    """Fixed random token sequences, labelled with themselves (language modelling)."""

    def __init__(self) -> None:
        self.ids = torch.randint(0, 50, (SEQUENCES, 8), generator=torch.Generator().manual_seed(3))

    def __len__(self) -> int:
        return SEQUENCES

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"input_ids": self.ids[index], "labels": self.ids[index]}


class ClearEveryMicroBatch(transformers.TrainerCallback):  # type: ignore[misc]
    """An injected bug: clears the gradients after every micro-batch of an accumulation."""

    def on_substep_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        kwargs["model"].zero_grad()


def tiny_gpt2() -> Any:
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=2, n_head=2)
    return transformers.GPT2LMHeadModel(config)


def arguments(output: Path, **options: Any) -> Any:
    settings: dict[str, Any] = {
        "output_dir": str(output),
        "max_steps": 4,
        "per_device_train_batch_size": BATCH,
        "report_to": [],
        "save_strategy": "no",
        "logging_strategy": "no",
        "disable_tqdm": True,
        "use_cpu": True,
        "seed": 0,
    }
    settings.update(options)
    return transformers.TrainingArguments(**settings)


def own_optimizer(model: Any, *, last_blocks_only: bool = False) -> tuple[Any, Any]:
    """AdamW with the usual decay/no-decay groups and a warm-up schedule."""
    params = model.transformer.h.parameters() if last_blocks_only else model.parameters()
    optimizer = torch.optim.AdamW(params, lr=1e-3)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 2))
    return optimizer, schedule


def train(output: Path, *callbacks: Any, own: bool = True, bug: str = "", **options: Any) -> Any:
    model = tiny_gpt2()
    if bug == "no_zero_grad":
        model.zero_grad = lambda set_to_none=True: None
    optimizers = own_optimizer(model, last_blocks_only=bug == "partial") if own else (None, None)
    trainer = transformers.Trainer(
        model=model,
        args=arguments(output, **options),
        train_dataset=Tokens(),
        optimizers=optimizers,
        callbacks=list(callbacks),
    )
    trainer.train()
    return model


def hook_count() -> int:
    optim = importlib.import_module("torch.optim.optimizer")
    return len(optim._global_optimizer_pre_hooks) + len(optim._global_optimizer_post_hooks)


@pytest.fixture(autouse=True)
def _quiet_transformers() -> Iterator[None]:
    transformers.logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module="(transformers|accelerate)")
        yield


@pytest.mark.parametrize("own", [True, False], ids=["own-optimizer", "default-optimizer"])
def test_correct_training_is_silent_and_bit_identical(tmp_path: Path, own: bool) -> None:
    plain = train(tmp_path / "plain", own=own)
    callback = LoopLintCallback()
    try:
        watched = train(tmp_path / "watched", callback, own=own)
    finally:
        callback.close()  # a crash inside train() must not leave hooks for the next tests
    assert callback.report is not None
    assert callback.report.findings == []
    assert callback.report.unchecked == []
    assert callback.report.steps == 4
    for (name, a), (_, b) in zip(
        plain.state_dict().items(), watched.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    assert hook_count() == 0


def test_optimizer_missing_the_embeddings_fails_train_with_ll003(tmp_path: Path) -> None:
    with pytest.raises(LoopLintRuntimeError, match="LL003") as caught:
        train(tmp_path, LoopLintCallback(), bug="partial")
    assert "transformer.wte.weight" in str(caught.value)
    assert hook_count() == 0


def test_gradients_never_cleared_warn_ll001(tmp_path: Path) -> None:
    callback = LoopLintCallback(mode="warn")
    with pytest.warns(LoopLintRuntimeWarning, match="LL001"):
        train(tmp_path, callback, bug="no_zero_grad")
    assert callback.report is not None
    assert [(f.code, f.check) for f in callback.report.findings] == [("LL001", "stale-gradient")]
    assert "(trainer.optimizer)" in str(callback.report.findings[0])


def test_accumulation_is_taken_from_the_training_arguments(tmp_path: Path) -> None:
    callback = LoopLintCallback(mode="warn")
    with pytest.warns(LoopLintRuntimeWarning, match="accumulation_steps=2"):
        train(tmp_path, callback, ClearEveryMicroBatch(), gradient_accumulation_steps=2)
    assert callback.report is not None
    assert [(f.code, f.check) for f in callback.report.findings] == [
        ("LL001", "accumulation-broken")
    ]


def test_correct_accumulation_is_silent(tmp_path: Path) -> None:
    callback = LoopLintCallback()
    train(tmp_path, callback, gradient_accumulation_steps=2)
    assert callback.report is not None
    assert callback.report.findings == []
    assert callback.report.steps == 4


def test_close_removes_the_hooks_a_failed_train_left(tmp_path: Path) -> None:
    class Explode(transformers.TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            raise ValueError("data error")

    callback = LoopLintCallback()
    with pytest.raises(ValueError, match="data error"):
        train(tmp_path, callback, Explode())
    assert hook_count() == 2  # the Trainer has no failure event
    callback.close()
    assert hook_count() == 0
