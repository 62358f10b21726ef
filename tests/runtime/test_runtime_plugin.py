"""The pytest plugin, run through `pytester`: a watched test with a buggy loop FAILS."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True, scope="module")
def _import_lazily_loaded_modules() -> None:
    """Run one watched step in this process first.

    `pytester` runs pytest in-process (fast) and afterwards forgets modules the
    inner run imported; torch registers operator libraries on import and refuses
    a second registration, so everything is imported here, once, beforehand.
    """
    import torch
    from looplint.runtime_check import watch

    model = torch.nn.Linear(1, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with watch(model, optimizer):
        model(torch.ones(1, 1)).sum().backward()
        optimizer.step()


TRAINING = """
import pytest
import torch
from torch import nn

def train(model, optimizer, clear):
    for _ in range(3):
        if clear:
            optimizer.zero_grad()
        nn.functional.mse_loss(model(torch.randn(4, 3)), torch.randn(4, 1)).backward()
        optimizer.step()

def make():
    model = nn.Linear(3, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.1)
"""


def test_fixture_fails_a_test_whose_loop_is_buggy(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        TRAINING
        + """
def test_buggy(looplint_watch):
    model, optimizer = make()
    with looplint_watch(model, optimizer):
        train(model, optimizer, clear=False)

def test_correct(looplint_watch):
    model, optimizer = make()
    with looplint_watch(model, optimizer):
        train(model, optimizer, clear=True)
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*LL001 missing-zero-grad*", "*`weight`*"])


def test_marker_fails_the_test_not_errors_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        TRAINING
        + """
@pytest.mark.looplint
def test_buggy():
    train(*make(), clear=False)

@pytest.mark.looplint(accumulation_steps=1)
def test_correct():
    train(*make(), clear=True)

@pytest.mark.looplint(mode="warn")
def test_warned():
    train(*make(), clear=False)

def test_unwatched():
    train(*make(), clear=False)
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        ["*LL001 missing-zero-grad*", "*LoopLintRuntimeWarning*", "*FAILED*test_buggy*"]
    )


def test_session_option_watches_every_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        TRAINING
        + """
def test_buggy():
    train(*make(), clear=False)

def test_correct():
    train(*make(), clear=True)
"""
    )
    plain = pytester.runpytest("-p", "no:cacheprovider")
    plain.assert_outcomes(passed=2)
    watched = pytester.runpytest("-p", "no:cacheprovider", "--looplint-runtime")
    watched.assert_outcomes(passed=1, failed=1)
    watched.stdout.fnmatch_lines(["*LL001*"])
