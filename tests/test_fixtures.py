"""Every fixture, through the real CLI: exactly the expected findings, nothing else."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES, REPO, looplint_command
from tests.expectations import expected_findings

FIXTURE_FILES = sorted(
    p for p in FIXTURES.rglob("*") if p.suffix in (".py", ".ipynb") and "__pycache__" not in p.parts
)


@pytest.fixture(scope="module")
def fixture_report() -> dict[str, list[dict[str, Any]]]:
    """One real `looplint check fixtures --format json` run, findings grouped by file."""
    completed = subprocess.run(
        [*looplint_command(), "check", "fixtures", "--format", "json", "--exit-zero"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    grouped: dict[str, list[dict[str, Any]]] = {}
    for finding in json.loads(completed.stdout):
        grouped.setdefault(Path(finding["path"]).as_posix(), []).append(finding)
    return grouped


def test_fixture_corpus_is_substantial() -> None:
    flagged = [p for p in FIXTURE_FILES if expected_findings(p)]
    clean = [p for p in FIXTURE_FILES if not expected_findings(p)]
    assert len(flagged) >= 25 and len(clean) >= 40
    for code in ("LL001", "LL002", "LL003", "LL004"):
        assert any(code == e[2] for p in flagged for e in expected_findings(p)), code


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda p: p.relative_to(FIXTURES).as_posix())
def test_fixture(path: Path, fixture_report: dict[str, list[dict[str, Any]]]) -> None:
    relative = path.relative_to(REPO).as_posix()
    found = fixture_report.get(relative, [])
    actual = {(f.get("cell"), f["line"], f["code"]) for f in found}
    expected = expected_findings(path)
    messages = "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in found)
    assert actual == expected, f"unexpected findings in {relative}:\n{messages}"


def test_output_does_not_depend_on_the_hash_seed(
    fixture_report: dict[str, list[dict[str, Any]]],
) -> None:
    """Two runs of the same code must print the same findings, word for word: a message
    built from a set once named `model` or `model.module` depending on `PYTHONHASHSEED`."""
    seeded = subprocess.run(
        [*looplint_command(), "check", "fixtures", "--format", "json", "--exit-zero",
         "--no-cache"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
    )  # fmt: skip
    assert seeded.returncode == 0, seeded.stderr
    grouped: dict[str, list[dict[str, Any]]] = {}
    for finding in json.loads(seeded.stdout):
        grouped.setdefault(Path(finding["path"]).as_posix(), []).append(finding)
    assert grouped == fixture_report
