"""Never crash on real code: the interpreter's standard library and installed packages.

The slowest test of the suite (about two minutes on two cores): it runs the real
CLI over every `.py` file of the standard library and of this environment's
site-packages (torch included when installed) and requires no internal error.
It is marked `crawl` and runs only with `--run-crawl` (`.ci/run` does so).
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest

from looplint.discovery import FileFinder
from tests.conftest import RunLooplint

pytestmark = pytest.mark.crawl


def test_stdlib_and_site_packages_never_crash(run_looplint: RunLooplint, tmp_path: Path) -> None:
    roots = sorted({sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["purelib"]})
    walked = sum(1 for _ in FileFinder(tmp_path).files(roots))
    assert walked > 1500, f"only {walked} files found under {roots}: the crawl would prove nothing"
    result = run_looplint("check", *roots, "--format", "json", "--no-cache", cwd=tmp_path)
    assert result.returncode in (0, 1), result.stderr
    assert result.stderr == "", result.stderr
    findings = json.loads(result.stdout)
    internal = [
        f for f in findings if "internal error" in f["message"] or "crashed" in f["message"]
    ]
    assert internal == []
    for finding in findings:
        assert "\n" not in finding["message"] and finding["line"] >= 1
