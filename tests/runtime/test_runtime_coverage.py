"""Optimizer coverage (LL003), in both directions."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from looplint.runtime_check import LoopLintRuntimeError, watch  # noqa: E402
from runtime_loops import Net, batches, loss_of, train  # noqa: E402
from torch import nn  # noqa: E402


def test_gan_with_two_optimizers_is_silent() -> None:
    generator = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 4))
    discriminator = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    both = nn.ModuleDict({"generator": generator, "discriminator": discriminator})
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3)
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-3)
    bce = nn.functional.binary_cross_entropy_with_logits
    with watch(both, opt_g, opt_d) as report:
        for _ in range(4):
            real, noise = torch.randn(8, 4), torch.randn(8, 3)
            opt_d.zero_grad()
            fake = generator(noise)
            loss_d = bce(discriminator(real), torch.ones(8, 1)) + bce(
                discriminator(fake.detach()), torch.zeros(8, 1)
            )
            loss_d.backward()
            opt_d.step()
            opt_g.zero_grad()
            bce(discriminator(fake), torch.ones(8, 1)).backward()
            opt_g.step()
    assert report.findings == []


def test_frozen_backbone_with_head_only_optimizer_is_silent() -> None:
    model = Net()
    for param in model.encoder.parameters():
        param.requires_grad_(False)
    optimizer = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    with watch(model, optimizer) as report:
        train(model, optimizer, batches())
    assert report.findings == []


def test_optimizer_over_one_weight_misses_the_rest() -> None:
    model = Net()
    optimizer = torch.optim.SGD([model.fc.weight], lr=0.1)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        train(model, optimizer, batches())
    (finding,) = caught.value.findings
    assert (finding.code, finding.name, finding.check) == (
        "LL003",
        "partial-parameters",
        "uncovered-parameters",
    )
    assert finding.parameters == ("encoder.0.weight", "encoder.0.bias", "fc.bias")
    assert "`encoder.0.bias`" in finding.message


class _Wrapped(nn.Module):
    """A wrapper whose own `named_parameters` drops its prefix, as FSDP's does."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.wrapped_inner = inner
        self.shared = inner.fc  # the same module twice: its tensors are named once

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.wrapped_inner(inputs)  # type: ignore[no-any-return]

    def named_parameters(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        for name, param in super().named_parameters(*args, **kwargs):
            yield name.removeprefix("wrapped_inner."), param


def test_parameters_are_named_as_the_model_names_them() -> None:
    """The names in a finding are `named_parameters()`'s, each tensor once, also for a
    model class that defines its own."""
    plain = nn.Sequential(Net())
    optimizer = torch.optim.SGD([plain[0].fc.weight], lr=0.1)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(plain, optimizer):
        train(plain, optimizer, batches())
    assert caught.value.findings[0].parameters == (
        "0.encoder.0.weight",
        "0.encoder.0.bias",
        "0.fc.bias",
    )
    wrapped = _Wrapped(Net())
    optimizer = torch.optim.SGD([wrapped.wrapped_inner.fc.weight], lr=0.1)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(wrapped, optimizer):
        train(wrapped, optimizer, batches())
    assert caught.value.findings[0].parameters == ("encoder.0.weight", "encoder.0.bias", "fc.bias")


def test_model_recreated_after_optimizer_is_caught() -> None:
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model = Net()  # the optimizer still holds the first model's tensors
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        train(model, optimizer, batches(3))
    checks = {finding.check for finding in caught.value.findings}
    assert checks == {"uncovered-parameters", "orphaned-optimizer"}
    assert all(finding.code == "LL003" for finding in caught.value.findings)


def test_optimizing_an_input_tensor_is_silent() -> None:
    model = Net()
    for param in model.parameters():
        param.requires_grad_(False)
    image = torch.randn(1, 4, requires_grad=True)
    optimizer = torch.optim.Adam([image], lr=0.1)
    with watch(model, optimizer) as report:
        for _ in range(3):
            optimizer.zero_grad()
            (-model(image).sum()).backward()
            optimizer.step()
    assert report.findings == []


def test_param_group_added_later_counts_for_coverage() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.fc.parameters(), lr=0.1)
    with watch(model, optimizer) as report:
        train(model, optimizer, batches(2))
        optimizer.add_param_group({"params": list(model.encoder.parameters()), "lr": 0.01})
        train(model, optimizer, batches(2))
    assert [f.check for f in report.findings] == []


def test_per_layer_optimizers_are_covered_as_a_union() -> None:
    model = Net()
    first = torch.optim.SGD(model.encoder.parameters(), lr=0.1)
    second = torch.optim.Adam(model.fc.parameters(), lr=0.01)
    with watch(model) as report:
        for batch in batches(3):
            first.zero_grad()
            second.zero_grad()
            loss_of(model, batch).backward()
            first.step()
            second.step()
    assert report.findings == []
