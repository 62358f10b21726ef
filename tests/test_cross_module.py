"""Cross-module analysis: calls followed through a package's imports, and a cache that
drops a result as soon as a module it was drawn from changes."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from looplint.analysis.project import Project, definition_text, module_name
from looplint.checking.cache import ResultCache
from looplint.checking.runner import run
from tests.conftest import FIXTURES, RunLooplint

ALL = {f"LL{number:03d}" for number in range(1, 12)}


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def _codes(root: Path, *names: str, cache: ResultCache | None = None) -> list[tuple[str, int, str]]:
    outcome = run([str(root / name) for name in names], ALL, 1, cache)
    return [(Path(f.path).name, f.line, f.code) for f in outcome.findings]


# -- package layout ----------------------------------------------------------------------
def test_module_names_follow_init_files(tmp_path: Path) -> None:
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/sub/__init__.py": "", "pkg/sub/engine.py": ""})
    (tmp_path / "script.py").write_text("")
    engine = module_name(str(tmp_path / "pkg/sub/engine.py"))
    assert (engine.root, engine.dotted, engine.is_package) == (
        str(tmp_path),
        "pkg.sub.engine",
        False,
    )
    package = module_name(str(tmp_path / "pkg/sub/__init__.py"))
    assert (package.dotted, package.is_package) == ("pkg.sub", True)
    assert module_name(str(tmp_path / "script.py")).dotted == "script"


def test_relative_imports_resolve_against_the_package(tmp_path: Path) -> None:
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/sub/__init__.py": "", "pkg/sub/engine.py": ""})
    project = Project()
    importer = str(tmp_path / "pkg/sub/engine.py")
    assert project.absolute(importer, ".optim.build") == "pkg.sub.optim.build"
    assert project.absolute(importer, "..utils.log") == "pkg.utils.log"
    assert project.absolute(importer, "...too.far") is None
    package = str(tmp_path / "pkg/sub/__init__.py")
    assert project.absolute(package, ".engine.train") == "pkg.sub.engine.train"
    assert project.absolute(importer, "pkg.sub.engine.train") == "pkg.sub.engine.train"


def test_definition_text_is_cut_by_indentation() -> None:
    source = textwrap.dedent(
        """
        import torch

        @decorated
        def build(model):
            params = [
                p for p in model.parameters()
            ]
            # a comment at the body's indentation
            return torch.optim.AdamW(params)

        def other():
            pass
        """
    )
    text = definition_text(source, "build")
    assert text is not None and "AdamW" in text and "other" not in text
    assert definition_text(source, "missing") is None


# -- each rule across a module boundary ---------------------------------------------------
STEPS = """
    def step_only(optimizer):
        optimizer.step()

    def clear(optimizer):
        optimizer.zero_grad()

    def step_and_clear(optimizer):
        optimizer.step()
        optimizer.zero_grad()
"""


@pytest.mark.parametrize(
    ("loop", "expected"),
    [
        ("loss.backward()\n        step_only(opt)", [("train.py", 9, "LL001")]),
        ("loss.backward()\n        step_and_clear(opt)", []),
        ("clear(opt)\n        loss.backward()\n        step_only(opt)", []),
        ("loss.backward()\n        clear(opt)\n        opt.step()", [("train.py", 9, "LL005")]),
    ],
    ids=["helper-steps-nothing-clears", "helper-steps-and-clears", "helper-clears-first",
         "helper-clears-before-step"],
)  # fmt: skip
def test_helpers_in_another_module_are_followed(
    tmp_path: Path, loop: str, expected: list[tuple[str, int, str]]
) -> None:
    train = f"""
    import torch
    from .steps import clear, step_and_clear, step_only

    opt = torch.optim.Adam(model.parameters())
    for x, y in loader:
        loss = torch.nn.functional.mse_loss(model(x), y)
        {loop}
    """
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/steps.py": STEPS, "pkg/train.py": train})
    assert _codes(tmp_path, "pkg/train.py", "pkg/steps.py") == expected


def test_the_callee_is_read_from_disk_when_only_the_caller_is_checked(tmp_path: Path) -> None:
    train = """
    import torch
    from pkg.steps import step_only

    opt = torch.optim.Adam(model.parameters())
    for x, y in loader:
        torch.nn.functional.mse_loss(model(x), y).backward()
        step_only(opt)
    """
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/steps.py": STEPS, "pkg/train.py": train})
    assert _codes(tmp_path, "pkg/train.py") == [("train.py", 8, "LL001")]


def test_a_factory_in_another_module_is_recognised(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "optim_factory.py": """
                import torch

                def make(model):
                    return torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
            """,
            "train.py": """
                from optim_factory import make

                for epoch in range(10):
                    optimizer = make(model)
                    for x in loader:
                        optimizer.zero_grad()
                        model(x).sum().backward()
                        optimizer.step()
            """,
        },
    )
    assert _codes(tmp_path, "train.py") == [("train.py", 5, "LL002")]


ENGINE = """
def train_one_epoch(model, updater, loader):
    for x in loader:
        model(x).sum().backward()
        updater.step()
