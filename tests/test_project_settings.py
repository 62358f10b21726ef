"""Settings per file: the nearest `[tool.looplint]` above each checked file, as ruff does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import RunLooplint
from tests.test_cli import BUGGY


@pytest.fixture
def monorepo(tmp_path: Path) -> Path:
    """`a/` ignores LL001 and excludes `gen/`; `b/` has its own table; `c/` has none."""
    for name in ("a", "b", "c"):
        (tmp_path / name / "src").mkdir(parents=True)
        (tmp_path / name / "src" / "train.py").write_text(BUGGY)
    (tmp_path / "a" / "pyproject.toml").write_text(
        '[tool.looplint]\nignore = ["LL001"]\nextend-exclude = ["src/gen/"]\n'
    )
    (tmp_path / "a" / "src" / "gen").mkdir()
    (tmp_path / "a" / "src" / "gen" / "x.py").write_text(BUGGY)
    (tmp_path / "b" / "pyproject.toml").write_text('[tool.looplint]\nselect = ["LL002"]\n')
    return tmp_path


def _codes_by_file(run_looplint: RunLooplint, cwd: Path, *args: str) -> dict[str, set[str]]:
    result = run_looplint("check", *args, "--format", "json", "--exit-zero", cwd=cwd)
    assert result.returncode == 0, result.stderr
    found: dict[str, set[str]] = {}
    for finding in json.loads(result.stdout):
        found.setdefault(Path(finding["path"]).as_posix(), set()).add(finding["code"])
    return found


def test_each_file_uses_its_nearest_configuration(
    run_looplint: RunLooplint, monorepo: Path
) -> None:
    # a/ ignores LL001, b/ selects only LL002: only c/ (no configuration) reports
    assert _codes_by_file(run_looplint, monorepo, ".") == {"c/src/train.py": {"LL001"}}
    # the same from inside a project, and when named from the parent folder
    assert _codes_by_file(run_looplint, monorepo / "a" / "src", ".") == {}
    assert _codes_by_file(run_looplint, monorepo, "a/src") == {}
    assert _codes_by_file(run_looplint, monorepo, "c/src/train.py") == {
        "c/src/train.py": {"LL001"}
    }


def test_cache_lives_next_to_each_project(run_looplint: RunLooplint, monorepo: Path) -> None:
    run_looplint("check", ".", cwd=monorepo)
    assert (monorepo / "a" / ".looplint_cache").is_dir()
    assert (monorepo / "b" / ".looplint_cache").is_dir()
    assert not (monorepo / "a" / "src" / ".looplint_cache").exists()
    # c/ has no pyproject.toml: its files belong to the folder the run started in
    assert (monorepo / ".looplint_cache").is_dir()


def test_config_flag_applies_one_file_to_all(run_looplint: RunLooplint, monorepo: Path) -> None:
    (monorepo / "strict.toml").write_text("[tool.looplint]\nselect = ['ALL']\n")
    found = _codes_by_file(run_looplint, monorepo, ".", "--config", "strict.toml")
    assert set(found) == {"a/src/train.py", "a/src/gen/x.py", "b/src/train.py", "c/src/train.py"}


def test_show_settings(run_looplint: RunLooplint, monorepo: Path) -> None:
    result = run_looplint("check", "--show-settings", "a/src/train.py", cwd=monorepo)
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "# Settings for a/src/train.py"
    assert lines[1] == f"# configuration: {monorepo / 'a' / 'pyproject.toml'}"
    assert f'root = "{monorepo / "a"}"' in lines
    assert f'cache-dir = "{monorepo / "a" / ".looplint_cache"}"' in lines
    assert 'ignore = ["LL001"]' in lines and 'extend-exclude = ["src/gen/"]' in lines
    enabled = json.loads(next(line for line in lines if line.startswith("enabled = "))[10:])
    assert "LL001" not in enabled and {"LL000", "LL002"} <= set(enabled)
    flagged = run_looplint(
        "check", "--show-settings", "b/src/train.py", "--extend-select", "LL003", cwd=monorepo
    )
    assert 'enabled = ["LL000", "LL002", "LL003"]' in flagged.stdout.splitlines()
    defaults = run_looplint("check", "--show-settings", "c/src/train.py", cwd=monorepo).stdout
    assert "# configuration: none (defaults)" in defaults


def test_show_files_and_exclude_flags(run_looplint: RunLooplint, monorepo: Path) -> None:
    def files(*args: str, cwd: Path = monorepo) -> list[str]:
        result = run_looplint("check", "--show-files", *args, cwd=cwd)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    everything = ["a/src/train.py", "b/src/train.py", "c/src/train.py"]
    assert files() == everything  # a/src/gen/ excluded by a/pyproject.toml
    assert files("--extend-exclude", "b") == ["a/src/train.py", "c/src/train.py"]
    # path patterns on the command line are relative to where looplint runs
    assert files("--extend-exclude", "c/src/") == ["a/src/train.py", "b/src/train.py"]
    assert files("--extend-exclude", "src/", cwd=monorepo / "a") == []
    # --exclude replaces `exclude` (the defaults here); `extend-exclude` still applies
    (monorepo / "c" / "build").mkdir()
    (monorepo / "c" / "build" / "y.py").write_text("x = 1\n")
    assert "c/build/y.py" not in files()
    assert files("--exclude", "b") == ["a/src/train.py", "c/build/y.py", "c/src/train.py"]


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ('ignore = "LL008"',
         '`ignore` must be a list of strings, not str (write ignore = ["LL008"])'),
        ('select = ["LL042"]', "`select`: unknown rule selector `LL042`"),
        ('extend-select = ["LL001", 3]', "`extend-select` must be a list of strings"),
        ("exclude = 3", "`exclude` must be a list of strings, not int"),
        ('extend-exclude = "gen"', "`extend-exclude` must be a list of strings, not str"),
        ("cache-dir = 1", "`cache-dir` must be a string, not int"),
        ('per-file-ignores = ["x"]', "`per-file-ignores` must be a table"),
        ('[tool.looplint.per-file-ignores]\n"t/*" = "LL001"',
         '`per-file-ignores."t/*"` must be a list of strings'),
        ('[tool.looplint.per-file-ignores]\n"t/*" = ["LL0x"]',
         '`per-file-ignores."t/*"`: unknown rule selector `LL0x`'),
    ],
)  # fmt: skip
def test_config_errors_name_the_file_and_the_key(
    run_looplint: RunLooplint, monorepo: Path, config: str, needle: str
) -> None:
    (monorepo / "a" / "pyproject.toml").write_text(f"[tool.looplint]\n{config}\n")
    result = run_looplint("check", ".", cwd=monorepo)
    assert result.returncode == 2, result.stdout
    assert result.stderr.startswith(f"looplint: error: {monorepo / 'a' / 'pyproject.toml'}: ")
    assert needle in result.stderr, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.stderr


def test_looplint_toml_files_are_read_and_win_over_pyproject_as_ruff_toml_does(
    run_looplint: RunLooplint, monorepo: Path
) -> None:
    # a/ has a pyproject.toml ignoring LL001; a looplint.toml beside it wins
    (monorepo / "a" / "looplint.toml").write_text('select = ["LL001"]\n')
    # c/ had nothing: a .looplint.toml there applies, and wins over looplint.toml
    (monorepo / "c" / "looplint.toml").write_text('select = ["LL001"]\n')
    (monorepo / "c" / ".looplint.toml").write_text('ignore = ["LL001"]\n')
    found = _codes_by_file(run_looplint, monorepo, ".")
    assert found == {"a/src/train.py": {"LL001"}, "a/src/gen/x.py": {"LL001"}}
    settings = run_looplint("check", "--show-settings", "c/src/train.py", cwd=monorepo).stdout
    assert ".looplint.toml" in settings
    # the project root (and its cache) is the folder of the file that applies
    assert (monorepo / "c" / ".looplint_cache").is_dir()


def test_looplint_toml_takes_its_settings_at_the_top_level(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text(BUGGY)
    (tmp_path / "looplint.toml").write_text('[tool.looplint]\nignore = ["LL001"]\n')
    nested = run_looplint("check", ".", cwd=tmp_path)
    assert nested.returncode == 2
    assert "top level of looplint.toml, without a [tool.looplint] header" in nested.stderr
    (tmp_path / "looplint.toml").write_text('ignore = "LL001"\n')
    wrong = run_looplint("check", ".", cwd=tmp_path)
    assert wrong.returncode == 2
    assert wrong.stderr.startswith("looplint: error: ")
    assert "looplint.toml: `ignore` must be a list of strings" in wrong.stderr
    assert "[tool.looplint]" not in wrong.stderr
