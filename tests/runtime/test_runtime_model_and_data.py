"""The runtime counterparts of LL011/LL021 (eval mode), LL013 (accumulation scale),
LL015 (`set_epoch`), LL016 (clipping) and LL017 (unregistered submodules), each with
a correct twin that must stay silent, on real torch models, optimizers and samplers."""

from __future__ import annotations

import sys
from typing import Any

import pytest

torch = pytest.importorskip("torch")

from looplint.runtime_check import LoopLintRuntimeError, watch  # noqa: E402
from runtime_loops import Net, batches, loss_of, train  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402
from torch.utils.data.distributed import DistributedSampler  # noqa: E402


class DropoutNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.2))
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


class Pretrained(DropoutNet):
    """Shaped like a Hugging Face model: a `config` and a `from_pretrained` that returns
    the model in eval mode, as `PreTrainedModel.from_pretrained` does."""

    def __init__(self) -> None:
        super().__init__()
        self.config = {"hidden": 8}

    @classmethod
    def from_pretrained(cls) -> Pretrained:
        return cls().eval()


def _codes(error: pytest.ExceptionInfo[LoopLintRuntimeError]) -> list[tuple[str, str]]:
    return [(finding.code, finding.check) for finding in error.value.findings]


def _epochs(model: nn.Module, optimizer: torch.optim.Optimizer, evaluate_after: bool) -> None:
    for _ in range(2):
        for batch in batches(3):
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            model(batches(1)[0][0])
        if evaluate_after:
            model.train()


def test_training_on_after_validation_in_eval_mode_is_ll011() -> None:
    model = DropoutNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        _epochs(model, optimizer, evaluate_after=False)
    assert _codes(caught) == [("LL011", "eval-mode-step")]
    message = caught.value.findings[0].message
    assert "`DropoutNet` (DropoutNet) is in eval mode" in message and "`body.2`" in message
    assert caught.value.findings[0].file == __file__


def test_train_restored_after_validation_and_frozen_batch_norm_are_silent() -> None:
    model = DropoutNet()
    model.body[1].eval()  # batch statistics frozen on purpose while fine-tuning
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer) as report:
        for batch in batches(3):
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
        _epochs(model, optimizer, evaluate_after=True)
    assert report.findings == []


def test_a_pretrained_model_trained_as_it_came_is_ll021() -> None:
    with pytest.raises(LoopLintRuntimeError) as caught, watch():
        model = Pretrained.from_pretrained()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        for batch in batches(2):
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
    assert _codes(caught) == [("LL021", "pretrained-model-in-eval-mode")]
    assert "came from `from_pretrained`" in caught.value.findings[0].message


def test_a_frozen_pretrained_backbone_in_eval_mode_is_silent() -> None:
    backbone = Pretrained.from_pretrained().requires_grad_(False)
    head = nn.Linear(2, 2)
    optimizer = torch.optim.SGD(head.parameters(), lr=0.1)
    with watch(head, optimizer) as report:
        for x, y in batches(3):
            optimizer.zero_grad()
            nn.functional.mse_loss(head(backbone(x)), y).backward()
            optimizer.step()
    assert report.findings == []


