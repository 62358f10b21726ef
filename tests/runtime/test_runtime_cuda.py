"""CUDA-only guarantees: no device synchronisation, and CUDA-graph capture is reported.

These tests skip cleanly without a GPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest

torch = pytest.importorskip("torch")

from looplint.runtime_check import LoopLintRuntimeWarning, watch  # noqa: E402
from torch import nn  # noqa: E402

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def cuda_model() -> nn.Module:
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 1)).cuda()


def count_syncs(body: Callable[[], None]) -> int:
    """Synchronisations `body` performs, as reported by torch's sync debug mode."""
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            body()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


@needs_cuda
@pytest.mark.parametrize("optimizer_name", ["SGD", "Adam"])
def test_watched_loop_never_synchronises(optimizer_name: str) -> None:
    model = cuda_model()
    optimizer = getattr(torch.optim, optimizer_name)(model.parameters(), lr=0.01)
    data = [(torch.randn(8, 16, device="cuda"), torch.randn(8, 1, device="cuda")) for _ in range(5)]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with watch(model, optimizer) as report:
            for x, y in data:
                optimizer.zero_grad()
                nn.functional.mse_loss(model(x), y).backward()
                optimizer.step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert report.findings == []


@needs_cuda
def test_grad_scaler_and_lbfgs_synchronise_no_more_when_watched() -> None:
    data = [(torch.randn(8, 16, device="cuda"), torch.randn(8, 1, device="cuda")) for _ in range(4)]

    def scaler_loop() -> None:
        model = cuda_model()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        scaler = torch.amp.GradScaler("cuda")
        for x, y in data:
            optimizer.zero_grad()
            scaler.scale(nn.functional.mse_loss(model(x), y)).backward()
            scaler.step(optimizer)
            scaler.update()

    def lbfgs_loop() -> None:
        model = cuda_model()
        optimizer = torch.optim.LBFGS(model.parameters(), max_iter=2)
        for x, y in data:

            def closure(x: torch.Tensor = x, y: torch.Tensor = y) -> torch.Tensor:
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(model(x), y)
                loss.backward()
                return loss

            optimizer.step(closure)

    for loop in (scaler_loop, lbfgs_loop):
        loop()  # warm up lazy initialisation outside the count
        unwatched = count_syncs(loop)

        def watched(loop: Callable[[], None] = loop) -> None:
            with watch(mode="warn"):
                loop()

        assert count_syncs(watched) == unwatched


@needs_cuda
def test_cuda_graph_capture_is_reported_as_inactive() -> None:
    model = cuda_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01, capturable=True)
    x = torch.randn(8, 16, device="cuda")
    y = torch.randn(8, 1, device="cuda")

    def step() -> None:
        optimizer.zero_grad(set_to_none=False)
        nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()

    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(3):
            step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with (
        pytest.warns(LoopLintRuntimeWarning, match="CUDA-graph"),
        watch(model, optimizer, mode="warn") as report,
    ):
        with torch.cuda.graph(graph):
            step()
        for _ in range(3):
            graph.replay()
    assert report.inactive and "CUDA-graph capture" in report.inactive[0]


@needs_cuda
def test_optimizer_in_backward_on_the_autograd_device_thread_is_checked() -> None:
    """On CUDA, backward hooks run in autograd's device thread, not the block's thread."""
    model = cuda_model()
    optimizers = {p: torch.optim.Adam([p], lr=0.01) for p in model.parameters()}

    def step_in_backward(param: torch.Tensor) -> None:
        optimizers[param].step()
        optimizers[param].zero_grad()

    handles = [p.register_post_accumulate_grad_hook(step_in_backward) for p in model.parameters()]
    try:
        with watch(model) as report:
            for _ in range(4):
                nn.functional.mse_loss(
                    model(torch.randn(8, 16, device="cuda")), torch.randn(8, 1, device="cuda")
                ).backward()
    finally:
        for handle in handles:
            handle.remove()
    assert report.steps == 16
    assert report.findings == [] and report.unchecked == []
