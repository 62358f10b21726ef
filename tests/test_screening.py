"""Screening may skip a file only when no rule could fire on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from looplint.analysis.training_screen import TRAINING_CODE
from looplint.checking.checker import check_file
from looplint.files.screening import DISABLE_VARIABLE, Screen, passes
from looplint.registry import rule_classes
from tests.conftest import FIXTURES

ALL_RULES = rule_classes()
SCREENS = list(dict.fromkeys(rule.screen for rule in ALL_RULES))


def _fixtures_with_expectations() -> list[Path]:
    return [
        path
        for path in sorted(FIXTURES.rglob("*.py"))
        if "# expect:" in path.read_text(encoding="utf-8")
    ]


def test_the_screen_keeps_every_fixture_with_an_expectation() -> None:
    dropped = [
        str(path.relative_to(FIXTURES))
        for path in _fixtures_with_expectations()
        if not passes(path.read_text(encoding="utf-8"), SCREENS)
    ]
    assert dropped == []


def test_screening_loses_no_finding_on_fixtures() -> None:
    rules = [rule() for rule in ALL_RULES]
    for path in sorted(FIXTURES.rglob("*.py")):
        with_screen = check_file(str(path), rules, use_prefilter=True).findings
        without = check_file(str(path), rules, use_prefilter=False).findings
        assert with_screen == without, path


@pytest.mark.parametrize(
    "source",
    [
        "opt = torch.optim.AdamW(model.parameters())\n",
        "from torch.optim import SGD as Plain\nthing = Plain(params)\n",
        "optimizer = self.optimizer_cls(self.model.parameters(), lr=1e-3)\n",
        "train(optim_registry[name](params))\n",
        "opt = getattr(torch.optim, cfg.name)(params)\n",
        "opt = make(model)  # an optimizer factory of another module\n",
        "def train(model, optimizer: Optimizer):\n    pass\n",
        "def train(model, optimizer: torch.optim.Optimizer):\n    pass\n",
        "def fit(model, sched: lr_scheduler.LRScheduler):\n    pass\n",
        "def build(params, optimizer_class: type[optim.Optimizer]):\n    pass\n",
        "from torch.optim import Optimizer as Base\ndef train(opt: Base):\n    pass\n",
        "opts = self.optimizers()\n",
        "scaler.scale(loss).backward()\n",
        "trainer = Trainer(optimizer_cls=torch.optim.Adam)\n",
        "opt = hydra.utils.instantiate(cfg.optim, params)\n",
        "# optimizer and scheduler come back\nengine, o, _, s = deepspeed.initialize(model=m)\n",
        "# warm up the optimizer\nfor group in o.param_groups:\n    group['lr'] = 0.1\n",
        "scheduler = get_linear_schedule_with_warmup(o, 10, 100)\n",
        "# optimizer\nfrom deepspeed import initialize\nengine, o, _, s = initialize(model=m)\n",
    ],
)
def test_the_training_screen_keeps_what_recognition_can_start_from(source: str) -> None:
    assert passes(source, [TRAINING_CODE])


@pytest.mark.parametrize(
    "source",
    [
        "import numpy as np\nfor x in range(3):\n    env.step(x)\n",
        '"""Uses torch.optim: an optimizer is built elsewhere."""\nx = 1\n',
        "# optimizer settings live in the config\nlr = 1e-3\n",
        "logger.info('optimizer state saved')\n",
        "graph = optimize_graph(graph, level=optimization_level)\n",
        "from scipy.optimize import linear_sum_assignment\nrows = linear_sum_assignment(cost)\n",
        "self.scaler = MeanScaler(config)\nx = self.scaler(x)\n",
        # deepspeed's other helpers in a model file, and another library's `initialize`
        "with deepspeed.zero.GatheredParameters(self.conv.weight, modifier_rank=0):\n    pass\n",
        "import deepspeed\nnet = NeuralNet(module)\nnet.initialize()\n",
        # annotations no parameter's object is taken from (a tuple, a return, a variable)
        "def __init__(self, optimizers: tuple[Optimizer, LambdaLR] = (None, None)):\n"
        "    pass\n",
        "def optimizers(self) -> list[Optimizer]:\n    return self._optimizers\n",
        "class Config:\n    optimizer: Optimizer | None = None\n",
    ],
)
def test_the_training_screen_skips_prose_and_lookalikes(source: str) -> None:
    assert not passes(source, [TRAINING_CODE])


def test_a_rule_with_its_own_screen_plugs_in() -> None:
    import re

    dropout = Screen(re.compile(r"dropout"))
    source = "y = F.dropout(x)\n"
    assert not passes(source, [TRAINING_CODE])
    assert passes(source, [TRAINING_CODE, dropout])


def test_code_the_standard_parser_rejects_is_passed_on_to_libcst() -> None:
    assert passes("optimizer = (\n", [TRAINING_CODE])


def test_the_switch_turns_screening_off_in_the_real_cli(tmp_path: Path) -> None:
    # A comment mentions an optimizer, so the text passes; the code holds none, so the
    # syntax does not. A file too large for LibCST makes parsing it visible: `LL000`.
    padding = "# generated\n" * 100_000
    (tmp_path / "table.py").write_text("# optimizer settings\nx = 1\n" + padding, encoding="utf-8")

    def codes(environment: dict[str, str]) -> list[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "looplint", "check", "--no-cache", "--format", "json",
             "--exit-zero", str(tmp_path)],
            capture_output=True, text=True, env=environment, check=True,
        )  # fmt: skip
        return [finding["code"] for finding in json.loads(proc.stdout)]

    screened = {k: v for k, v in os.environ.items() if k != DISABLE_VARIABLE}
    assert codes(screened) == []
    assert codes({**screened, DISABLE_VARIABLE: "1"}) == ["LL000"]


def test_definition_rules_bring_in_model_files_by_their_own_screens() -> None:
    """A model file without any optimizer is parsed only when a network-definition rule's
    bug could be written in it."""
    typo = "for p in net.parameters():\n    p.require_grad = False\n"
    moved = "self.w = nn.Parameter(torch.zeros(3, 4)).cuda()\n"
    listed = (
        "class Net(nn.Module):\n    def __init__(self):\n"
        "        self.layers = [nn.Linear(4, 4) for _ in range(3)]\n"
    )
    dropout = "class Net(nn.Module):\n    def forward(self, x):\n        return F.dropout(x, 0.1)\n"
    for text in (typo, moved, listed, dropout):
        assert not passes(text, [TRAINING_CODE]), text
        assert passes(text, SCREENS), text
    clean_model = (
        "class Net(nn.Module):\n    def __init__(self):\n        self.fc = nn.Linear(4, 4)\n"
    )
    assert not passes(clean_model, SCREENS)


_UNREGISTERED = next(rule.screen for rule in ALL_RULES if rule.identity.code == "LL017")
_DROPOUT = next(rule.screen for rule in ALL_RULES if rule.identity.code == "LL019")


def _in_init(*lines: str) -> str:
    body = "".join(f"        {line}\n" for line in lines)
    return f"class Net(nn.Module):\n    def __init__(self):\n{body}"


@pytest.mark.parametrize(
    "source",
    [
        _in_init("self.blocks = [nn.Linear(4, 4) for _ in range(3)]"),
        _in_init("self.heads = {'a': Head(4), 'b': Head(4)}"),
        _in_init("self.towers = tuple(Tower(4) for _ in range(2))"),
        _in_init("self.norms = [weight_norm(nn.Conv1d(4, 4, 3))]"),
        _in_init(
            "towers = []",
            "for _ in range(2):",
            "    towers.append(nn.Linear(4, 4))",
            "self.towers = towers",
        ),
        _in_init("self.a, self.b = [nn.Linear(4, 4)], [nn.Linear(4, 4)]"),
        _in_init("self.blocks = []")
        + "    def build(self):\n        self.blocks.append(Block(4))\n",
        # a local list of layers, stored lines later (the backreference shape of the words)
        _in_init("layers = [Stem(4)]", "width = 4", "self.layers = layers"),
    ],
)
def test_the_submodule_screen_keeps_layers_in_containers_of_a_class(source: str) -> None:
    assert passes(source, [_UNREGISTERED]), source


@pytest.mark.parametrize(
    "source",
    [
        "self.blocks = [nn.Linear(4, 4) for _ in range(3)]\n",  # no class
        "def load(paths):\n    files = [Path(p) for p in paths]\n",  # no class
        _in_init("self.blocks = nn.ModuleList([])")
        + "    def forward(self, x):\n        outs = [Block(x)]\n",  # not in __init__
        _in_init("self.sizes = [len(x), max(y)]"),
        _in_init("self.layers = nn.ModuleList()", "self.layers.append(Block(4))"),
        _in_init("tokens = []", "tokens.append(AddedToken('a'))", "self.add(tokens)"),
        _in_init("self.blocks = []")
        + "    def build(self):\n        self.other.append(Block(4))\n",
        '"""self.blocks = [nn.Linear(4, 4)] in a docstring"""\n',
    ],
)
def test_the_submodule_screen_drops_containers_without_layers(source: str) -> None:
    assert not passes(source, [_UNREGISTERED]), source


def _method(*lines: str) -> str:
    body = "".join(f"        {line}\n" for line in lines)
    return f"class Net(nn.Module):\n    def forward(self, x):\n{body}"


@pytest.mark.parametrize(
    "source",
    [
        _method("return F.dropout(x, 0.1)"),
        _method("return torch.nn.functional.dropout2d(x, p=0.2)"),
        _method("return nn.functional.dropout(x)"),
        "from torch.nn.functional import dropout\n" + _method("return dropout(x, 0.5)"),
        _method("if self.training:", "    x = F.dropout(x, 0.1)", "return x"),
    ],
)
def test_the_dropout_screen_keeps_calls_without_training_in_a_class(source: str) -> None:
    assert passes(source, [_DROPOUT]), source


@pytest.mark.parametrize(
    "source",
    [
        "def augment(x):\n    return F.dropout(x, 0.1)\n",  # not in a class
        _method("return F.dropout(x, 0.1, training=self.training)"),
        _method("return F.dropout(x, 0.1, self.training)"),
        _method("return F.dropout(*args, **kwargs)"),
        _method("return F.dropout(x, **options)"),
        _method("return self.dropout(x)"),
        _method("return F.alpha_dropout(x, 0.1)"),
        _method("dropout = self.dropouts[name]", "return dropout(x)"),  # a local
    ],
)
def test_the_dropout_screen_drops_calls_the_rule_cannot_report(source: str) -> None:
    assert not passes(source, [_DROPOUT]), source


_ACTIVATION = next(rule.screen for rule in ALL_RULES if rule.identity.code == "LL012")

_CLASSIFIER = """
import torch.nn as nn
from torch.nn import CrossEntropyLoss

