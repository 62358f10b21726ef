"""Stale gradients (LL001) and gradients cleared before use (LL005), in both directions."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from looplint.runtime_check import LoopLintRuntimeError, LoopLintRuntimeWarning, watch  # noqa: E402
from runtime_loops import Net, batches, loss_of, train  # noqa: E402


def codes(report: object) -> list[str]:
    return [finding.code for finding in report.findings]  # type: ignore[attr-defined]


def test_correct_loop_is_silent() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with watch(model, optimizer) as report:
        train(model, optimizer, batches())
    assert report.findings == []


def test_missing_zero_grad_is_caught_with_parameter_names() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for batch in batches():
            loss_of(model, batch).backward()
            optimizer.step()
    (finding,) = caught.value.findings
    assert (finding.code, finding.name, finding.check) == (
        "LL001",
        "missing-zero-grad",
        "stale-gradient",
    )
    assert "encoder.0.weight" in finding.parameters and "fc.bias" in finding.parameters
    assert finding.optimizer == "SGD #0 (optimizer)"
    assert finding.step == 1
    assert "LL001" in str(caught.value)


@pytest.mark.parametrize("implementation", ["foreach", "fused", "for-loop"])
def test_missing_zero_grad_caught_for_every_implementation(implementation: str) -> None:
    model = Net()
    options = {"foreach": implementation == "foreach", "fused": implementation == "fused"}
    if implementation == "for-loop":
        options = {"foreach": False}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, **options)
    with pytest.warns(LoopLintRuntimeWarning), watch(model, optimizer, mode="warn") as report:
        for batch in batches(3):
            loss_of(model, batch).backward()
            optimizer.step()
    assert codes(report) == ["LL001"]
    with watch(model, optimizer) as report:
        train(model, optimizer, batches(3))
    assert report.findings == []


def test_accumulation_of_four_is_silent() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer, accumulation_steps=4) as report:
        for index, batch in enumerate(batches(8)):
            (loss_of(model, batch) / 4).backward()
            if (index + 1) % 4 == 0:
                optimizer.step()
                optimizer.zero_grad()
    assert report.findings == []


def test_clearing_each_micro_batch_breaks_declared_accumulation() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with (
        pytest.raises(LoopLintRuntimeError) as caught,
        watch(model, optimizer, accumulation_steps=4),
    ):
        for index, batch in enumerate(batches(8)):
            optimizer.zero_grad()
            (loss_of(model, batch) / 4).backward()
            if (index + 1) % 4 == 0:
                optimizer.step()
    (finding,) = caught.value.findings
    assert (finding.code, finding.check) == ("LL001", "accumulation-broken")
    assert "accumulation_steps=4" in finding.message


@pytest.mark.parametrize(
    "clear",
    ["model.zero_grad", "set_to_none=False", "p.grad = None"],
)
def test_every_way_of_clearing_is_recognised(clear: str) -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def clear_gradients() -> None:
        if clear == "model.zero_grad":
            model.zero_grad()
        elif clear == "set_to_none=False":
            optimizer.zero_grad(set_to_none=False)
        else:
            for param in model.parameters():
                param.grad = None

    with watch(model, optimizer) as report:
        train(model, optimizer, batches(), clear=clear_gradients)
    assert report.findings == []


def test_zero_grad_after_step_is_silent() -> None:
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    with watch(model, optimizer) as report:
        for batch in batches():
            loss_of(model, batch).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)
    assert report.findings == []


def test_stepping_twice_on_one_gradient_is_caught() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(LoopLintRuntimeWarning), watch(model, optimizer, mode="warn") as report:
        for batch in batches(3):
            optimizer.zero_grad()
            loss_of(model, batch).backward()
            optimizer.step()
            optimizer.step()
    assert [(f.code, f.check) for f in report.findings] == [("LL001", "gradient-reused")]


def test_lbfgs_with_closure_is_silent_and_a_missing_clear_is_caught() -> None:
    model = Net()
    optimizer = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=3)
    data = batches(3)

    def run(clear: bool) -> None:
        for batch in data:

            def closure(batch: tuple[torch.Tensor, torch.Tensor] = batch) -> torch.Tensor:
                if clear:
                    optimizer.zero_grad()
                loss = loss_of(model, batch)
                loss.backward()
                return loss

            optimizer.step(closure)

    with watch(model, optimizer) as report:
        run(clear=True)
    assert report.findings == []
    with pytest.warns(LoopLintRuntimeWarning), watch(model, optimizer, mode="warn") as report:
        run(clear=False)
    assert codes(report) == ["LL001"]


def test_zero_grad_between_backward_and_step_is_caught() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(LoopLintRuntimeError) as caught, watch(model, optimizer):
        for batch in batches(3):
            loss_of(model, batch).backward()
            optimizer.zero_grad()
            optimizer.step()
    assert [(f.code, f.name) for f in caught.value.findings] == [
        ("LL005", "gradients-cleared-before-step")
    ]


def test_step_before_backward_is_caught() -> None:
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.warns(LoopLintRuntimeWarning), watch(model, optimizer, mode="warn") as report:
        for batch in batches(3):
            optimizer.zero_grad()
            optimizer.step()
            loss_of(model, batch).backward()
    assert codes(report) == ["LL005"]


def test_optimizer_subclass_calling_super_step_is_counted_once() -> None:
    class MyAdam(torch.optim.Adam):
        def step(self, closure=None):  # type: ignore[no-untyped-def, override]
            return super().step(closure)

    torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # hook Adam.step as well
    model = Net()
    optimizer = MyAdam(model.parameters(), lr=0.01)
    with watch(model, optimizer) as report:
        train(model, optimizer, batches())
    assert report.findings == []
    assert report.steps == 6
