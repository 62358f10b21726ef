"""What a person sees in a terminal: full and concise output, colour, summaries, `-q`."""

from __future__ import annotations

import json
import os
import pty
import subprocess
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, RunLooplint, looplint_command
from tests.test_cli import BUGGY, FIXED, LEAKY, STEP_LINE

ESC = "\x1b["


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(BUGGY)
    (tmp_path / "leaky.py").write_text(LEAKY)
    return tmp_path


def _on_terminal(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run looplint with its standard output on a pseudo-terminal, as a shell would."""
    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [*looplint_command(), *args],
            cwd=cwd,
            stdout=follower,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    finally:
        os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done writing
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    returncode = process.wait(timeout=300)
    return returncode, b"".join(chunks).decode().replace("\r\n", "\n")


def test_concise_when_piped(run_looplint: RunLooplint, project: Path) -> None:
    result = run_looplint("check", cwd=project)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0].startswith("leaky.py:11:5: LL006 [*] `total += loss`")
    assert lines[1].startswith(f"train.py:{STEP_LINE}:5: LL001 `optimizer.step()`")
    assert lines[2] == "Found 2 findings (1 fixable with `--fix`)."
    assert len(lines) == 3 and ESC not in result.stdout


def test_full_on_a_terminal_with_colour(project: Path) -> None:
    returncode, out = _on_terminal(project, "check", "train.py")
    assert returncode == 1
    assert ESC in out  # coloured, because this is a terminal
    plain = _strip_ansi(out)
    assert plain.splitlines()[:6] == [
        f"train.py:{STEP_LINE}:5: LL001 `optimizer.step()` runs every iteration but nothing in "
        "the loop clears `optimizer`'s gradients, so they pile up across batches",
        "  |",
        f"{STEP_LINE} |     optimizer.step()",
        "  |     ^^^^^^^^^^^^^^^^ LL001",
        "  |",
        "  = help: Call `optimizer.zero_grad()` once per iteration",
    ]
    assert plain.rstrip().endswith("Found 1 finding.")


def test_no_color_and_color_flags(project: Path, run_looplint: RunLooplint) -> None:
    _, out = _on_terminal(project, "check", "train.py", env={"NO_COLOR": "1"})
    assert ESC not in out and "^^^^" in out
    _, never = _on_terminal(project, "check", "train.py", "--color", "never")
    assert ESC not in never
    forced = run_looplint("check", "train.py", "--color", "always", cwd=project)
    assert ESC in forced.stdout
    concise = _on_terminal(project, "check", "train.py", "--output-format", "concise")[1]
    assert "^^^^" not in concise and f"train.py:{STEP_LINE}:5: LL001" in _strip_ansi(concise)


def test_full_format_when_asked_shows_the_caret_span(
    run_looplint: RunLooplint, project: Path
) -> None:
    out = run_looplint("check", "leaky.py", "--output-format", "full", cwd=project).stdout
    assert "11 |     total += loss\n   |     ^^^^^^^^^^^^^ LL006" in out
    assert "= help: Accumulate `loss.item()` (or `loss.detach()`)" in out
    assert "leaky.py:11:5: LL006 [*] " in out
    # `--format` is the same option
    same = run_looplint("check", "leaky.py", "--format", "full", cwd=project).stdout
    assert same == out


def test_all_checks_passed_and_quiet(run_looplint: RunLooplint, tmp_path: Path) -> None:
    (tmp_path / "clean.py").write_text(FIXED)
    clean = run_looplint("check", cwd=tmp_path)
    assert clean.returncode == 0 and clean.stdout == "All checks passed!\n"
    quiet = run_looplint("check", "-q", cwd=tmp_path)
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""
    (tmp_path / "train.py").write_text(BUGGY)
    findings_only = run_looplint("check", "--quiet", cwd=tmp_path)
    assert findings_only.returncode == 1
    assert findings_only.stdout.splitlines() == [
        line for line in run_looplint("check", cwd=tmp_path).stdout.splitlines()
        if not line.startswith("Found ")
    ]  # fmt: skip


def test_warning_when_no_python_files(run_looplint: RunLooplint, tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.md").write_text("# notes\n")
    result = run_looplint("check", "docs", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stderr == "looplint: warning: no Python files found under docs\n"
    assert run_looplint("check", "docs", "-q", cwd=tmp_path).stderr == ""


def test_statistics_as_json(run_looplint: RunLooplint, project: Path) -> None:
    result = run_looplint("check", "--statistics", "--output-format", "json", cwd=project)
    assert result.returncode == 1
    rows = json.loads(result.stdout)
    assert rows == [
        {"code": "LL001", "name": "missing-zero-grad", "count": 1, "fixable": False,
         "fixable_count": 0},
        {"code": "LL006", "name": "loss-keeps-graph", "count": 1, "fixable": True,
         "fixable_count": 1},
    ]  # fmt: skip
    # `fixable` means what it means in each finding: a boolean, never a count
    findings = json.loads(run_looplint("check", "--format", "json", cwd=project).stdout)
    for row in rows:
        same = [f["fixable"] for f in findings if f["code"] == row["code"]]
        assert row["fixable"] is any(same) and row["fixable_count"] == sum(same)


def test_fixable_marker_is_in_json_and_matches_what_fix_does(
    run_looplint: RunLooplint, project: Path
) -> None:
    findings = json.loads(run_looplint("check", "--format", "json", cwd=project).stdout)
    assert {f["code"]: f["fixable"] for f in findings} == {"LL001": False, "LL006": True}
    fixed = run_looplint("check", "--fix", cwd=project)
    assert fixed.stdout.splitlines()[-1] == "Found 1 finding."
    assert "total += loss.item()" in (project / "leaky.py").read_text()


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_every_help_line_says_what_to_do_with_what(run_looplint: RunLooplint) -> None:
    result = run_looplint(
        "check", "--no-cache", "--output-format", "full", str(FIXTURES), "--exit-zero"
    )
    helps = [line for line in result.stdout.splitlines() if line.lstrip(" ").startswith("= help")]
    assert helps
    # "save both" alone leaves the reader guessing: both of what?
    saves = [line for line in helps if "Save both" in line]
    assert saves and all(line.count(".state_dict()`") == 2 for line in saves), saves
