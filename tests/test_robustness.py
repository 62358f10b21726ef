"""Bad input never crashes looplint: one clear finding or error line, and the run goes on."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import libcst as cst
import pytest
from click.testing import CliRunner
from looplint.rules.missing_zero_grad import MissingZeroGrad

from looplint.analysis.facts import ModuleFacts
from looplint.checking import runner
from looplint.checking.checker import check_source
from looplint.commands import cli
from looplint.files.source import SourceFile
from looplint.rule import Rule, Violation
from tests.conftest import FIXTURES, RunLooplint
from tests.test_cli import BUGGY, STEP_LINE

MARKER = "import torch.optim\n"


def _write_hostile_inputs(root: Path) -> None:
    (root / "empty.py").write_text("")
    (root / "comments.py").write_text("# only a comment\n# and another\n")
    (root / "bom.py").write_bytes(b"\xef\xbb\xbf" + BUGGY.encode())
    (root / "crlf.py").write_bytes(BUGGY.replace("\n", "\r\n").encode())
    mixed = BUGGY.splitlines(keepends=True)
    (root / "mixed.py").write_bytes(
        "".join(
            line.replace("\n", "\r\n") if i % 2 else line for i, line in enumerate(mixed)
        ).encode()
    )
    (root / "latin1.py").write_bytes(b"# -*- coding: latin-1 -*-\n# caf\xe9\n" + BUGGY.encode())
    (root / "undecodable.py").write_bytes(MARKER.encode() + b"x = '\xff\xfe'\n")
    (root / "binary.py").write_bytes(b"\x7fELF\x00\x00optim")
    (root / "python2.py").write_text(MARKER + "print 'hello'\n")
    # ~21 MB of generated code that builds an optimizer: screening keeps it, LibCST must not
    (root / "huge.py").write_text(MARKER + "opt = torch.optim.SGD(p)\n" + "x = 1\n" * 3_500_000)
    (root / "huge_unrelated.py").write_text("x = 1\n" * 3_500_000)
    (root / "nested_blocks.py").write_text(
        MARKER + "".join(" " * i + "if x:\n" for i in range(2000)) + " " * 2000 + "pass\n"
    )
    (root / "nested_150_blocks.py").write_text(
        MARKER + "".join(" " * i + "if x:\n" for i in range(150)) + " " * 150 + "pass\n"
    )
    (root / "nested_expr.py").write_text(MARKER + "x = " + "(" * 2000 + "1" + ")" * 2000 + "\n")
    (root / "long_chain.py").write_text(MARKER + "x = (1\n" + "    + 1\n" * 20000 + ")\n")
    (root / "folder.py").mkdir()
    (root / "folder.py" / "inside.py").write_text(BUGGY)
    os.mkfifo(root / "fifo.py")
    os.symlink(root / "loop.py", root / "loop.py")
    os.symlink(root / "missing-target", root / "dangling.py")
    for name, nb in {
        "nb_invalid.ipynb": "{oops",
        "nb_no_cells.ipynb": json.dumps({"metadata": {}}),
        "nb_string_source.ipynb": json.dumps({"cells": [{"cell_type": "code", "source": BUGGY}]}),
        "nb_markdown_only.ipynb": json.dumps(
            {"cells": [{"cell_type": "markdown", "source": ["# hi"]}]}
        ),
    }.items():
        (root / name).write_text(nb)


def test_hostile_inputs(run_looplint: RunLooplint, tmp_path: Path) -> None:
    _write_hostile_inputs(tmp_path)
    result = run_looplint("check", ".", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stderr == ""
    found: dict[str, list[tuple[str, int, str]]] = {}
    for f in json.loads(result.stdout):
        found.setdefault(Path(f["path"]).name, []).append((f["code"], f["line"], f["message"]))

    def only(name: str) -> tuple[str, int, str]:
        assert len(found.get(name, [])) == 1, (name, found.get(name))
        return found[name][0]

    for clean in ("empty.py", "comments.py", "huge_unrelated.py", "nb_markdown_only.ipynb"):
        assert clean not in found
    for linted in ("bom.py", "crlf.py", "mixed.py", "inside.py", "nb_string_source.ipynb"):
        assert only(linted)[:2] == ("LL001", STEP_LINE), linted
    assert only("latin1.py")[:2] == ("LL001", STEP_LINE + 2)
    expectations = {
        "undecodable.py": "decode",
        "binary.py": "binary",
        "python2.py": "Missing parentheses",
        "huge.py": "too large",
        "nested_blocks.py": "too large",  # 2,000 levels need 2 MB of indentation
        "nested_150_blocks.py": "too many levels of indentation",
        "nested_expr.py": "nested parentheses",
        "long_chain.py": "too deeply",
        "fifo.py": "not a regular file",
        "loop.py": "cannot read",
        "dangling.py": "cannot read",
        "nb_invalid.ipynb": "invalid notebook JSON",
        "nb_no_cells.ipynb": "no `cells` list",
    }
    for name, needle in expectations.items():
        code, _, message = only(name)
        assert code == "LL000" and needle in message, (name, message)
        assert "\n" not in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(run_looplint: RunLooplint, tmp_path: Path) -> None:
    target = tmp_path / "secret.py"
    target.write_text(BUGGY)
    target.chmod(0)
    try:
        result = run_looplint("check", "secret.py", cwd=tmp_path)
    finally:
        target.chmod(stat.S_IRUSR | stat.S_IWUSR)
    assert result.returncode == 1 and "LL000" in result.stdout and "cannot read" in result.stdout


class ExplodingRule(Rule):
    """A rule with a bug, to prove one rule's failure does not stop the others."""

    identity = MissingZeroGrad.identity.__class__("LL099", "exploding", "A rule that crashes.")

    def check(self, facts: ModuleFacts) -> list[Violation]:  # type: ignore[override]
        raise KeyError("boom")


def test_a_crashing_rule_is_reported_and_the_others_run() -> None:
    result = check_source(SourceFile("t.py", BUGGY), [ExplodingRule(), MissingZeroGrad()])
    codes = sorted((f.code, f.message) for f in result.findings)
    assert (
        codes[0][0] == "LL000"
        and "internal error in LL099" in codes[0][1]
        and "KeyError" in codes[0][1]
    )
    assert codes[1][0] == "LL001"
    assert result.tracebacks and "boom" in result.tracebacks[0]


def test_internal_error_exit_code_and_debug_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(runner, "rules_for", lambda codes: [ExplodingRule(), MissingZeroGrad()])
    (tmp_path / "t.py").write_text(BUGGY)
    plain = CliRunner().invoke(cli.main, ["check", str(tmp_path / "t.py"), "--jobs", "1"])
    assert plain.exit_code == 2
    assert "internal error while checking" in plain.output and "Traceback" not in plain.output
    debug = CliRunner().invoke(
        cli.main, ["check", str(tmp_path / "t.py"), "--jobs", "1", "--debug"]
    )
    assert (
        debug.exit_code == 2 and "Traceback" in debug.output and "KeyError: 'boom'" in debug.output
    )


def test_linted_code_is_never_imported_or_executed(run_looplint: RunLooplint) -> None:
    safety = FIXTURES / "safety"
    for leftover in (*safety.glob("*.executed"), *safety.glob("*.evaluated")):
        leftover.unlink()
    result = run_looplint("check", str(safety), "--jobs", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not list(safety.glob("*.executed")) and not list(safety.glob("*.evaluated"))


def test_parse_of_every_fixture_round_trips() -> None:
    for path in FIXTURES.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert cst.parse_module(text).code == text
