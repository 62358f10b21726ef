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