class Head(nn.Module):
    def __init__(self):
        super().__init__()
        self.dense = nn.Linear(8, 8)
        self.out = {out}

    def forward(self, x):
        x = self.dense(x)
        return {returned}

class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = Head()

    def forward(self, x, labels):
        scores = torch.matmul(x, x.T).softmax(-1)  # attention-like: far from the loss
        logits = self.head(scores @ x)
        logits = logits.view(-1, 8)
        loss_fct = CrossEntropyLoss()
        return loss_fct(logits, labels)
"""


@pytest.mark.parametrize(
    "source",
    [
        # the model's last layer, two classes away
        _CLASSIFIER.format(out="nn.Linear(8, 8)", returned="self.out(x).softmax(dim=-1)"),
        _CLASSIFIER.format(
            out="nn.Sequential(nn.Linear(8, 8), nn.Softmax(-1))", returned="self.out(x)"
        ),
        _CLASSIFIER.format(out="nn.Linear(8, 8)", returned="torch.sigmoid(self.out(x))"),
        # a model of another module: its forward is out of sight
        "from models import Net\nmodel = Net()\nloss = F.cross_entropy(model(x), y)\n",
        # in the loop, through a helper and a parameter
        "import torch.nn.functional as F\n"
        "def probs(x):\n    return F.softmax(x, 1)\n"
        "def step(p, y):\n    return F.cross_entropy(p, y)\n"
        "step(probs(model(x)), y)\n",
        # a loss handed in by the same module
        "def fit(criterion):\n    return criterion(model(x).sigmoid(), y)\n"
        "fit(nn.BCEWithLogitsLoss())\n",
        # losses that raw logits feed wrongly: kept whatever their input
        "loss = F.nll_loss(self.fc(x), y)\n",
        "criterion = nn.BCELoss()\nloss = criterion(logits, y)\n",
    ],
)
def test_the_activation_screen_keeps_losses_an_activation_may_reach(source: str) -> None:
    assert passes(source, [_ACTIVATION]), source


@pytest.mark.parametrize(
    "source",
    [
        # the classifier head ends in a linear layer; the softmax feeds a matmul
        _CLASSIFIER.format(out="nn.Linear(8, 8)", returned="self.out(x)"),
        _CLASSIFIER.format(out="nn.Linear(8, 8)", returned="self.out(x).float()"),
        # a cycle of reassignments, then a linear layer
        "import torch.nn.functional as F\nfc = nn.Linear(4, 2)\n"
        "x = fc(x)\nx = x.view(-1, 2)\nx = x.contiguous()\nloss = F.cross_entropy(x, y)\n",
        # an unknown value, as in the analysis: no origin
        "import torch.nn.functional as F\nloss = F.cross_entropy(outputs[0], y)\n",
        # `self(...)` and a callable parameter no caller passes a loss for
        "class M(nn.Module):\n    def go(self, fn, x):\n        self(x)\n        return fn(x)\n"
        "loss = F.cross_entropy(m.go(f, x), y)\n",
        # a loss named only in prose
        '"""Use CrossEntropyLoss on the softmax(x) output."""\n',
    ],
)
def test_the_activation_screen_drops_losses_no_activation_reaches(source: str) -> None:
    assert not passes(source, [_ACTIVATION]), source


def test_only_the_rules_whose_screens_pass_run(tmp_path: Path) -> None:
    """A module with functional dropout and no training code: LL019 runs on it, the
    training-loop rules do not (they cannot fire), and the result is the same as with
    every rule run."""
    path = tmp_path / "net.py"
    imports = "import torch.nn as nn\nimport torch.nn.functional as F\n"
    path.write_text(imports + _method("return F.dropout(x, 0.1)"), encoding="utf-8")
    ran: list[str] = []
    rules = [rule() for rule in ALL_RULES]
    for rule in rules:
        original = rule.check

        def record(facts: object, rule: object = rule, original: object = original) -> object:
            ran.append(rule.identity.code)  # type: ignore[attr-defined]
            return original(facts)  # type: ignore[operator]

        rule.check = record  # type: ignore[method-assign]
    findings = check_file(str(path), rules, use_prefilter=True).findings
    assert ran == ["LL019"]
    assert [f.code for f in findings] == ["LL019"]
    assert findings == check_file(str(path), [r() for r in ALL_RULES], use_prefilter=False).findings


_EVALUATION = next(rule.screen for rule in ALL_RULES if rule.identity.code == "LL014")


@pytest.mark.parametrize(
    "source",
    [
        "model.eval()\nfor x, y in loader:\n    out = model(x)\n",
        "def evaluate(model, loader):\n    model.eval()\n    return [model(x) for x in loader]\n",
        "self.net.to(device).eval()\nwhile batches:\n    self.net(batches.pop())\n",
        # the switch in one function, the loop in a helper of the module
        "def run(model):\n    model.eval()\n    score(model)\n"
        "def score(model):\n    for x in loader:\n        model(x)\n",
    ],
)
def test_the_evaluation_screen_keeps_a_switched_model_run_in_a_loop(source: str) -> None:
    assert passes(source, [_EVALUATION]), source


@pytest.mark.parametrize(
    "source",
    [
        '"""Set `model.eval()` before predicting."""\nfor x in loader:\n    model(x)\n',
        "model.eval()\nout = model(x)\n",  # no loop
        "model.eval()\nfor x in loader:\n    other(x)\n",  # not the switched model
        "self.self.eval()\nfor h in heads:\n    h.reset()\n",
    ],
)
def test_the_evaluation_screen_drops_files_without_a_switched_model_in_a_loop(
    source: str,
) -> None:
    assert not passes(source, [_EVALUATION]), source


_GENERATOR = next(rule.screen for rule in ALL_RULES if rule.identity.code == "LL009")
_MOVED = next(rule.screen for rule in ALL_RULES if rule.identity.code == "LL018")


@pytest.mark.parametrize(
    "source",
    [
        "params = model.parameters()\n",
        "self.params = filter(lambda p: p.requires_grad,\n    model.parameters())\n",
        "params: Iterator = (p for p in net.named_parameters() if p[1].requires_grad)\n",
    ],
)
def test_the_generator_screen_keeps_a_stored_generator(source: str) -> None:
    assert passes(source, [_GENERATOR]), source


@pytest.mark.parametrize(
    "source",
    [
        "total = sum(p.numel() for p in model.parameters())\n",
        "params = list(model.parameters())\n",
        "optimizer = SGD(model.parameters(), lr=0.1)\n",
        "a = b = model.parameters()\n",  # two targets: the rule follows single stores
    ],
)
def test_the_generator_screen_drops_parameters_used_at_once(source: str) -> None:
    assert not passes(source, [_GENERATOR]), source


# Stage 1 alone: the text test must let through every shape its syntax stage accepts (a
# file it refuses is never parsed), and should refuse the common shapes no rule reports,
# so that model files are not even `ast`-parsed.
@pytest.mark.parametrize(
    ("screen", "source"),
    [
        (_DROPOUT, _method("return F.dropout(x, 0.1)")),
        (_DROPOUT, _method("return F.dropout(", "    x,", "    p=self.p,", ")")),
        (_DROPOUT, _method("return nn.functional.dropout2d (x)")),
        (_DROPOUT, "from torch.nn.functional import dropout\n" + _method("return dropout(x, 0.5)")),
        (_DROPOUT, _method("return F.dropout(x, p=0.1, inplace='yes')")),  # a string: undecided
        (_GENERATOR, "params = model.parameters()\n"),
        (_GENERATOR, "self.params = filter(lambda p: p.requires_grad,\n    model.parameters())\n"),
        (_GENERATOR, "params = (\n    p\n    for p in model.parameters()\n)\n"),
        (_GENERATOR, "params = \\\n    model.parameters()\n"),
        (_GENERATOR, "if frozen: params = model.parameters()\n"),
        (_GENERATOR, "params = next(iter(models)).parameters()\n"),
        (_GENERATOR, "params = get(model)  # then\nparams = model.named_buffers()\n"),
        (
            _UNREGISTERED,
            _in_init("towers = []", "towers.append(nn.Linear(4, 4))", "self.towers = towers"),
        ),
        (_UNREGISTERED, _in_init("self.blocks: list = []", "self.blocks.append(Block(4))")),
        (_UNREGISTERED, _in_init("self.heads = []", "self.heads.insert(0, Head(4))")),
        (_MOVED, "self.w = nn.Parameter(torch.log(torch.exp(torch.tensor(x))).sum(0)).cuda()\n"),
        (_MOVED, "self.w = nn.Parameter(\n    torch.zeros(3)  # (\n).to(device)\n"),
        (_UNREGISTERED, _in_init("self.pair = (", "    Block(4),", "    Block(8),", ")")),
        (_UNREGISTERED, _in_init("self.gen = (Block(4) for _ in range(3))")),
        (_UNREGISTERED, _in_init("self.blocks = [", "    # the stem", "    Stem(4),", "]")),
        (_UNREGISTERED, _in_init("self.heads = {f'{a}_{b}': Head(4) for a, b in pairs}")),
        (
            _UNREGISTERED,
            _in_init("self.blocks = []", "self.blocks.extend([_Norm(4), Linear(4, 4)])"),
        ),
    ],
)
def test_the_words_keep_what_the_syntax_stage_may_accept(screen: Screen, source: str) -> None:
    assert screen.words.search(source) is not None, source


@pytest.mark.parametrize(
    ("screen", "source"),
    [
        (_DROPOUT, _method("return self.dropout(x)")),
        (_DROPOUT, _method("return self.attention_dropout(x)")),
        (_DROPOUT, _method("return F.dropout(x, p=self.p, training=self.training)")),
        (_DROPOUT, _method("return nn.functional.dropout(x, self.p, self.training)")),
        (_DROPOUT, _method("return F.dropout(x, **kwargs)")),
        (_DROPOUT, _method("dropout = self.dropouts[name]", "return dropout(x)")),
        (_GENERATOR, "for name, p in model.named_parameters():\n    p.requires_grad = False\n"),
        (_GENERATOR, "torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)\n"),
        (_GENERATOR, "total = sum(p.numel() for p in model.parameters())\n"),
        (_GENERATOR, "device = next(model.parameters()).device\n"),
        (_GENERATOR, "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"),
        (_GENERATOR, "return [p for p in self.buffers()]\n"),
        (_GENERATOR, "# params = model.parameters() is consumed once\n"),
        (_GENERATOR, 'doc = """(unbalanced"""\nfor p in model.parameters():\n    pass\n'),
        (_UNREGISTERED, "layers = []\nlayers.append(Conv(4))\nnet = nn.Sequential(*layers)\n"),
        (_UNREGISTERED, _in_init("hooks = []", "hooks.append(Hook(4))", "self.n = len(hooks)")),
        (_UNREGISTERED, _in_init("self.proj = (", "    nn.Linear(4, 4) if bias else None", ")")),
        (_MOVED, "self.w = nn.Parameter(torch.zeros(3).cuda())\n"),
        (_MOVED, "self.w = nn.Parameter(torch.zeros(3)).requires_grad_(False)\n"),
    ],
)
def test_the_words_refuse_shapes_no_rule_reports(screen: Screen, source: str) -> None:
    assert screen.words.search(source) is None, source