class ListNet(nn.Module):
    def __init__(self, registered: bool) -> None:
        super().__init__()
        self.stem = nn.Linear(4, 8)
        if registered:
            self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(2))
            self.in_order = list(self.blocks)  # a plain alias of registered modules: fine
            self.frozen = [nn.Linear(8, 8).requires_grad_(False)]  # hidden on purpose: fine
        else:
            self.blocks = [nn.Linear(8, 8) for _ in range(2)]  # type: ignore[assignment]
        self.head = nn.Linear(8, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def test_modules_in_a_plain_list_are_ll017_once_at_watch_start() -> None:
    model = ListNet(registered=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for batch in batches(2):
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
    assert _codes(caught) == [("LL017", "unregistered-submodules")]
    finding = caught.value.findings[0]
    assert "`ListNet.blocks` keeps modules in a plain `list`" in finding.message
    assert "4 parameter tensor(s)" in finding.message and "nn.ModuleList" in finding.message
    assert finding.file == __file__ and finding.line == ListNet.__init__.__code__.co_firstlineno


def test_a_module_list_an_alias_of_it_and_a_hidden_frozen_module_are_silent() -> None:
    model = ListNet(registered=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer) as report:
        for batch in batches(2):
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
    assert report.findings == []


def test_clipping_after_the_step_is_ll016_at_the_clip_line() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for batch in batches(3):
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
            clip_line = sys._getframe().f_lineno + 1
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    assert _codes(caught) == [("LL016", "clipping-without-effect")]
    finding = caught.value.findings[0]
    assert (finding.file, finding.line, finding.occurrences) == (__file__, clip_line, 3)


def test_clipping_before_backward_is_ll016_and_between_backward_and_step_is_silent() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for batch in batches(3):
            optimizer.zero_grad()
            nn.utils.clip_grad_norm_(model.parameters(), 0.5)
            loss_of(model, batch).backward()
            optimizer.step()
    assert _codes(caught) == [("LL016", "clipping-without-effect")]
    assert "before the backward pass" in caught.value.findings[0].message
    with watch(model, optimizer) as report:
        for batch in batches(3):
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            nn.utils.clip_grad_value_(model.parameters(), 0.5)
            optimizer.step()
            nn.utils.clip_grad_norm_(model.parameters(), float("inf"))  # a norm for logging
    assert report.findings == []


class ClippingSGD(torch.optim.SGD):
    """An optimizer that clips the gradients it is about to use, inside its own step."""

    def step(self, closure: Any = None) -> Any:
        for group in self.param_groups:
            nn.utils.clip_grad_norm_(group["params"], 0.5)
        return super().step(closure)


def test_an_optimizer_clipping_inside_its_own_step_is_silent() -> None:
    model = Net()
    optimizer = ClippingSGD(model.parameters(), lr=0.1)
    with watch(model, optimizer) as report:
        train(model, optimizer, batches(3))
    assert report.findings == []
    assert report.steps == 3


def _sampled_epochs(set_epoch: bool, peek: bool) -> None:
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    dataset = TensorDataset(torch.randn(16, 4), torch.randn(16, 2))
    sampler = DistributedSampler(dataset, num_replicas=2, rank=0, shuffle=True)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler)
    if peek:
        next(iter(loader))  # a look at one batch before training is no epoch
    for epoch in range(3):
        if set_epoch:
            sampler.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()


def test_a_distributed_sampler_without_set_epoch_is_ll015() -> None:
    with pytest.raises(LoopLintRuntimeError) as caught, watch():
        _sampled_epochs(set_epoch=False, peek=True)
    assert _codes(caught) == [("LL015", "set-epoch-never-called")]
    finding = caught.value.findings[0]
    assert finding.occurrences == 2 and "`epoch=0` again" in finding.message


def test_a_distributed_sampler_with_set_epoch_is_silent() -> None:
    with watch() as report:
        _sampled_epochs(set_epoch=True, peek=True)
    assert report.findings == []


def _accumulate(model: nn.Module, divide: bool, micro_batches: int = 8) -> None:
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for index, batch in enumerate(batches(micro_batches)):
        loss = loss_of(model, batch)
        if divide:
            loss = loss / 4
        loss.backward()
        if (index + 1) % 4 == 0:
            optimizer.step()
            optimizer.zero_grad()


def test_accumulation_without_dividing_the_loss_is_ll013() -> None:
    model = Net()
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model):
        _accumulate(model, divide=False)
    assert _codes(caught) == [("LL013", "accumulated-loss-not-scaled")]
    finding = caught.value.findings[0]
    assert "once every 4 backward passes (2 times)" in finding.message
    assert finding.file == __file__


def test_accumulation_after_a_first_single_pass_step_is_still_ll013() -> None:
    """`if index % 4 == 0: step()` steps after the first micro-batch, then every four:
    one single-pass window does not make the loop a non-accumulating one."""
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for index, batch in enumerate(batches(9)):
            loss_of(model, batch).backward()
            if index % 4 == 0:
                optimizer.step()
                optimizer.zero_grad()
    assert _codes(caught) == [("LL013", "accumulated-loss-not-scaled")]


