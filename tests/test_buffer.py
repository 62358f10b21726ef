"""An editor buffer is checked with the settings of the file it will be saved as."""

from __future__ import annotations

from pathlib import Path

import pytest

from looplint.commands.buffer import buffer_fixes, check_buffer, fix_buffer, is_checkable
from looplint.errors import ConfigError

BUGGY = """\
import torch

optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
total = 0.0
for x, y in loader:
    loss = loss_fn(model(x), y)
    loss.backward()
    optimizer.step()
    total += loss * x.size(0)
"""


def _project(folder: Path, config: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pyproject.toml").write_text(config)
    return folder


def test_settings_come_from_the_nearest_pyproject_above_the_file(tmp_path: Path) -> None:
    _project(tmp_path, '[tool.looplint]\nignore = ["LL001"]\n')
    inner = _project(tmp_path / "sub", '[tool.looplint]\nignore = ["LL006"]\n')
    outer_codes = [f.code for f in check_buffer(str(tmp_path / "train.py"), BUGGY).findings]
    inner_codes = [f.code for f in check_buffer(str(inner / "train.py"), BUGGY).findings]
    assert outer_codes == ["LL006"]
    assert inner_codes == ["LL001"]


def test_per_file_ignores_hide_a_finding_and_its_fix(tmp_path: Path) -> None:
    config = '[tool.looplint.per-file-ignores]\n"scripts/*.py" = ["LL006"]\n'
    _project(tmp_path, config)
    script = str(tmp_path / "scripts" / "train.py")
    assert [f.code for f in check_buffer(script, BUGGY).findings] == ["LL001"]
    assert buffer_fixes(script, BUGGY) == [] and fix_buffer(script, BUGGY) is None

    elsewhere = str(tmp_path / "train.py")
    [fix] = buffer_fixes(elsewhere, BUGGY)
    assert fix.finding.code == "LL006" and "total += loss.item() * x" in fix.fixed_text
    assert fix_buffer(elsewhere, BUGGY) == fix.fixed_text


def test_a_bad_config_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    _project(tmp_path, "[tool.looplint]\nselect = [1]\n")
    with pytest.raises(ConfigError, match=r"pyproject\.toml: \[tool\.looplint\] `select`"):
        check_buffer(str(tmp_path / "train.py"), BUGGY)


def test_excluded_files_are_left_alone_as_with_force_exclude(tmp_path: Path) -> None:
    _project(tmp_path, '[tool.looplint]\nextend-exclude = ["legacy/"]\n')
    (tmp_path / ".gitignore").write_text("generated_*.py\n")
    venv = tmp_path / ".venv"
    (venv / "lib").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / "legacy").mkdir()
    left_alone = [
        tmp_path / "legacy" / "train.py",
        tmp_path / "generated_train.py",
        venv / "lib" / "train.py",
    ]
    for path in [*left_alone, tmp_path / "train.py"]:
        path.write_text(BUGGY)
    for path in left_alone:
        assert check_buffer(str(path), BUGGY).findings == (), path
        assert buffer_fixes(str(path), BUGGY) == [] and fix_buffer(str(path), BUGGY) is None
    checked = check_buffer(str(tmp_path / "train.py"), BUGGY)
    assert [f.code for f in checked.findings] == ["LL001", "LL006"]
    # Not saved yet: nothing on disk to exclude.
    assert check_buffer(str(tmp_path / "legacy" / "new.py"), BUGGY).findings != ()


def test_only_python_buffers_are_checked() -> None:
    assert is_checkable("/p/train.py")
    assert not is_checkable("/p/notebook.ipynb") and not is_checkable("README.md")
