"""The result cache: fast when nothing changed, never wrong when something did."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import multiprocessing
import shutil
from pathlib import Path

import pytest

from looplint.checking.cache import _FORMAT as CACHE_FORMAT
from looplint.checking.cache import ResultCache
from looplint.checking.runner import run
from tests.conftest import RunLooplint
from tests.test_cli import BUGGY, FIXED


def _results_file(root: Path) -> Path:
    (found,) = (root / ".looplint_cache").glob("results-*.json")
    return found


def test_cache_is_created_ignored_by_git_and_reused(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.looplint]\n")
    (tmp_path / "train.py").write_text(BUGGY)
    first = run_looplint("check", "train.py", cwd=tmp_path)
    assert first.returncode == 1
    cache_dir = tmp_path / ".looplint_cache"
    assert (cache_dir / ".gitignore").read_text().strip().endswith("*")
    entries = json.loads(_results_file(tmp_path).read_text())["entries"]
    assert [e["findings"][0]["code"] for e in entries.values()] == ["LL001"]
    second = run_looplint("check", "train.py", cwd=tmp_path)
    assert second.stdout == first.stdout and second.returncode == 1


def test_cached_findings_follow_content_changes(tmp_path: Path) -> None:
    target = tmp_path / "train.py"
    target.write_text(BUGGY)
    cache = ResultCache(tmp_path / "cache", {"LL001"})
    assert [f.code for f in run([str(target)], {"LL001"}, 1, cache).findings] == ["LL001"]
    target.write_text(FIXED)
    fresh = ResultCache(tmp_path / "cache", {"LL001"})
    outcome = run([str(target)], {"LL001"}, 1, fresh)
    assert outcome.findings == [] and outcome.cached == 0
    again = run([str(target)], {"LL001"}, 1, ResultCache(tmp_path / "cache", {"LL001"}))
    assert again.cached == 1 and again.findings == []


def test_touch_without_change_is_still_a_hit(tmp_path: Path) -> None:
    target = tmp_path / "train.py"
    target.write_text(BUGGY)
    run([str(target)], {"LL001"}, 1, ResultCache(tmp_path / "c", {"LL001"}))
    target.write_text(BUGGY)  # new mtime, same bytes
    outcome = run([str(target)], {"LL001"}, 1, ResultCache(tmp_path / "c", {"LL001"}))
    assert outcome.cached == 1 and [f.code for f in outcome.findings] == ["LL001"]


def test_settings_are_part_of_the_key(run_looplint: RunLooplint, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(BUGGY)
    assert run_looplint("check", "train.py", "--select", "LL002", cwd=tmp_path).returncode == 0
    assert run_looplint("check", "train.py", cwd=tmp_path).returncode == 1
    assert len(list((tmp_path / ".looplint_cache").glob("results-*.json"))) == 2


def test_corrupt_or_foreign_cache_is_ignored_and_rewritten(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    (tmp_path / "train.py").write_text(BUGGY)
    run_looplint("check", "train.py", cwd=tmp_path)
    results = _results_file(tmp_path)
    for garbage in ("{truncated", json.dumps({"format": 99, "entries": []}), json.dumps([1, 2])):
        results.write_text(garbage)
        result = run_looplint("check", "train.py", cwd=tmp_path)
        assert result.returncode == 1 and "LL001" in result.stdout and result.stderr == ""
        assert json.loads(results.read_text())["format"] == CACHE_FORMAT


def test_no_cache_and_cache_dir(run_looplint: RunLooplint, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(BUGGY)
    assert run_looplint("check", "train.py", "--no-cache", cwd=tmp_path).returncode == 1
    assert not (tmp_path / ".looplint_cache").exists()
    elsewhere = tmp_path / "elsewhere"
    assert (
        run_looplint("check", "train.py", "--cache-dir", str(elsewhere), cwd=tmp_path).returncode
        == 1
    )
    assert list(elsewhere.glob("results-*.json")) and not (tmp_path / ".looplint_cache").exists()


def _lint_into_shared_cache(args: tuple[str, str]) -> int:
    folder, cache_dir = args
    paths = sorted(str(p) for p in Path(folder).glob("*.py"))
    return len(run(paths, {"LL001"}, 1, ResultCache(Path(cache_dir), {"LL001"})).findings)


def test_concurrent_runs_never_corrupt_the_cache(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"t{i}.py").write_text(BUGGY if i % 2 else FIXED)
    cache_dir = tmp_path / "cache"
    with multiprocessing.get_context("fork").Pool(4) as pool:
        counts = pool.map(_lint_into_shared_cache, [(str(tmp_path), str(cache_dir))] * 8)
    assert counts == [15] * 8
    data = json.loads(next(cache_dir.glob("results-*.json")).read_text())
    assert len(data["entries"]) == 30
    assert not list(cache_dir.glob(".tmp-*"))


def test_an_edit_anywhere_in_the_engine_or_rules_starts_a_new_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An editable install must never serve results computed by older analysis code: the
    fingerprint covers every layer of `looplint/` (not only the cache's own folder) and
    `rules/`."""
    import looplint
    from looplint.checking import cache

    package = Path(looplint.__file__).parent
    copy = tmp_path / "copy"
    shutil.copytree(package, copy / "looplint")
    before = cache.fingerprint(["LL001"])
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str) -> importlib.machinery.ModuleSpec | None:
        spec = real_find_spec(name)
        if name == "looplint" and spec is not None:
            spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
            spec.submodule_search_locations = [str(copy / "looplint")]
        return spec

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert cache.fingerprint(["LL001"]) == before
    trees = copy / "looplint" / "analysis" / "trees.py"
    trees.write_text(trees.read_text(encoding="utf-8") + "\n# edited\n", encoding="utf-8")
    assert cache.fingerprint(["LL001"]) != before


def test_a_warm_run_never_imports_libcst(tmp_path: Path) -> None:
    """Importing LibCST alone costs more than a warm run of a large codebase should take:
    a run served entirely from the cache (findings and cross-module bindings included)
    must not load it."""
    import subprocess
    import sys

    (tmp_path / "train.py").write_text(BUGGY)
    (tmp_path / "helpers.py").write_text("def train(model, opt):\n    opt.step()\n")
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['looplint', 'check', '--exit-zero', sys.argv[1]]\n"
        "try:\n"
        "    runpy.run_module('looplint', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('LIBCST' if 'libcst' in sys.modules else 'NO-LIBCST', file=sys.stderr)\n"
    )

    def loaded() -> str:
        proc = subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path)],
            capture_output=True, text=True, cwd=tmp_path, check=True,
        )  # fmt: skip
        return proc.stderr.strip().splitlines()[-1]

    assert loaded() == "LIBCST"  # cold: the files are parsed
    assert loaded() == "NO-LIBCST"  # warm: everything comes from the cache
