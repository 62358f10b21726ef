"""`looplint.integrations` ships under the single `looplint` namespace and imports nothing heavy.

The folder is `runtime_check/integrations/`, mapped by setuptools' `package-dir`;
a wheel built from the tree must carry it as `looplint/integrations/`. Linting
(and importing looplint's packages) must never import torch or a trainer library.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO

HEAVY = ("torch", "lightning", "pytorch_lightning", "transformers", "accelerate")

_LINT_THEN_IMPORT = """
import sys
from looplint.commands.cli import main
sys.argv = ["looplint", "check", sys.argv[1]]
try:
    main()
except SystemExit:
    pass
import looplint.integrations, looplint.runtime_check, looplint.runtime_check.pytest_plugin
print("HEAVY", sorted(name for name in {heavy!r} if name in sys.modules))
"""


def test_linting_and_importing_looplint_import_no_heavy_library() -> None:
    script = _LINT_THEN_IMPORT.format(heavy=HEAVY)
    fixture = next(FIXTURES.rglob("*.py"))
    result = subprocess.run(
        [sys.executable, "-c", script, str(fixture)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    assert result.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_wheel_ships_integrations_under_the_looplint_namespace(tmp_path: Path) -> None:
    """Built from a clean copy of the sources: a stale `build/` could hide a missing module."""
    pytest.importorskip("setuptools")
    source = tmp_path / "source"
    for name in ("pyproject.toml", "README.md"):
        source.mkdir(exist_ok=True)
        shutil.copy(REPO / name, source / name)
    for folder in ("looplint", "rules", "runtime_check"):
        shutil.copytree(
            REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__")
        )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(source),
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("looplint-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("__init__", "lightning", "pytorch_lightning", "transformers", "trainer_run"):
        assert f"looplint/integrations/{module}.py" in names
    assert "looplint/integrations/py.typed" in names
    assert not any(name.startswith("looplint/runtime_check/integrations/") for name in names)
