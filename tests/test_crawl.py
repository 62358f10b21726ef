"""Never crash on real code: the interpreter's standard library and installed packages.

The slowest test of the suite (about two minutes on two cores): it runs the real
CLI over every `.py` file of the standard library and of this environment's
site-packages (torch included when installed) and requires no internal error.
It is marked `crawl` and runs only with `--run-crawl` (`.ci/run` does so).
The trainer libraries of the `test-integrations` extra (transformers alone is as
large as torch) are left out: they would add about half again to the slowest
test, and `benchmarks/` already runs looplint over pinned copies of them.
"""

from __future__ import annotations

import json
import sysconfig
from pathlib import Path

import pytest

from looplint.files.discovery import FileFinder
from tests.conftest import RunLooplint

pytestmark = pytest.mark.crawl

TRAINER_LIBRARIES = frozenset(
    {"accelerate", "lightning", "pytorch_lightning", "timm", "torchvision", "transformers"}
)


def crawl_roots() -> list[str]:
    """The standard library, and site-packages without the trainer libraries."""
    stdlib = sysconfig.get_paths()["stdlib"]
    purelib = Path(sysconfig.get_paths()["purelib"])
    if not any((purelib / name).is_dir() for name in TRAINER_LIBRARIES):
        return sorted({stdlib, str(purelib)})
    entries = [
        str(entry)
        for entry in sorted(purelib.iterdir())
        if entry.name not in TRAINER_LIBRARIES and (entry.is_dir() or entry.suffix == ".py")
    ]
    return [stdlib, *entries]


def test_stdlib_and_site_packages_never_crash(run_looplint: RunLooplint, tmp_path: Path) -> None:
    roots = crawl_roots()
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
