"""Notebooks: cells as one program, magics neutralised, locations by cell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from looplint.errors import NotebookError
from looplint.files.notebook import notebook_program
from tests.conftest import RunLooplint


def _notebook(*cells: tuple[str, str | list[str]]) -> str:
    return json.dumps(
        {
            "nbformat": 4,
            "nbformat_minor": 5,
            "metadata": {},
            "cells": [
                {"cell_type": kind, "metadata": {}, "source": source} for kind, source in cells
            ],
        }
    )


def test_magics_do_not_break_parsing_and_keep_lines() -> None:
    program = notebook_program(
        _notebook(
            ("markdown", "# Title"),
            (
                "code",
                [
                    "%matplotlib inline\n",
                    "!pip install -q torch\n",
                    "files = !ls\n",
                    "import torch",
                ],
            ),
            ("code", "%%time\nfor i in range(3):\n    %time f(i)\n    x?\n"),
            ("code", "%%bash\necho hi\nfor\n"),
        )
    )
    compile(program.source, "nb", "exec")  # valid Python
    assert program.locate(4) == (2, 4)  # `import torch`
    assert program.locate(7) == (3, 3)
    assert program.locate(10) == (4, 2)


def test_magics_only_where_a_statement_starts() -> None:
    cell = (
        "print('%d of %d'\n"
        "      % (1, 2))\n"
        'doc = """\n'
        "%not a magic inside a string\n"
        '"""\n'
        "total = 1 + \\\n"
        "    2\n"
        "%timeit f()\n"
        "items = [a,  # a comment with a bracket (\n"
        "         b]\n"
        "!ls\n"
    )
    program = notebook_program(_notebook(("code", cell)))
    compile(program.source, "nb", "exec")
    lines = program.source.splitlines()
    assert lines[1] == "      % (1, 2))"  # the formatting operator is kept
    assert lines[3] == "%not a magic inside a string"
    assert lines[7].startswith("pass  # %timeit")  # a real magic after the brackets closed
    assert lines[10].startswith("pass  # !ls")


def test_indented_cell_parses_as_ipython_runs_it() -> None:
    program = notebook_program(_notebook(("code", "\n  x = 1\n  if x:\n      y = x\n")))
    compile(program.source, "nb", "exec")
    assert program.locate(3) == (1, 3)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "invalid notebook JSON"),
        ('{"metadata": {}}', "no `cells` list"),
        ('{"cells": [{"cell_type": "code", "source": 3}]}', "cell 1"),
    ],
)
def test_invalid_notebooks(text: str, message: str) -> None:
    with pytest.raises(NotebookError, match=message):
        notebook_program(text)


def test_source_as_one_string_and_markdown_only() -> None:
    assert notebook_program(_notebook(("code", "x = 1\ny = 2"))).locate(2) == (1, 2)
    assert notebook_program(_notebook(("markdown", "only prose"))).source == ""


def test_notebook_findings_name_cell_and_line(run_looplint: RunLooplint, tmp_path: Path) -> None:
    (tmp_path / "nb.ipynb").write_text(
        _notebook(
            ("markdown", "# Training"),
            ("code", "%matplotlib inline\nimport torch\nmodel = torch.nn.Linear(2, 1)\n"),
            ("code", "opt = torch.optim.Adam(model.parameters())"),
            ("markdown", "Now train"),
            ("code", "for x in data:\n    model(x).sum().backward()\n    opt.step()\n"),
        )
    )
    text = run_looplint("check", "nb.ipynb", cwd=tmp_path)
    assert text.returncode == 1
    assert text.stdout.startswith("nb.ipynb:cell 5:3:5: LL001")
    (finding,) = json.loads(
        run_looplint("check", "nb.ipynb", "--format", "json", cwd=tmp_path).stdout
    )
    assert (finding["cell"], finding["line"], finding["column"]) == (5, 3, 5)