"""
MAIN = """
import torch
from .engine import train_one_epoch

train_one_epoch(model, torch.optim.AdamW(model.parameters()), loader)
"""


def test_a_parameter_learns_its_kind_from_the_caller_in_another_file(tmp_path: Path) -> None:
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/engine.py": ENGINE, "pkg/main.py": MAIN})
    assert _codes(tmp_path, "pkg/engine.py", "pkg/main.py") == [("engine.py", 5, "LL001")]
    # Alone, engine.py cannot know what `updater` is: it stays silent.
    assert _codes(tmp_path, "pkg/engine.py") == []
    # Named `optimizer` and stepped right after a backward pass, it is one by its name.
    (tmp_path / "pkg/engine.py").write_text(ENGINE.replace("updater", "optimizer"))
    assert _codes(tmp_path, "pkg/engine.py") == [("engine.py", 5, "LL001")]


def test_import_cycles_and_broken_modules_are_harmless(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": """
                import torch
                from .b import helper

                def loop(opt):
                    for x in data:
                        opt.zero_grad()
                        helper(opt)
                        opt.step()
            """,
            "pkg/b.py": """
                from .a import loop

                def helper(optimizer):
                    loop(optimizer)
                    optimizer.zero_grad()
            """,
            "pkg/c.py": "from .broken import f\nfor x in y:\n    f(optim)\n",
            "pkg/broken.py": "def f(:\n    optim.step()\n",
        },
    )
    outcome = run([str(tmp_path / "pkg" / n) for n in ("a.py", "b.py", "c.py")], ALL, 1)
    assert outcome.tracebacks == []
    assert [f.code for f in outcome.findings] == []


def test_the_fixture_package_needs_its_siblings(run_looplint: RunLooplint, tmp_path: Path) -> None:
    """Through the real CLI: the package's findings hold however the files are named."""
    package = tmp_path / "crossmodule"
    shutil.copytree(FIXTURES / "crossmodule", package)
    whole = run_looplint("check", "crossmodule", "--no-cache", cwd=tmp_path)
    assert whole.returncode == 1
    found = sorted(line.split(": ")[0] for line in whole.stdout.splitlines() if ": LL" in line)
    assert found == [
        "crossmodule/ddp_package_loader.py:20:28",
        "crossmodule/engine.py:10:9",
        "crossmodule/factory_dispatch_every_epoch.py:13:24",
        "crossmodule/helper_loops.py:13:9",
        "crossmodule/helper_loops.py:22:9",
        "crossmodule/restart_every_epoch.py:10:21",
        "crossmodule/trainer.py:15:17",
    ]
    # The loops calling helpers still see them when checked on their own.
    alone = run_looplint("check", "crossmodule/helper_loops.py", "--no-cache", cwd=tmp_path)
    assert alone.stdout.count(": LL00") == 2


# -- the cache ----------------------------------------------------------------------------
def test_editing_a_callee_invalidates_its_callers_cached_result(tmp_path: Path) -> None:
    train = """
    import torch
    from pkg.steps import step_only

    opt = torch.optim.Adam(model.parameters())
    for x, y in loader:
        torch.nn.functional.mse_loss(model(x), y).backward()
        step_only(opt)
    """
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/steps.py": STEPS, "pkg/train.py": train})
    cache_dir = tmp_path / ".cache"
    first = _codes(tmp_path, "pkg/train.py", cache=ResultCache(cache_dir, ALL))
    assert first == [("train.py", 8, "LL001")]
    warm = run([str(tmp_path / "pkg/train.py")], ALL, 1, ResultCache(cache_dir, ALL))
    assert warm.cached == 1 and len(warm.findings) == 1
    # train.py is untouched; the helper it calls now clears too.
    (tmp_path / "pkg/steps.py").write_text(
        "def step_only(optimizer):\n    optimizer.step()\n    optimizer.zero_grad()\n"
    )
    after = run([str(tmp_path / "pkg/train.py")], ALL, 1, ResultCache(cache_dir, ALL))
    assert after.cached == 0 and after.findings == []


def test_editing_a_reexported_loader_class_invalidates_its_users_cached_result(
    tmp_path: Path,
) -> None:
    """`from pkg.data import DataLoader`, defined in `pkg/data/base.py` and re-exported by
    the package: LL015 reads the class there, so editing it (the loader now splits the data
    itself) re-checks the DDP script."""
    base = """
    import torch.utils.data


    class DataLoader(torch.utils.data.DataLoader):
        def __init__(self, dataset, batch_size=1, sampler=None):
            super().__init__(dataset, batch_size=batch_size, sampler=sampler)
    """
    train = """
    import torch
    from torch.nn.parallel import DistributedDataParallel
    from pkg.data import DataLoader

    model = DistributedDataParallel(net)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    loader = DataLoader(train_set, batch_size=32)
    for epoch in range(10):
        for x, y in loader:
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            opt.step()
    """
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/data/__init__.py": "from .base import (\n    DataLoader,\n)\n",
            "pkg/data/base.py": base,
            "pkg/train.py": train,
        },
    )
    cache_dir = tmp_path / ".cache"
    selected = {"LL015"}
    first = run([str(tmp_path / "pkg/train.py")], selected, 1, ResultCache(cache_dir, selected))
    assert [(f.line, f.code) for f in first.findings] == [(8, "LL015")]
    (tmp_path / "pkg/data/base.py").write_text(
        textwrap.dedent(base).replace("sampler=sampler", "sampler=DistributedSampler(dataset)")
    )
    after = run([str(tmp_path / "pkg/train.py")], selected, 1, ResultCache(cache_dir, selected))
    assert after.cached == 0 and after.findings == []


