"""`looplint run`: an unmodified training script, run under the runtime checks.

The script runs in this process as `python SCRIPT ARGS` (or `python -m MODULE
ARGS`) would run it: `sys.argv`, `sys.path[0]` and `__name__ == "__main__"` as
Python sets them. One `watch` block is open around it, without a model:
optimizers are found as they are built (`Optimizer.__init__`, scoped to the
run), the model as the module next to them that holds their parameters,
schedulers when they step.

`--steps N` stops the script right after its N-th optimizer step with
`StepLimitReached`, a `BaseException` so that a script's own `except Exception`
does not swallow it; the weights are updated by that step and then left alone.
`--mode raise` stops at the first step that brings a finding. Exit codes
follow the linter's: 0 clean, 1 findings, 2 a script that could not start (or
that failed on its own, with no finding to explain).
"""

from __future__ import annotations

import importlib.util
import os
import runpy
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .delivery import Mode
from .errors import LoopLintRuntimeError


class StepLimitReached(BaseException):
    """Raised from an optimizer step post-hook to end the script after its last wanted step."""


_NAMESPACES: list[dict[str, Any]] = []
"""The globals of every script run here, kept until the interpreter exits as `python`
keeps `__main__`'s. Freed as soon as the script returns, its objects would be torn
down in the middle of this process: a `DistributedDataParallel` model deleted after
`destroy_process_group()` can hang its rank there (torch's gloo teardown)."""


@dataclass(frozen=True, slots=True)
class Target:
    """What to run: a script path or a module name, and its arguments."""

    name: str
    arguments: tuple[str, ...]
    is_module: bool

    def problem(self) -> str | None:
        """Why the target cannot start (missing, unreadable, not Python), or `None`."""
        if self.is_module:
            try:
                spec = importlib.util.find_spec(self.name)
            except (ImportError, ValueError) as error:
                return f"module `{self.name}` cannot be imported: {error}"
            return None if spec is not None else f"no module named `{self.name}`"
        path = Path(self.name)
        try:
            source = path.read_bytes()
        except OSError as error:
            return f"cannot read {self.name}: {error.strerror or error}"
        try:
            compile(source, str(path), "exec")
        except (SyntaxError, ValueError) as error:
            return f"{self.name} is not valid Python: {error}"
        return None

    def run(self) -> None:
        """Run it as `python` would, as `__main__`."""
        if self.is_module:
            sys.argv = [self.name, *self.arguments]
            _NAMESPACES.append(runpy.run_module(self.name, run_name="__main__", alter_sys=True))
        else:
            sys.argv = [self.name, *self.arguments]
            sys.path.insert(0, str(Path(self.name).resolve().parent))
            _NAMESPACES.append(runpy.run_path(self.name, run_name="__main__"))


def _stopper(report: Any, steps: int | None, mode: Mode) -> Callable[..., None]:
    def stop_when_done(optimizer: object, args: object, kwargs: object) -> None:
        if steps is not None and report.steps >= steps:
            raise StepLimitReached(f"stopped after {report.steps} optimizer step(s) (--steps)")
        if mode == "raise" and report.findings:
            raise StepLimitReached(f"stopped at the first finding (step {report.steps})")

    return stop_when_done


def run_script(target: Target, *, steps: int | None, mode: Mode, out: TextIO) -> int:
    """Run `target` under `watch`, print the report, and return the exit code."""
    if target.is_module and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does, before looking the module up
    problem = target.problem()
    if problem is not None:
        print(f"looplint run: {problem}", file=sys.stderr)
        return 2
    try:
        from torch.optim.optimizer import register_optimizer_step_post_hook

        from .session import Watch
    except ImportError as error:
        print(
            f"looplint run: needs torch (`pip install 'looplint[runtime]'`): {error}",
            file=sys.stderr,
        )
        return 2
    watcher = Watch(None, (), mode="raise")
    report = watcher.__enter__()
    stop = register_optimizer_step_post_hook(_stopper(report, steps, mode))
    stopped: str | None = None
    failed = False
    argv, path = sys.argv[:], sys.path[:]
    try:
        target.run()
    except StepLimitReached as reason:
        stopped = str(reason)
    except SystemExit as exit_:
        failed = exit_.code not in (None, 0)
    except BaseException:
        traceback.print_exc()
        failed = True
    finally:
        stop.remove()
        sys.argv[:], sys.path[:] = argv, path
    try:
        watcher.__exit__(None, None, None)
    except LoopLintRuntimeError:
        pass
    _print(report, stopped, out)
    if report.findings:
        return 1
    return 2 if failed else 0


def _print(report: Any, stopped: str | None, out: TextIO) -> None:
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    rank = f" (rank {os.environ.get('RANK', '0')})" if world > 1 else ""
    lines = [f"{report}".replace("looplint runtime check:", f"looplint run{rank}:", 1)]
    if stopped is not None:
        lines.append(f"  {stopped}")
    print("\n".join(lines), file=out, flush=True)