def test_objects_view_aligns_its_columns_for_notebook_locations(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    filler = "".join(f"x{i} = {i}\n" for i in range(120))
    first = "import torch\nnet = torch.nn.Linear(2, 1)\nopt = torch.optim.SGD(net.parameters())\n"
    last = filler + "sched = torch.optim.lr_scheduler.StepLR(opt, 10)\n"
    (tmp_path / "nb.ipynb").write_text(
        _notebook(("code", first), *[("markdown", "notes")] * 10, ("code", last))
    )
    result = run_looplint("objects", "nb.ipynb", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header == "nb.ipynb"
    assert [row.split()[:3] for row in rows] == [
        ["cell", "1:3", "optimizer"], ["cell", "12:121", "scheduler"]
    ]  # fmt: skip
    # the kind and the name start in the same column on every row
    assert len({row.index(row.split()[2]) for row in rows}) == 1
    assert len({row.index("`") for row in rows}) == 1


def _training_notebook(loop: list[str]) -> str:
    setup = (
        "import torch\nmodel = torch.nn.Linear(2, 1)\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "sched = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.1, total_steps=10)\n"
    )
    cells = [
        {"cell_type": "markdown", "metadata": {}, "source": ["# Träining"]},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": setup},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 7,
         "source": loop},
    ]  # fmt: skip
    document = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(document, indent=1, ensure_ascii=False) + "\n"


LOOP = [
    "total = 0.0\n",
    "for x, y in data:\n",
    "    optimizer.zero_grad()\n",
    "    loss = (model(x) - y).pow(2).mean()\n",
    "    loss.backward()\n",
    "    sched.step()\n",
    "    optimizer.step()\n",
    "    total += loss  # keeps the graph",
]


def test_fix_and_diff_on_a_notebook_change_only_the_cells_they_fix(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    notebook = tmp_path / "nb.ipynb"
    original = _training_notebook(LOOP)
    notebook.write_text(original, encoding="utf-8")
    listed = run_looplint("check", "nb.ipynb", "--no-cache", cwd=tmp_path)
    assert listed.stdout.splitlines()[:2] == [
        "nb.ipynb:cell 3:6:5: LL004 [*] `sched.step()` runs before `optimizer` steps in this "
        "iteration, so the first value of the schedule is skipped; call it after the "
        "optimizer step",
        "nb.ipynb:cell 3:8:5: LL006 [*] `total += loss` keeps `loss` with its autograd graph in "
        "`total` across iterations, so every iteration's graph stays in memory; accumulate "
        "`loss.item()` (or `loss.detach()`)",
    ]
    diff = run_looplint("check", "nb.ipynb", "--diff", "--no-cache", cwd=tmp_path)
    assert diff.returncode == 1
    assert diff.stdout.splitlines()[:2] == ["--- a/nb.ipynb:cell 3", "+++ b/nb.ipynb:cell 3"]
    assert "+    total += loss.item()  # keeps the graph" in diff.stdout.splitlines()
    assert notebook.read_text(encoding="utf-8") == original  # --diff changes nothing

    fixed = run_looplint("check", "nb.ipynb", "--fix", "--no-cache", cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert fixed.stderr == "looplint: applied 2 fixes to 1 file(s)\n"
    expected = [*LOOP[:5], "    optimizer.step()\n", "    sched.step()\n",
                "    total += loss.item()  # keeps the graph"]  # fmt: skip
    # Only the fixed cell's source changed, in the notebook's own layout.
    assert notebook.read_text(encoding="utf-8") == _training_notebook(expected)


def test_a_fix_that_cannot_go_back_into_the_cells_says_why(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    notebook = tmp_path / "nb.ipynb"
    # Moving `sched.step()` past the magic would rewrite the magic's line.
    loop = [*LOOP[:6], "    %time print(1)\n", *LOOP[6:7]]
    original = _training_notebook(loop)
    notebook.write_text(original, encoding="utf-8")
    for flag, status in (("--fix", 1), ("--diff", 0)):  # the finding stays; no diff
        result = run_looplint("check", "nb.ipynb", flag, "--no-cache", cwd=tmp_path)
        assert result.returncode == status
        assert (
            "looplint: warning: nb.ipynb:cell 3:7: fix not applied: it would change a line "
            "of IPython magic" in result.stderr
        ), result.stderr
        assert notebook.read_text(encoding="utf-8") == original
    assert "LL004" in run_looplint("check", "nb.ipynb", "--no-cache", cwd=tmp_path).stdout