def test_editing_a_caller_invalidates_the_callees_cached_result(tmp_path: Path) -> None:
    _write(tmp_path, {"pkg/__init__.py": "", "pkg/engine.py": ENGINE, "pkg/main.py": MAIN})
    names = ("pkg/engine.py", "pkg/main.py")
    cache_dir = tmp_path / ".cache"
    assert _codes(tmp_path, *names, cache=ResultCache(cache_dir, ALL)) == [
        ("engine.py", 5, "LL001")
    ]
    warm = run([str(tmp_path / n) for n in names], ALL, 1, ResultCache(cache_dir, ALL))
    assert warm.cached == 2 and len(warm.findings) == 1
    # engine.py is untouched; main.py no longer passes it an optimizer.
    (tmp_path / "pkg/main.py").write_text(
        "from .engine import train_one_epoch\ntrain_one_epoch(model, make_updater(), loader)\n"
    )
    after = run([str(tmp_path / n) for n in names], ALL, 1, ResultCache(cache_dir, ALL))
    assert after.findings == []


def test_stdin_resolves_imports_from_the_name_it_is_given(run_looplint: RunLooplint) -> None:
    """Editors pipe the buffer in under its path: helpers next to it are still followed."""
    folder = FIXTURES / "crossmodule"
    source = (folder / "helper_loops.py").read_text()
    result = run_looplint(
        "check", "--stdin-filename", "helper_loops.py", "-", cwd=folder, stdin=source
    )
    assert result.returncode == 1
    assert [line.split(": ")[1][:5] for line in result.stdout.splitlines() if ": LL" in line] == [
        "LL001",
        "LL005",
    ]


def test_a_module_read_only_for_an_irrelevant_helper_is_a_weak_dependency(
    tmp_path: Path,
) -> None:
    """Editing `utils.py` elsewhere keeps `train.py` cached; making the helper it calls
    step the optimizer does not."""
    train = """
    import torch
    from utils import log

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for x in loader:
        model(x).sum().backward()
        log(opt)
    """
    _write(tmp_path, {"train.py": train, "utils.py": "def log(o):\n    print(o)\n"})
    cache_dir = tmp_path / ".cache"
    first = run([str(tmp_path / "train.py")], ALL, 1, ResultCache(cache_dir, ALL))
    assert first.findings == []
    (tmp_path / "utils.py").write_text("def log(o):\n    print(o)\n\ndef other():\n    pass\n")
    unrelated = run([str(tmp_path / "train.py")], ALL, 1, ResultCache(cache_dir, ALL))
    assert unrelated.cached == 1
    (tmp_path / "utils.py").write_text("def log(o):\n    o.step()\n")
    relevant = run([str(tmp_path / "train.py")], ALL, 1, ResultCache(cache_dir, ALL))
    assert relevant.cached == 0
    assert [(f.line, f.code) for f in relevant.findings] == [(8, "LL001")]


def test_a_base_class_is_followed_through_re_exports_to_nn_module(tmp_path: Path) -> None:
    """`Layer(Checkpointed)`, `Checkpointed` re-exported by `pkg/layers/__init__.py` under
    another name from `pkg/layers/base.py`, where it derives from `nn.Module`: `Layer` is a
    module, so a plain list of them is reported; once the far base stops being a module, the
    cached result of the file that never changed is dropped."""
    model = """
    import torch.nn as nn
    from pkg.layers import Checkpointed

    class Layer(Checkpointed):
        def __init__(self):
            super().__init__()
            self.linear = nn.Linear(4, 4)

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [Layer() for _ in range(3)]
    """
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/layers/__init__.py": "from .base import CheckpointedBase as Checkpointed\n",
            "pkg/layers/base.py": "import torch.nn as nn\n\n\n"
            "class CheckpointedBase(nn.Module):\n    pass\n",
            "pkg/model.py": model,
        },
    )
    cache_dir = tmp_path / ".cache"
    codes = {"LL017"}
    first = run([str(tmp_path / "pkg/model.py")], codes, 1, ResultCache(cache_dir, codes))
    assert [(f.line, f.code) for f in first.findings] == [(13, "LL017")]
    (tmp_path / "pkg/layers/base.py").write_text("class CheckpointedBase:\n    pass\n")
    after = run([str(tmp_path / "pkg/model.py")], codes, 1, ResultCache(cache_dir, codes))
    assert after.cached == 0 and after.findings == []
