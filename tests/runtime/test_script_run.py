"""`looplint run`: real training scripts, unmodified, run by the real CLI in a subprocess.

Each script is what a user would have: a plain loop, an accelerate loop, a
Lightning module, a DDP script started with torchrun's environment. The
command must find the optimizer and the model itself, report with the
script's file and line, stop after `--steps`, and exit 0 / 1 / 2.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import looplint_command

pytest.importorskip("torch")

HERE = Path(__file__).parent

HALF_MODEL = """
import sys
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Linear(8, 16)
        self.head = nn.Linear(16, 2)

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))

def main(epochs):
    model = Net()
    optimizer = torch.optim.SGD(model.head.parameters(), lr=0.1)  # half the model
    for step in range(epochs):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(torch.randn(4, 8)), torch.randint(0, 2, (4,)))
        loss.backward()
        optimizer.step()
        print("finished step", step, flush=True)

if __name__ == "__main__":
    main(int(sys.argv[1]))
"""

CLEAN = """
import torch
from torch import nn

model = nn.Sequential(nn.Linear(8, 16), nn.Dropout(0.1), nn.Linear(16, 2))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 2)
for epoch in range(2):
    model.train()
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(4, 8)), torch.randint(0, 2, (4,))).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    scheduler.step()
    model.eval()
    with torch.no_grad():
        model(torch.randn(4, 8))
print("done")
"""

ACCELERATE = """
import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

accelerator = Accelerator(cpu=True)
model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
data = DataLoader(TensorDataset(torch.randn(16, 8), torch.randint(0, 2, (16,))), batch_size=4)
model, optimizer, data = accelerator.prepare(model, optimizer, data)
for x, y in data:
    optimizer.zero_grad()
    accelerator.backward(nn.functional.cross_entropy(model(x), y))
    optimizer.step()
    accelerator.clip_grad_norm_(model.parameters(), 1.0)  # after the step: no effect
"""

LIGHTNING = """
import sys
sys.path.insert(0, {tests!r})
from third_party import import_library, quiet_trainer

pl = import_library("lightning.pytorch")
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

