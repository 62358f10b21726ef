"""The editors' path: a buffer on standard input, fixed or diffed; reports written anywhere."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import RunLooplint
from tests.test_cli import BUGGY, LEAKY


def test_fix_writes_the_fixed_buffer_to_stdout(run_looplint: RunLooplint, tmp_path: Path) -> None:
    result = run_looplint(
        "check", "--stdin-filename", "train.py", "--fix", cwd=tmp_path, stdin=LEAKY
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == LEAKY.replace("total += loss", "total += loss.item()")
    assert "All checks passed!" in result.stderr
    assert not (tmp_path / "train.py").exists()  # nothing written to disk


def test_fix_with_remaining_findings_reports_them_on_stderr(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    source = LEAKY.replace("    optimizer.zero_grad()\n", "")
    result = run_looplint(
        "check", "--stdin-filename", "train.py", "--fix", cwd=tmp_path, stdin=source
    )
    assert result.returncode == 1
    assert result.stdout == source.replace("total += loss", "total += loss.item()")
    assert "train.py:9:5: LL001" in result.stderr and "Found 1 finding." in result.stderr


def test_fix_without_fixes_echoes_the_buffer_unchanged(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    result = run_looplint("check", "--stdin-filename", "t.py", "--fix", cwd=tmp_path, stdin=BUGGY)
    assert result.returncode == 1 and result.stdout == BUGGY
    assert "LL001" in result.stderr


def test_diff_prints_the_fix_and_exits_1(run_looplint: RunLooplint, tmp_path: Path) -> None:
    result = run_looplint(
        "check", "--stdin-filename", "src/train.py", "--diff", cwd=tmp_path, stdin=LEAKY
    )
    assert result.returncode == 1
    assert result.stdout.splitlines()[:2] == ["--- a/src/train.py", "+++ b/src/train.py"]
    assert "-    total += loss\n+    total += loss.item()\n" in result.stdout
    clean = run_looplint("check", "--stdin-filename", "t.py", "--diff", cwd=tmp_path, stdin=BUGGY)
    assert clean.returncode == 0 and clean.stdout == ""


def test_stdin_uses_the_settings_of_the_file_it_names(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    (project / "pyproject.toml").write_text('[tool.looplint]\nignore = ["LL001"]\n')
    named = run_looplint("check", "--stdin-filename", "proj/train.py", cwd=tmp_path, stdin=BUGGY)
    assert named.returncode == 0, named.stdout
    elsewhere = run_looplint("check", "--stdin-filename", "train.py", cwd=tmp_path, stdin=BUGGY)
    assert elsewhere.returncode == 1


def test_output_file_in_a_missing_folder_is_created(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text(BUGGY)
    result = run_looplint(
        "check", "--format", "json", "--output-file", "nodir/deeper/out.json", cwd=tmp_path
    )
    assert result.returncode == 1 and result.stdout == "" and result.stderr == ""
    report = (tmp_path / "nodir" / "deeper" / "out.json").read_text()
    assert json.loads(report)[0]["code"] == "LL001"


def test_unwritable_output_file_is_a_one_line_error(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text(BUGGY)
    (tmp_path / "afile").write_text("")
    result = run_looplint("check", "--output-file", "afile/out.txt", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("looplint: error: afile/out.txt: cannot write the report")
    assert len(result.stderr.splitlines()) == 1


def test_force_exclude_passes_an_excluded_buffer_through(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.looplint]\nextend-exclude = ["legacy/"]\n')
    args = ("check", "--stdin-filename", "legacy/train.py", "--force-exclude")
    skipped = run_looplint(*args, cwd=tmp_path, stdin=LEAKY)
    assert skipped.returncode == 0 and skipped.stdout == "" and skipped.stderr == ""
    fixed = run_looplint(*args, "--fix", cwd=tmp_path, stdin=LEAKY)
    assert fixed.returncode == 0 and fixed.stdout == LEAKY
    checked = run_looplint("check", "--stdin-filename", "legacy/train.py", "--fix",
                           cwd=tmp_path, stdin=LEAKY)  # fmt: skip
    assert "total += loss.item()" in checked.stdout  # named without --force-exclude: checked