def test_divided_accumulation_and_two_losses_per_step_are_silent() -> None:
    model = Net()
    with watch(model) as report:
        _accumulate(model, divide=True)
    assert report.findings == [] and report.unchecked == []
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer) as report:
        for first, second in zip(batches(3), batches(3), strict=True):
            optimizer.zero_grad()
            loss_of(model, first).backward()  # two domains, two lines: a sum on purpose
            loss_of(model, second).backward()
            optimizer.step()
    assert report.findings == []


def test_two_single_pass_steps_end_the_per_step_cost_of_ll013() -> None:
    """A loop whose first two steps each consumed one backward pass does not
    accumulate: from then on backward passes and steps are no longer reported to
    LL013 (its documented limit: accumulation that starts later is not judged)."""
    from looplint.runtime_check import scoped_patches

    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer) as report:
        train(model, optimizer, batches(1))
        assert scoped_patches._hearing, "still listening after one step"
        train(model, optimizer, batches(1))
        assert scoped_patches._hearing == ()
        optimizer.zero_grad()
        for index, batch in enumerate(batches(8)):
            loss_of(model, batch).backward()
            if (index + 1) % 4 == 0:
                optimizer.step()
                optimizer.zero_grad()
    assert report.findings == [] and report.unchecked == []


def test_backward_is_torchs_own_again_once_no_block_listens() -> None:
    """Once LL013 has settled, `loss.backward()` runs torch's own functions (no wrapper
    frame per call); a block opened later wraps `torch.autograd.backward` again for its
    own first steps, leaving every block leaves torch as it was, and `torch.Tensor`
    itself is never touched (changing a class invalidates the interpreter's caches for
    every tensor)."""
    from looplint.runtime_check import scoped_patches

    original = torch.autograd.backward
    tensor_backward = torch.Tensor.__dict__["backward"]
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer) as outer:
        assert torch.autograd.backward is not original
        train(model, optimizer, batches(2))
        assert torch.autograd.backward is original
        with watch(model, optimizer) as inner:
            assert torch.autograd.backward is not original
            train(model, optimizer, batches(2))
            assert torch.autograd.backward is original
        assert scoped_patches.is_patched()  # the outer block's other wrappers stay
        model.zero_grad()
        for index, batch in enumerate(batches(4)):  # not heard: LL013 settled
            loss_of(model, batch).backward()
            if index % 2:
                optimizer.step()
                optimizer.zero_grad()
        assert torch.Tensor.__dict__["backward"] is tensor_backward
    assert torch.autograd.backward is original and not scoped_patches.is_patched()
    assert outer.findings == [] and inner.findings == []


def test_accumulation_through_torch_autograd_backward_is_ll013() -> None:
    """Backward passes started with `torch.autograd.backward(loss)` count like
    `loss.backward()`, with the caller's own line; several losses handed over together
    are a sum, whose scaling is listed as open rather than guessed."""
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for index, batch in enumerate(batches(8)):
            torch.autograd.backward(loss_of(model, batch))
            if (index + 1) % 4 == 0:
                optimizer.step()
                optimizer.zero_grad()
    assert _codes(caught) == [("LL013", "accumulated-loss-not-scaled")]
    assert caught.value.findings[0].file == __file__
    with watch(model, optimizer) as report:
        for index, (first, second) in enumerate(zip(batches(8), batches(8), strict=True)):
            torch.autograd.backward([loss_of(model, first), loss_of(model, second)])
            if (index + 1) % 4 == 0:
                optimizer.step()
                optimizer.zero_grad()
    assert report.findings == []
    assert any("several tensors" in line for line in report.unchecked), report.unchecked


def test_accumulation_whose_scaling_cannot_be_read_is_listed_unchecked() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer) as report:
        for index, batch in enumerate(batches(8)):
            (loss_of(model, batch) * 0.25).backward()  # a product: scaling or weighting
            if (index + 1) % 4 == 0:
                optimizer.step()
                optimizer.zero_grad()
    assert report.findings == []
    assert any("LL013 accumulation scaling is not judged" in line for line in report.unchecked)
