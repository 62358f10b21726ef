"""The pytest plugin, run through `pytester`: a watched test with a buggy loop FAILS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_session_mode_leaves_scheduler_tests_and_expected_errors_alone(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        test_p="""
import pytest, torch
from looplint.runtime_check import LoopLintRuntimeError

def test_schedule_values():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=10.0)
    s = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: min(1.0, (k + 1) / 5))
    lrs = []
    for _ in range(10):
        lrs.append(s.get_last_lr()[0]); s.step()
    assert lrs[0] == 2.0 and lrs[-1] == 10.0

def test_expected_bug(looplint_watch):
    m = torch.nn.Linear(4, 2); opt = torch.optim.Adam(m.parameters())
    with pytest.raises(LoopLintRuntimeError):
        with looplint_watch(m, opt):
            for _ in range(3):
                m(torch.randn(8, 4)).sum().backward(); opt.step()

def test_real_bug():
    m = torch.nn.Linear(4, 2); opt = torch.optim.Adam(m.parameters())
    for _ in range(3):
        m(torch.randn(8, 4)).sum().backward(); opt.step()
"""
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "--looplint-runtime", "-W", "ignore")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["FAILED test_p.py::test_real_bug - LL001 missing-zero-grad*"])


def test_failure_names_codes_the_users_line_and_what_was_not_checked(
    pytester: pytest.Pytester,
) -> None:
    path = pytester.makepyfile(
        test_p=TRAINING
        + """
@pytest.mark.looplint
def test_buggy():
    model, optimizer = make()
    for _ in range(3):
        nn.functional.mse_loss(model(torch.randn(4, 3)), torch.randn(4, 1)).backward()
        optimizer.step()  # the offending call
"""
    )
    line = path.read_text().splitlines().index("        optimizer.step()  # the offending call") + 1
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*test_p.py:{line}: LL001 missing-zero-grad (stale-gradient)*",
            "FAILED test_p.py::test_buggy - LL001 missing-zero-grad: looplint found 1*",
        ]
    )


def test_warn_mode_warning_points_at_the_users_line(pytester: pytest.Pytester) -> None:
    path = pytester.makepyfile(
        test_w=TRAINING
        + """
@pytest.mark.looplint(mode="warn")
def test_warned():
    model, optimizer = make()
    for _ in range(3):
        nn.functional.mse_loss(model(torch.randn(4, 3)), torch.randn(4, 1)).backward()
        optimizer.step()  # the offending call
"""
    )
    line = path.read_text().splitlines().index("        optimizer.step()  # the offending call") + 1
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [f"*/test_w.py:{line}: LoopLintRuntimeWarning: test_w.py:{line}: LL001*"]
    )


def test_plugin_fails_the_test_with_pytest_7_4_and_pluggy_1_0(tmp_path: Path) -> None:
    """pluggy 1.0 (allowed by pytest 7.4) has no `force_exception` (field report C4)."""
    target = tmp_path / "old-pytest"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--no-warn-script-location",
            "--target",
            str(target),
            "pytest==7.4.4",
            "pluggy==1.0.0",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    if install.returncode != 0:
        pytest.skip(f"cannot install pytest 7.4.4 / pluggy 1.0.0: {install.stderr[-300:]}")
    test_file = tmp_path / "test_old.py"
    test_file.write_text(
        TRAINING
        + """
def test_buggy():
    train(*make(), clear=False)

def test_correct():
    train(*make(), clear=True)
"""
    )
    environment = {**os.environ, "PYTHONPATH": str(target)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--looplint-runtime",
            "-rf",
            str(test_file),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=environment,
        timeout=300,
    )
    assert "pytest-7.4.4, pluggy-1.0.0" in result.stdout
    assert "1 failed, 1 passed" in result.stdout, result.stdout[-2000:]
    assert "AttributeError" not in result.stdout
    assert "FAILED test_old.py::test_buggy - LL001 missing-zero-grad" in result.stdout


HALF_MODEL = """
import pytest
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(3, 4)
        self.head = nn.Linear(4, 1)

    def forward(self, x):
        return self.head(self.body(x))

def train(model, optimizer):
    for _ in range(2):
        optimizer.zero_grad()
        nn.functional.mse_loss(model(torch.randn(4, 3)), torch.randn(4, 1)).backward()
        optimizer.step()

@pytest.fixture
def prebuilt():
    model = Net()
    return model, torch.optim.SGD(model.head.parameters(), lr=0.1)

@pytest.mark.looplint
def test_half_of_the_model():
    model = Net()
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)  # half the model
    train(model, optimizer)

@pytest.mark.looplint
def test_built_before_the_test(prebuilt):
    train(*prebuilt)
"""


def test_marker_finds_the_model_of_a_half_model_optimizer_or_says_it_could_not(
    pytester: pytest.Pytester,
) -> None:
    path = pytester.makepyfile(HALF_MODEL)
    line = (
        path.read_text()
        .splitlines()
        .index("    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)  # half the model")
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-rf")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            f"*{path.name}:{line + 1}: LL003 partial-parameters (uncovered-parameters)*"
            f"`SGD #0` (built at {path.name}:{line + 1})*",
            "*parameters: `body.weight`, `body.bias`*",
            "*warnings summary*",
            "*test_built_before_the_test*",
            "*LoopLintRuntimeWarning: LL003 coverage*is not checked: no model was given*",
        ]
    )
