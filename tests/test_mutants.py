"""The mutation benchmark's generator: one real bug per mutant, and no mutant that is not a bug.

Why: a recall figure is only as good as its mutants. A generator that injects something that is
not a bug (a clear another clear covers, an `n_critic` schedule) would count correct silence as
a miss; one that mangles the file would measure nothing. These tests run the generator on small
loops of known shape and lint the mutants of a textbook loop with the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import mutants

TEXTBOOK = """\
import torch


def evaluate(model, loader):
    model.eval()
    with torch.no_grad():
        return sum(model(x).sum() for x in loader)


def train(model, loader, epochs):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 1)
    scaler = torch.cuda.amp.GradScaler()
    for epoch in range(epochs):
        model.train()
        total = 0.0
        for i, x in enumerate(loader):
            loss = model(x).sum() / 4
            scaler.scale(loss).backward()
            total += loss.item()
            if (i + 1) % 4 == 0:
                scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad()
        scheduler.step()
        evaluate(model, loader)
"""


def _diff(before: str, after: str) -> tuple[list[str], list[str]]:
    old, new = before.splitlines(), after.splitlines()
    return [x.strip() for x in old if x not in new], [x.strip() for x in new if x not in old]


def test_textbook_loop_gets_one_mutant_per_rule() -> None:
    found = mutants.mutate(TEXTBOOK)
    assert sorted(m.rule for m in found.mutants) == sorted(
        ["LL001", "LL002", "LL004", "LL005", "LL006", "LL007", "LL007", "LL009", "LL010", "LL011",
         "LL013", "LL016"]
    )  # fmt: skip
    # `model` is a parameter: its submodules are not visible, so no LL003 narrowing
    assert [(e.rule, e.reason) for e in found.exclusions] == [("LL003", "model-class-unknown")]
    by_rule = {m.rule: m for m in found.mutants}
    assert _diff(TEXTBOOK, by_rule["LL006"].text) == (
        ["total += loss.item()"],
        ["total += loss"],
    )
    removed, added = _diff(TEXTBOOK, by_rule["LL001"].text)
    assert removed == ["optimizer.zero_grad()"]
    assert added == ["pass"]
    lines = by_rule["LL004"].text.splitlines()
    assert lines.index("        scheduler.step()") == lines.index("        model.train()") - 1
    for mutant in found.mutants:
        compile(mutant.text, mutant.rule, "exec")
        assert mutant.subject


def _codes_by_file(
    root: Path, files: dict[str, str], rules: list[str] | None = None
) -> dict[str, set[str]]:
    """Write `files` under `root`, run the real CLI over them, and return each file's codes."""
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    select = ["--select", ",".join(rules)] if rules else []
    proc = subprocess.run(
        [sys.executable, "-m", "looplint", "check", "--format", "json", "--exit-zero",
         "--no-cache", *select, str(root)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    codes: dict[str, set[str]] = {name: set() for name in files}
    for finding in json.loads(proc.stdout):
        codes[Path(finding["path"]).name].add(finding["code"])
    return codes


def test_every_textbook_mutant_is_reported_by_the_cli(tmp_path: Path) -> None:
    """The premise of the benchmark: on code written the textbook way, each mutant holds a
    bug of its rule that looplint reports, and the original holds none."""
    files = {"original.py": TEXTBOOK}
    for index, mutant in enumerate(mutants.mutate(TEXTBOOK).mutants):
        files[f"m{index}_{mutant.rule}.py"] = mutant.text
    codes = _codes_by_file(tmp_path, files)
    assert codes.pop("original.py") == set()
    for name, found in codes.items():
        assert name.split("_")[1].removesuffix(".py") in found, (name, found)


SCRIPT = """\
import torch
import torch.nn as nn


class AutoEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, 128), nn.ReLU())
        self.act = nn.ReLU()
        self.decoder = nn.Linear(128, 784)

    def forward(self, x):
        return self.decoder(self.act(self.encoder(x)))


def main(loader, args):
    model = AutoEncoder().to("cuda")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    start = 0
    if args.resume:
        ckpt = torch.load(args.resume)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start = ckpt["epoch"]
    for epoch in range(start, 10):
        for x in loader:
            optimizer.zero_grad()
            loss = nn.functional.mse_loss(model(x), x)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        torch.save(
            {"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict()},
            "ckpt.pt",
        )
"""


def test_parameter_and_checkpoint_mutations() -> None:
    found = {m.rule: m for m in mutants.mutate(SCRIPT, ["LL003", "LL008", "LL009"]).mutants}
    assert sorted(found) == ["LL003", "LL008", "LL009"]
    assert _diff(SCRIPT, found["LL003"].text) == (
        ["optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)"],
        ["optimizer = torch.optim.Adam(model.encoder.parameters(), lr=1e-3)"],
    )
    removed, added = _diff(SCRIPT, found["LL008"].text)
    assert removed == [
        'optimizer.load_state_dict(ckpt["optimizer"])',
        '{"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict()},',
    ]
    assert added == ["pass", '{"epoch": epoch, "model": model.state_dict()},']
    removed, added = _diff(SCRIPT, found["LL009"].text)
    assert added == [
        "params = model.parameters()",
        "optimizer = torch.optim.Adam(params, lr=1e-3)",
        "torch.nn.utils.clip_grad_norm_(params, 1.0)",
    ]


def test_every_script_mutant_is_reported_by_the_cli(tmp_path: Path) -> None:
    """The premise again, for the operators that need a model class and a checkpoint."""
    files = {"original.py": SCRIPT}
    for mutant in mutants.mutate(SCRIPT).mutants:
        files[f"m{len(files)}_{mutant.rule}.py"] = mutant.text
    codes = _codes_by_file(tmp_path, files)
    assert codes.pop("original.py") == set()
    assert {name.split("_")[1].removesuffix(".py") for name in codes} >= {"LL003", "LL008", "LL009"}
    for name, found in codes.items():
        assert name.split("_")[1].removesuffix(".py") in found, (name, found)


@pytest.mark.parametrize(
    ("old", "new", "rule", "reason"),
    [
        (  # plain SGD keeps no state: dropping it from the checkpoint loses nothing
            "torch.optim.Adam(model.parameters(), lr=1e-3)",
            "torch.optim.SGD(model.parameters(), lr=1e-3)",
            "LL008",
            "stateless-optimizer",
        ),
        (  # the optimizer is never restored: no resume from this checkpoint is visible
            '        optimizer.load_state_dict(ckpt["optimizer"])\n',
            "",
            "LL008",
            "no-optimizer-restore",
        ),
        (  # the decoder is frozen: an optimizer over the encoder alone may be intended
            "        self.decoder = nn.Linear(128, 784)\n",
            "        self.decoder = nn.Linear(128, 784)\n"
            "        self.decoder.requires_grad_(False)\n",
            "LL003",
            "may-freeze",
        ),
        (  # one trained submodule: nothing to leave out
            "        return self.decoder(self.act(self.encoder(x)))",
            "        return self.act(self.encoder(x))",
            "LL003",
            "one-trained-submodule",
        ),
    ],
)
def test_parameter_and_checkpoint_non_bugs_are_excluded(
    old: str, new: str, rule: str, reason: str
) -> None:
    assert old in SCRIPT
    found = mutants.mutate(SCRIPT.replace(old, new), [rule])
    assert [e.reason for e in found.exclusions] == [reason]
    assert found.mutants == []
    assert reason in mutants.EXCLUSION_CRITERIA


@pytest.mark.parametrize(
    ("source", "rule", "reason"),
    [
        (  # WGAN: the generator's backward and step sit together under the condition
            """
for i, x in enumerate(loader):
    loss_d = critic(x).mean()
    loss_d.backward()
    opt_d.step()
    opt_d.zero_grad()
    if i % n_critic == 0:
        loss_g = -critic(gen(z)).mean()
        loss_g.backward()
        opt_g.step()
        opt_g.zero_grad()
""",
            "LL010",
            "backward-under-if",
        ),
        (  # the running total is reset every iteration: no history builds up
            """
for x in loader:
    total = 0
    loss = model(x).sum()
    loss.backward()
    total += loss.item()
    optimizer.step()
    optimizer.zero_grad()
""",
            "LL006",
            "reset-each-iteration",
        ),
        (  # nothing clips after unscale_: removing it changes nothing
            """
for x in loader:
    scaler.scale(model(x).sum()).backward()
    scaler.unscale_(optimizer)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad()
""",
            "LL007",
            "no-clip",
        ),
        (  # a threshold of None only measures the norm (VITS logs it): nothing is clipped
            """
for x in loader:
    optimizer.zero_grad()
    scaler.scale(model(x).sum()).backward()
    scaler.unscale_(optimizer)
    grad_norm = commons.clip_grad_value_(model.parameters(), None)
    scaler.step(optimizer)
    scaler.update()
""",
            "LL007",
            "no-clip",
        ),
        (  # a helper of the file clears too: removing the visible clear is not a bug
            """
def reset(model):
    model.zero_grad()

for x in loader:
    model(x).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    reset(model)
""",
            "LL001",
            "helper-may-clear",
        ),
        (  # the optimizer is handed in: its construction is the caller's
            """
def fit(model, optimizer, loader):
    for x in loader:
        model(x).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
""",
            "LL002",
            "no-construction",
        ),
        (  # plain SGD without momentum and no schedule: rebuilding it loses nothing
            """
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for epoch in range(3):
    for x in loader:
        model(x).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
""",
            "LL002",
            "stateless-optimizer",
        ),
        (
            """
for epoch in range(3):
    scheduler.step()
    for x in loader:
        model(x).sum().backward()
        optimizer.step()
        optimizer.zero_grad()
""",
            "LL004",
            "sched-already-first",
        ),
    ],
)
def test_mutations_that_would_not_be_bugs_are_excluded(source: str, rule: str, reason: str) -> None:
    found = mutants.mutate(source, [rule])
    excluded = [e for e in found.exclusions if e.rule == rule]
    assert [e.reason for e in excluded] == [reason]
    assert [m for m in found.mutants if m.rule == rule and m.line == excluded[0].line] == []
    assert reason in mutants.EXCLUSION_CRITERIA


def test_plain_sgd_under_a_schedule_is_mutated_and_reported(tmp_path: Path) -> None:
    """Plain SGD keeps no state, but a scheduler built over it keeps adjusting the first
    optimizer: a copy rebuilt in the loop never sees the schedule, a real bug. Momentum
    given by position (`SGD(params, 0.1, 0.9)`) is state as much as by keyword."""
    scheduled = """\
import torch


def train(model, loader, epochs):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    for epoch in range(epochs):
        total = 0.0
        for x in loader:
            optimizer.zero_grad()
            loss = model(x).sum()
            loss.backward()
            optimizer.step()
            total += loss.item()
        scheduler.step(total)
"""
    momentum = scheduled.replace("lr=0.1)", "0.1, 0.9)").replace(
        "    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)\n", ""
    ).replace("        scheduler.step(total)\n", "")
    files = {}
    for name, source in (("scheduled", scheduled), ("momentum", momentum)):
        found = mutants.mutate(source, ["LL002"])
        assert found.exclusions == [] and len(found.mutants) == 1, name
        files[f"{name}.py"] = found.mutants[0].text
    assert _codes_by_file(tmp_path, files) == {"scheduled.py": {"LL002"}, "momentum.py": {"LL002"}}


def test_per_batch_method_called_from_a_loop_is_a_training_unit() -> None:
    source = """
import torch

class Trainer:
    def __init__(self, model):
        self.model = model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)

    def _train_step(self, batch):
        loss = self.model(batch).sum()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad()

    def fit(self, loader):
        for batch in loader:
            self._train_step(batch)
"""
    found = mutants.mutate(source, ["LL001", "LL002"])
    assert {(m.rule, m.subject, m.shape) for m in found.mutants} == {
        ("LL001", "self.optimizer", "per-batch function"),
        ("LL002", "self.optimizer", "per-batch function"),
    }


def test_code_outside_training_loops_has_no_mutants() -> None:
    source = """
import torch
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loss = model(x).sum()
loss.backward()
optimizer.step()
optimizer.zero_grad()
for t in range(10):
    env.step(action)
"""
    assert mutants.mutate(source) == mutants.FileMutations()


def test_scheduler_step_under_its_own_guard_moves_with_the_guard() -> None:
    source = """
for x in loader:
    model(x).sum().backward()
    optimizer.step()
    optimizer.zero_grad()
    if scheduler is not None:
        scheduler.step()
"""
    (mutant,) = mutants.mutate(source, ["LL004"]).mutants
    assert mutant.text.splitlines()[3:5] == [
        "    if scheduler is not None:",
        "        scheduler.step()",
    ]
    assert mutant.text.splitlines()[5] == "    optimizer.step()"
    compile(mutant.text, "LL004", "exec")


ACCUMULATING_CLASSIFIER = """\
import torch
import torch.nn.functional as F


def evaluate(model, loader):
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
    return correct


def train(model, loader, val_loader, accum=4):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for epoch in range(3):
        model.train()
        for i, (x, y) in enumerate(loader):
            loss = F.cross_entropy(model(x), y) / accum
            loss.backward()
            if (i + 1) % accum == 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                optimizer.zero_grad()
        print(evaluate(model, val_loader))
"""


def test_activation_accumulation_evaluation_and_clip_mutants_are_reported(tmp_path: Path) -> None:
    """LL012-LL016's mutations of a correct loop: a softmax before the cross-entropy, the
    division by the window removed, the `no_grad` around evaluation removed, the clip moved
    after the step — each one reported by its rule, the original silent."""
    rules = ["LL012", "LL013", "LL014", "LL016"]
    found = mutants.mutate(ACCUMULATING_CLASSIFIER, rules)
    assert sorted(m.rule for m in found.mutants) == rules
    by_rule = {m.rule: m for m in found.mutants}
    assert _diff(ACCUMULATING_CLASSIFIER, by_rule["LL013"].text) == (
        ["loss = F.cross_entropy(model(x), y) / accum"],
        ["loss = F.cross_entropy(model(x), y)"],
    )
    assert "with torch.no_grad():" not in by_rule["LL014"].text
    files = {"original.py": ACCUMULATING_CLASSIFIER}
    files.update({f"m_{m.rule}.py": m.text for m in found.mutants})
    codes = _codes_by_file(tmp_path, files, rules)
    assert codes == {"original.py": set(), **{f"m_{r}.py": {r} for r in rules}}


NETWORKS = """\
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from transformers import AutoModel


class Encoder(nn.Module):
    def __init__(self, dim, depth):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(dim, dim) for _ in range(depth)])
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        for block in self.blocks:
            x = F.dropout(block(x), 0.1, training=self.training)
        return x * self.scale


def freeze(model):
    for param in model.parameters():
        param.requires_grad = False


def main(dataset, rank):
    model = DistributedDataParallel(Encoder(8, 2), device_ids=[rank])
    optimizer = torch.optim.AdamW(model.parameters())
    sampler = DistributedSampler(dataset)
    loader = DataLoader(dataset, batch_size=8, sampler=sampler)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        for x in loader:
            optimizer.zero_grad()
            model(x).sum().backward()
            optimizer.step()


def finetune(loader):
    bert = AutoModel.from_pretrained("bert-base-uncased")
    optimizer = torch.optim.AdamW(bert.parameters())
    bert.train()
    for batch in loader:
        optimizer.zero_grad()
        bert(**batch).loss.backward()
        optimizer.step()
"""


def test_network_definition_and_distributed_mutants_are_reported(tmp_path: Path) -> None:
    """One mutant per site of LL015 and LL017-LL021 on a small model file, each reported by
    the CLI with its rule, and the original clean."""
    rules = ["LL015", "LL017", "LL018", "LL019", "LL020", "LL021"]
    found = mutants.mutate(NETWORKS, rules)
    assert sorted(m.rule for m in found.mutants) == [
        "LL015", "LL015", "LL017", "LL018", "LL019", "LL020", "LL021"
    ]  # fmt: skip
    by_description = {m.description: m for m in found.mutants}
    assert any("set_epoch" in d for d in by_description)
    files = {"original.py": NETWORKS}
    for index, mutant in enumerate(found.mutants):
        compile(mutant.text, mutant.rule, "exec")
        files[f"m{index}_{mutant.rule}.py"] = mutant.text
    codes = _codes_by_file(tmp_path, files, rules)
    assert codes.pop("original.py") == set()
    for name, reported in codes.items():
        assert name.split("_")[1].removesuffix(".py") in reported, (name, reported)


@pytest.mark.parametrize(
    ("source", "rule", "reason"),
    [
        (
            "import torch.nn as nn\nclass A(Base):\n    def __init__(self):\n"
            "        self.l = nn.ModuleList([nn.Linear(1, 1)])\n",
            "LL017",
            "base-elsewhere",
        ),
        (
            "import torch.nn as nn\nclass A(nn.Module):\n    def __init__(self, blocks):\n"
            "        self.l = nn.ModuleList(blocks)\n",
            "LL017",
            "no-fresh-layers",
        ),
        (
            "import torch.nn.functional as F\nimport torch.nn as nn\nclass A(nn.Module):\n"
            "    def forward(self, x):\n        if self.training:\n"
            "            x = F.dropout(x, 0.1, training=self.training)\n        return x\n",
            "LL019",
            "guarded-by-mode",
        ),
        ("model.requires_grad = False\n", "LL020", "receiver-not-tensor"),
        (
            "import torch.nn as nn\nclass A(nn.Module):\n    def __init__(self):\n"
            "        self.model = B()\n"
            "        self.model.heads = nn.ModuleList([nn.Linear(1, 1)])\n",
            "LL017",
            "not-own-attribute",
        ),
        (
            # the `model` of `build` is loaded pretrained; `main`'s `model` is another one
            "import torch\nfrom transformers import AutoModel\n"
            "def build():\n    model = AutoModel.from_pretrained('b')\n    return model\n"
            "def main(loader):\n    model = Net()\n"
            "    opt = torch.optim.AdamW(model.parameters())\n    model.train()\n"
            "    for x in loader:\n        opt.zero_grad()\n        model(x).backward()\n"
            "        opt.step()\n",
            "LL021",
            "train-of-another-model",
        ),
    ],
)
def test_definition_non_bugs_are_excluded(source: str, rule: str, reason: str) -> None:
    found = mutants.mutate(source, [rule])
    assert found.mutants == []
    assert [(e.rule, e.reason) for e in found.exclusions] == [(rule, reason)]


TIMM_SCALER_LOOP = """\
import torch
from utils import NativeScalerWithGradNormCount


def train_one_epoch(model, criterion, loader, optimizer, accum):
    loss_scaler = NativeScalerWithGradNormCount()
    for idx, (x, y) in enumerate(loader):
        with torch.cuda.amp.autocast():
            loss = criterion(model(x), y)
        loss = loss / accum
        loss_scaler(loss, optimizer, parameters=model.parameters(),
                    update_grad=(idx + 1) % accum == 0)
        if (idx + 1) % accum == 0:
            optimizer.zero_grad()


def main(model, criterion, loader, epochs, accum):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for epoch in range(epochs):
        train_one_epoch(model, criterion, loader, optimizer, accum)
"""


def test_accumulation_through_a_timm_scaler_call_is_mutated_and_reported(tmp_path: Path) -> None:
    """A loop with no `.step()` of its own (the scaler call steps when `update_grad` says
    so): LL013's operator still removes the division, and looplint reports the call."""
    found = mutants.mutate(TIMM_SCALER_LOOP, ["LL013"])
    assert [m.rule for m in found.mutants] == ["LL013"]
    assert _diff(TIMM_SCALER_LOOP, found.mutants[0].text) == (
        ["loss = loss / accum"],
        ["loss = loss"],
    )
    files = {"original.py": TIMM_SCALER_LOOP, "mutant.py": found.mutants[0].text}
    assert _codes_by_file(tmp_path, files, ["LL013"]) == {
        "original.py": set(),
        "mutant.py": {"LL013"},
    }
