"""pytest plugin: the `looplint_watch` fixture, the `looplint` marker and `--looplint-runtime`.

Registered through the `pytest11` entry point, so it loads in every pytest run
where looplint is installed; it therefore imports torch only when a test asks to
be watched (pytest keeps working without the `runtime` extra). Findings are
judged in a `pytest_runtest_call` wrapper rather than in fixture teardown, so a
test whose training loop is wrong is reported as FAILED (with the findings),
not as an ERROR. Works with pytest >= 7.4 and pluggy >= 1.0 (pluggy 1.0 has no
`force_exception`; the wrapper then raises the error itself, with the same result).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest

from .errors import LoopLintRuntimeError, LoopLintRuntimeWarning

_MARKER_HELP = (
    "looplint(mode='raise', accumulation_steps=None): check the training loops this test "
    "runs with looplint's runtime checks; findings fail the test."
)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add `--looplint-runtime` (watch every test) and `--looplint-runtime-mode`."""
    group = parser.getgroup("looplint", "looplint runtime checks of training loops")
    group.addoption(
        "--looplint-runtime",
        action="store_true",
        default=False,
        help="watch every test's optimizers with looplint's runtime checks (needs torch).",
    )
    group.addoption(
        "--looplint-runtime-mode",
        choices=("raise", "warn"),
        default="raise",
        help="what a finding does to a watched test: fail it (raise) or warn (default: raise).",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the `looplint` marker so `--strict-markers` accepts it."""
    config.addinivalue_line("markers", _MARKER_HELP)


@pytest.fixture
def looplint_watch() -> Callable[..., Any]:
    """The `looplint.runtime_check.watch` context manager, for use inside a test.

    ```python
    def test_training(looplint_watch):
        model = Net()
        with looplint_watch(model):
            train(model, loader)
    ```
    Skips the test when torch is not installed.
    """
    pytest.importorskip("torch")
    from .session import watch

    return watch


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, None]:
    """Watch the test body when it is marked or `--looplint-runtime` is on."""
    __tracebackhide__ = True
    marker = item.get_closest_marker("looplint")
    if marker is None and not item.config.getoption("looplint_runtime"):
        yield
        return
    try:
        from .session import Watch
    except ImportError:  # torch missing: nothing to watch
        yield
        return
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    options.setdefault("mode", item.config.getoption("looplint_runtime_mode"))
    # The session-wide watch leaves to a test's own `looplint_watch` block what that
    # block already reported (a test may expect looplint's error on purpose).
    watcher = Watch(None, (), defer_to_inner=marker is None, **options)
    watcher.__enter__()
    outcome = yield
    try:
        watcher.__exit__(None, None, None)
        _say_what_went_unchecked(item, watcher.report)
    except LoopLintRuntimeError as error:
        test_error = outcome.excinfo[1] if outcome.excinfo is not None else None
        if test_error is None:
            if not hasattr(outcome, "force_exception"):  # pluggy < 1.1
                raise
            outcome.force_exception(error)
        elif not isinstance(test_error, LoopLintRuntimeError) and hasattr(test_error, "add_note"):
            test_error.add_note(str(error))


def _say_what_went_unchecked(item: pytest.Item, report: Any) -> None:
    """Warn (in pytest's summary, at the test) when a test trained but coverage went unjudged.

    A green test is otherwise read as "the optimizer covers the model"; when no
    model was found next to the optimizer, nobody looked.
    """
    from .conclusion import NO_MODEL

    if report.steps and NO_MODEL in report.unchecked:
        item.warn(LoopLintRuntimeWarning(NO_MODEL))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, Any, None]:
    """Start the failure's one-line summary with the rule codes (`pytest -rf`).

    pytest's short summary shows the first line of the error after its full
    class path, which leaves no room for the codes on an ordinary terminal.
    """
    outcome = yield
    error = call.excinfo.value if call.excinfo is not None else None
    if not isinstance(error, LoopLintRuntimeError):
        return
    crash = getattr(outcome.get_result().longrepr, "reprcrash", None)
    if crash is not None and hasattr(crash, "message"):
        crash.message = str(error).splitlines()[0]
