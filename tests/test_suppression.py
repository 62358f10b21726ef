"""Suppression a team can adopt: file-level noqa, loud misfires, `--add-noqa`, LL000 as a rule."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from looplint.checking.unreadable import UnreadableFile
from tests.conftest import RunLooplint
from tests.test_cli import BUGGY, STEP_LINE

BROKEN = "import torch.optim\ndef f(:\n    pass\n"


def _codes(run_looplint: RunLooplint, cwd: Path, *args: str) -> list[tuple[str, str]]:
    out = run_looplint("check", *args, "--format", "json", "--exit-zero", cwd=cwd).stdout
    return [(Path(f["path"]).name, f["code"]) for f in json.loads(out)]


def test_file_level_noqa(run_looplint: RunLooplint, tmp_path: Path) -> None:
    (tmp_path / "named.py").write_text("# looplint: noqa: LL001\n" + BUGGY)
    (tmp_path / "other_code.py").write_text("# looplint: noqa: LL002\n" + BUGGY)
    (tmp_path / "everything.py").write_text(BUGGY + "# looplint: noqa\n")
    (tmp_path / "broken.py").write_text("# looplint: noqa: LL000\n" + BROKEN)
    (tmp_path / "broken_too.py").write_text(BROKEN)
    assert _codes(run_looplint, tmp_path, ".") == [
        ("broken_too.py", "LL000"),
        ("other_code.py", "LL001"),
    ]
    result = run_looplint("check", ".", cwd=tmp_path)
    assert result.stderr == ""  # valid directives draw no notice


def test_misfiring_noqa_comments_are_reported(run_looplint: RunLooplint, tmp_path: Path) -> None:
    lines = BUGGY.splitlines()
    lines[STEP_LINE - 1] += "  # noqa LL001"
    lines[2] += "  # noqa: LL099, E501"
    lines[3] += "  # noqa E501"  # another tool's comment: not looplint's business
    (tmp_path / "train.py").write_text("\n".join(lines) + "\n# looplint: noqa LL001\n")
    result = run_looplint("check", "train.py", cwd=tmp_path)
    assert result.returncode == 1  # the comment without its colon suppresses nothing
    assert result.stderr.splitlines() == [
        "looplint: warning: train.py:3: unknown rule code `LL099` in `# noqa` comment; "
        "`looplint rules` lists them",
        f"looplint: warning: train.py:{STEP_LINE}: `# noqa LL001` has no colon and suppresses "
        "nothing; write `# noqa: LL001`",
        f"looplint: warning: train.py:{len(lines) + 1}: malformed `# looplint: noqa` comment; "
        "write `# looplint: noqa` alone on its line, or `# looplint: noqa: LL001, LL002`",
    ]
    # warnings come from the cache too, and `-q` silences them
    again = run_looplint("check", "train.py", cwd=tmp_path)
    assert again.stderr == result.stderr
    assert run_looplint("check", "train.py", "-q", cwd=tmp_path).stderr == ""


def test_add_noqa_silences_every_current_finding(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    source = textwrap.dedent(
        '''\
        import torch

        model = torch.nn.Linear(4, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        total = 0.0
        for x, y in loader:
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            optimizer.step()  # noqa: E501
            total += loss  # noqa
            print("""text
        """)
        for epoch in range(3):
            opt = torch.optim.Adam(model.parameters()); print("""
            x""")
            for x, y in loader:
                opt.zero_grad()
                model(x).sum().backward()
                opt.step()
        '''
    )
    (tmp_path / "train.py").write_text(source)
    cell = {"cell_type": "code", "source": BUGGY, "metadata": {}}
    notebook = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "nb.ipynb").write_text(json.dumps(notebook))
    before = _codes(run_looplint, tmp_path, ".")
    assert sorted(code for _, code in before) == ["LL001", "LL001", "LL002", "LL006"]
    result = run_looplint("check", ".", "--add-noqa", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        "looplint: warning: nb.ipynb: no `# noqa` added: notebooks are not rewritten",
        "Added 2 noqa directives.",
    ]
    lines = (tmp_path / "train.py").read_text().splitlines()
    assert lines[8] == "    optimizer.step()  # noqa: E501, LL001"  # merged
    assert lines[9] == "    total += loss  # noqa  # noqa: LL006"  # a bare noqa is kept
    assert lines[13] == '    opt = torch.optim.Adam(model.parameters()); print("""'  # in a string
    assert _codes(run_looplint, tmp_path, "train.py") == [("train.py", "LL002")]
    assert run_looplint("check", "train.py", "--add-noqa", cwd=tmp_path).stderr == (
        "Added 0 noqa directives.\n"
    )


def test_ll000_is_a_rule(run_looplint: RunLooplint, tmp_path: Path) -> None:
    doc = run_looplint("explain", "LL000")
    assert doc.returncode == 0 and doc.stdout == UnreadableFile.documentation()
    assert doc.stdout.startswith("# unreadable-file (LL000)")
    assert "## Why is this bad?" in doc.stdout
    assert run_looplint("explain", "unreadable-file").stdout == doc.stdout
    (tmp_path / "broken.py").write_text(BROKEN)
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "bad_case.py").write_text(BROKEN)
    (tmp_path / "train.py").write_text(BUGGY)
    assert _codes(run_looplint, tmp_path, ".", "--ignore", "LL000") == [("train.py", "LL001")]
    # narrowing the rules never hides a file that was not checked
    assert _codes(run_looplint, tmp_path, ".", "--select", "LL002") == [
        ("broken.py", "LL000"), ("bad_case.py", "LL000"),
    ]  # fmt: skip
    (tmp_path / "pyproject.toml").write_text(
        '[tool.looplint.per-file-ignores]\n"tests/**" = ["LL000"]\n'
    )
    assert _codes(run_looplint, tmp_path, ".") == [("broken.py", "LL000"), ("train.py", "LL001")]


def test_ll000_documentation_example_is_real() -> None:
    from looplint.checking.checker import check_source
    from looplint.files.source import SourceFile
    from looplint.rule import strip_expectations

    invalid = strip_expectations(UnreadableFile.INVALID[0]) + "\n"
    (finding,) = check_source(SourceFile("example.py", invalid), []).findings or [None]
    assert finding is None  # no rules: the prefilter skips it; with a rule it is parsed
    from looplint.checking.runner import rules_for

    (finding,) = check_source(SourceFile("example.py", invalid), rules_for(["LL001"])).findings
    assert (finding.code, finding.line) == ("LL000", 1) and "expected ':'" in finding.message
    valid = strip_expectations(UnreadableFile.VALID[0]) + "\n"
    assert check_source(SourceFile("example.py", valid), rules_for(["LL001"])).findings == []