class Classifier(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Linear(8, 16)
        self.head = nn.Linear(16, 2)

    def training_step(self, batch, index):
        x, y = batch
        return nn.functional.cross_entropy(self.head(torch.relu(self.encoder(x))), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.head.parameters(), lr=1e-3)  # the encoder never trains

data = DataLoader(TensorDataset(torch.randn(32, 8), torch.randint(0, 2, (32,))), batch_size=4)
quiet_trainer(pl).fit(Classifier(), data)
"""

DDP = """
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

dist.init_process_group("gloo")
model = DistributedDataParallel(nn.Linear(8, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
dataset = TensorDataset(torch.randn(32, 8), torch.randint(0, 2, (32,)))
sampler = DistributedSampler(dataset, shuffle=True)
loader = DataLoader(dataset, batch_size=4, sampler=sampler)
for epoch in range(2):
    for x, y in loader:  # set_epoch(epoch) is never called
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
dist.destroy_process_group()
"""


def _run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*looplint_command(), "run", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **(env or {})},
    )


def _line(source: str, text: str) -> int:
    return next(n for n, line in enumerate(source.splitlines(), 1) if text in line)


def test_a_plain_script_is_checked_stopped_after_steps_and_exits_1(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(HALF_MODEL)
    result = _run("--steps", "3", "train.py", "10", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "finished step 1" in result.stdout and "finished step 2" not in result.stdout
    line = _line(HALF_MODEL, "# half the model")
    assert f"train.py:{line}: LL003 partial-parameters (uncovered-parameters)" in result.stdout
    assert f"`SGD #0` (built at train.py:{line})" in result.stdout
    assert "`body.weight`, `body.bias`" in result.stdout
    assert "3 optimizer steps watched" in result.stdout
    assert "stopped after 3 optimizer step(s)" in result.stdout


def test_a_clean_module_runs_to_the_end_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / "clean_train.py").write_text(CLEAN)
    result = _run("-m", "clean_train", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done" in result.stdout
    assert "looplint run: no findings (6 optimizer steps watched)" in result.stdout


def test_a_script_that_cannot_start_exits_2(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def train(:\n")
    missing = _run("missing.py", cwd=tmp_path)
    broken = _run("broken.py", cwd=tmp_path)
    no_module = _run("-m", "no_such_training_module", cwd=tmp_path)
    assert (missing.returncode, broken.returncode, no_module.returncode) == (2, 2, 2)
    assert "cannot read missing.py" in missing.stderr
    assert "broken.py is not valid Python" in broken.stderr
    assert "no module named `no_such_training_module`" in no_module.stderr


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None, reason="needs accelerate")
def test_an_accelerate_script_clipping_after_the_step_is_ll016(tmp_path: Path) -> None:
    (tmp_path / "train_accelerate.py").write_text(ACCELERATE)
    result = _run("train_accelerate.py", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    line = _line(ACCELERATE, "after the step: no effect")
    assert f"train_accelerate.py:{line}: LL016 clipping-without-effect" in result.stdout
    assert "LL003" not in result.stdout  # the model behind `prepare` is the whole model


@pytest.mark.skipif(importlib.util.find_spec("lightning") is None, reason="needs lightning")
def test_a_lightning_script_is_stopped_and_names_configure_optimizers(tmp_path: Path) -> None:
    source = LIGHTNING.format(tests=str(HERE))
    (tmp_path / "train_lightning.py").write_text(source)
    result = _run("--steps", "2", "train_lightning.py", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    line = _line(source, "the encoder never trains")
    assert f"`Adam #0` (built at train_lightning.py:{line})" in result.stdout
    assert "`encoder.weight`, `encoder.bias`" in result.stdout
    assert "2 optimizer steps watched" in result.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_ddp_script_under_torchrun_environment_reports_set_epoch_on_each_rank(
    tmp_path: Path,
) -> None:
    (tmp_path / "train_ddp.py").write_text(DDP)
    common = {"WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(_free_port())}
    ranks = [
        subprocess.Popen(
            [*looplint_command(), "run", "train_ddp.py"],
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **common, "RANK": str(rank), "LOCAL_RANK": str(rank)},
        )
        for rank in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in ranks]
    line = _line(DDP, "set_epoch(epoch) is never called")
    for rank, (process, (stdout, stderr)) in enumerate(zip(ranks, outputs, strict=True)):
        assert process.returncode == 1, stdout + stderr
        assert f"looplint run (rank {rank}): 1 finding (8 optimizer steps watched)" in stdout
        assert f"train_ddp.py:{line}: LL015 distributed-sampling (set-epoch-never-called)" in stdout


def test_the_cli_imports_torch_only_when_run_is_invoked(tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    probe = (
        "import sys\n"
        "from looplint.commands.cli import main\n"
        "for args in (['check', 'train.py'], ['run', '--help']):\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.stdout.strip().splitlines()[-1] == "False", result.stdout + result.stderr
    assert "--steps" in result.stdout


def test_raise_mode_stops_at_the_first_step_with_a_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from looplint.runtime_check.script_run import Target, run_script

    script = tmp_path / "clip_late.py"
    script.write_text(CLIP_LATE)
    code = run_script(
        Target(str(script), ("7",), is_module=False), steps=None, mode="raise", out=sys.stdout
    )
    output = capsys.readouterr().out
    assert code == 1
    assert "steps run: 0" in output and "steps run: 1" not in output  # stopped at step 2
    assert f"clip_late.py:{_line(CLIP_LATE, 'clipped too late')}: LL016" in output
    assert "stopped at the first finding (step 2)" in output


CLIP_LATE = """
import sys
import torch
from torch import nn

model = nn.Linear(4, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for step in range(int(sys.argv[1])):
    optimizer.zero_grad()
    nn.functional.mse_loss(model(torch.randn(4, 4)), torch.randn(4, 2)).backward()
    optimizer.step()
    print("steps run:", step, flush=True)
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # clipped too late
"""


def test_a_scripts_objects_live_on_after_it_returns_as_under_python(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python` keeps `__main__`'s globals until it exits; so does `looplint run`. Freed
    when the script returns, a DDP model deleted after `destroy_process_group()` could
    hang its rank inside looplint (the torchrun test above, one run in three)."""
    from looplint.runtime_check.script_run import Target, run_script

    script = tmp_path / "keeps.py"
    script.write_text(
        "import sys, weakref\n"
        "class Model:\n"
        "    pass\n"
        "model = Model()\n"
        "sys.looplint_probe = weakref.ref(model)\n"
    )
    try:
        code = run_script(
            Target(str(script), (), is_module=False), steps=None, mode="warn", out=sys.stdout
        )
        assert code == 0, capsys.readouterr()
        assert sys.looplint_probe() is not None  # type: ignore[attr-defined]
    finally:
        del sys.looplint_probe  # type: ignore[attr-defined]
