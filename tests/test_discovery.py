"""Which files a run looks at."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from looplint.errors import ConfigError
from looplint.files.discovery import FileFinder


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x = 1\n")


def test_walk_skips_noise(tmp_path: Path) -> None:
    _touch(
        tmp_path,
        "train.py", "nb.ipynb", "notes.txt", "pkg/model.py", ".hidden/a.py", "build/b.py",
        "dist/c.py", "__pycache__/d.py", "node_modules/e.py", "lib/site-packages/f.py",
        "env/g.py", "ignored/h.py",
        "pkg/generated_1.py",
    )  # fmt: skip
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr\n")
    (tmp_path / ".gitignore").write_text("ignored/\n")
    (tmp_path / "pkg" / ".gitignore").write_text("generated_*.py\n")
    found = {
        Path(p).relative_to(tmp_path).as_posix()
        for p in FileFinder(tmp_path).files([str(tmp_path)])
    }
    assert found == {"train.py", "nb.ipynb", "pkg/model.py"}


def test_explicit_file_and_folder_inside_excluded_parent(tmp_path: Path) -> None:
    _touch(tmp_path, ".cache/src/a.py", "build/x.py")
    finder = FileFinder(tmp_path)
    assert [Path(p).name for p in finder.files([str(tmp_path / ".cache" / "src")])] == ["a.py"]
    assert list(finder.files([str(tmp_path / "build" / "x.py")])) == [
        str(tmp_path / "build" / "x.py")
    ]
    assert list(finder.files([str(tmp_path / "build" / "x.py")], force_exclude=True)) == []


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope"):
        list(FileFinder(tmp_path).files([str(tmp_path / "nope")]))


def test_symlink_loop_and_folder_named_like_a_file(tmp_path: Path) -> None:
    (tmp_path / "x.py").mkdir()
    _touch(tmp_path, "x.py/inner.py")
    os.symlink(tmp_path / "loop.py", tmp_path / "loop.py")
    os.symlink(tmp_path, tmp_path / "x.py" / "back")
    found = sorted(Path(p).name for p in FileFinder(tmp_path).files([str(tmp_path)]))
    assert found == ["inner.py", "loop.py"]  # the loop is reported by the checker as LL000


def test_folder_named_explicitly_inside_an_ignored_tree(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / ".gitignore").write_text("/versions\n*.generated.py\n")
    _touch(tmp_path, "versions/3.11/lib/a.py", "versions/3.11/lib/b.generated.py", "src/c.py")
    _touch(tmp_path, "src/d.generated.py")
    finder = FileFinder(tmp_path)
    named = [Path(p).name for p in finder.files([str(tmp_path / "versions" / "3.11")])]
    assert named == ["a.py", "b.generated.py"]
    # an outer .gitignore still applies below a named folder it does not ignore
    assert [Path(p).name for p in finder.files([str(tmp_path / "src")])] == ["c.py"]
