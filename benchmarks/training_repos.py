"""Run looplint over the 69 pinned training repositories and judge every finding.

Why: the wheel corpus of `corpus.py` is library code; training loops live in research and
example repositories, and that is where a false alarm would make a user turn looplint off.
`../shared/training-repos/` holds 69 of them at pinned commits (`MANIFEST.md` lists them,
`unpack.sh DIR` unpacks the archive). This script unpacks it once into a gitignored cache,
lints it with the real CLI in a subprocess, and writes every finding with its hand-written
verdict from `benchmarks/training_verdicts.toml` into the `training-repos` section of
`benchmarks/RESULTS.md`, with the precision (true findings / all findings) of each rule.
Files that do not parse (LL000) are listed too, each with why it really does not parse.

Usage::

    python benchmarks/training_repos.py                    # unpack (cached), lint, report
    python benchmarks/training_repos.py --source /work/tr  # an already unpacked copy
    python benchmarks/training_repos.py --no-write --jobs 2

The script exits 1 if the linter crashes and 2 when the archive cannot be found or unpacked.
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # sibling module: benchmarks/ is not a package

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the project supports 3.10, where tomli is a dependency
    import tomli as tomllib

SECTION = "training-repos"
VERDICTS_TOML = corpus.BENCH_DIR / "training_verdicts.toml"
CACHE_DIR = corpus.BENCH_DIR / ".cache" / "training-repos"
SOURCE_ENV = "LOOPLINT_TRAINING_REPOS"
"""An already unpacked copy to lint instead of the cache (read only)."""


class ArchiveError(RuntimeError):
    """The shared archive is missing or `unpack.sh` failed."""


def shared_archive() -> Path:
    """`shared/training-repos` next to the repository or next to one of its parents (a
    worktree sits deeper than the checkout the shared folder was made for)."""
    for parent in corpus.REPO_ROOT.parents:
        candidate = parent / "shared" / "training-repos"
        if (candidate / "unpack.sh").is_file():
            return candidate
    raise ArchiveError(
        "no shared/training-repos/unpack.sh beside the repository or any parent folder; "
        f"give an unpacked copy with --source or ${SOURCE_ENV}"
    )


def prepare(source: Path | None) -> Path:
    """The folder holding the unpacked repositories: `source` when given, else the cache,
    filled by the archive's own `unpack.sh` (idempotent: a complete cache is kept)."""
    if source is not None:
        if not source.is_dir():
            raise ArchiveError(f"{source} is not a folder")
        return source
    archive = shared_archive()
    proc = subprocess.run(
        ["bash", str(archive / "unpack.sh"), str(CACHE_DIR)], capture_output=True, text=True
    )
    if proc.returncode != 0:
        raise ArchiveError(f"unpack.sh failed (rc={proc.returncode}):\n{proc.stderr[-2000:]}")
    return CACHE_DIR


def repositories(root: Path) -> list[Path]:
    """The `<owner>__<repo>` folders under `root`, sorted."""
    return sorted(p for p in root.iterdir() if p.is_dir() and "__" in p.name)


def corpus_size(dirs: Sequence[Path]) -> tuple[int, int, int]:
    """(`.py` files, `.ipynb` files, physical lines)."""
    py = notebooks = lines = 0
    for folder in dirs:
        for path in sorted(folder.rglob("*")):
            if path.suffix not in (".py", ".ipynb") or not path.is_file():
                continue
            if path.suffix == ".py":
                py += 1
            else:
                notebooks += 1
            lines += corpus.count_lines(path.read_bytes())
    return py, notebooks, lines


def shown_command(cmd: Sequence[str], root: Path) -> str:
    """The command as a reader can paste it, the 69 repository folders shown as one glob."""
    shown: list[str] = []
    for part in cmd:
        if Path(part).parent == root:
            if "<training-repos>/*" not in shown:
                shown.append("<training-repos>/*")
        else:
            shown.append(part)
    return corpus.display_cmd(shown)


def location(finding: dict[str, Any], root: Path) -> str:
    """`<owner__repo>/<path>[:cell N]:<line>`: where a finding is, as verdicts name it."""
    where = corpus.relpath(str(finding["path"]), root)
    cell = finding.get("cell")
    if cell is not None:
        where += f":cell {cell}"
    return f"{where}:{finding['line']}"


def verdict_key(finding: dict[str, Any], root: Path) -> str:
    return f"{location(finding, root)}:{finding['code']}"


def load_verdicts(path: Path = VERDICTS_TOML) -> dict[str, str]:
    """`"<location>:<code>" = "true: ..." | "false alarm: ..." | "does not parse: ..."`."""
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def _judgement(verdict: str) -> str:
    """`true`, `false alarm`, `does not parse` or `unreviewed`: the words before the colon."""
    return verdict.split(":", 1)[0].strip()


def render(
    root: Path,
    size: tuple[int, int, int],
    run: corpus.LintRun,
    verdicts: dict[str, str],
) -> str:
    """The Markdown section: size, precision per rule, every finding with its verdict."""
    findings = sorted(
        run.findings,
        key=lambda f: (corpus.relpath(str(f["path"]), root), f.get("cell") or 0, int(f["line"])),
    )
    rule_findings = [f for f in findings if f["code"] != "LL000"]
    unparsed = [f for f in findings if f["code"] == "LL000"]
    verdict = {id(f): verdicts.get(verdict_key(f, root), "unreviewed") for f in findings}
    py, notebooks, lines = size
    true_total = sum(_judgement(verdict[id(f)]) == "true" for f in rule_findings)
    out = [
        "## Training repositories (`benchmarks/training_repos.py`)",
        "",
        f"69 public training repositories at pinned commits (`shared/training-repos/MANIFEST.md`):"
        f" {py:,} `.py` and {notebooks:,} `.ipynb` files, {lines:,} lines. "
        f"{len(rule_findings)} rule findings and {len(unparsed)} files that do not parse (LL000),"
        f" in {run.wall_s:.1f} s "
        f"(machine: {os.cpu_count()} cores, Python {platform.python_version()}).",
        "",
        f"Command: `{shown_command(run.cmd, root)}`, run from the repo root.",
        "",
        f"**Precision: {true_total} true of {len(rule_findings)}"
        + (f" ({100 * true_total / len(rule_findings):.0f} %)" if rule_findings else "")
        + ".** Every verdict is hand-written in `benchmarks/training_verdicts.toml` after reading"
        " the code; a false alarm is fixed in the analysis, never kept as a verdict.",
        "",
        "| code | name | findings | true | false alarm | unreviewed | precision |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    by_code: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for f in rule_findings:
        by_code[str(f["code"])].append(f)
    for code, group in sorted(by_code.items()):
        tally = collections.Counter(_judgement(verdict[id(f)]) for f in group)
        precision = f"{100 * tally['true'] / len(group):.0f} %"
        out.append(
            f"| {code} | {corpus.md_cell(group[0].get('name', ''))} | {len(group)} | "
            f"{tally['true']} | {tally['false alarm']} | "
            f"{len(group) - tally['true'] - tally['false alarm']} | {precision} |"
        )
    out += ["", "| where | code | message | verdict |", "| --- | --- | --- | --- |"]
    for f in rule_findings:
        out.append(
            f"| {corpus.md_cell(location(f, root))} | {f['code']} | "
            f"{corpus.md_cell(f.get('message', ''))} | {corpus.md_cell(verdict[id(f)])} |"
        )
    out += [
        "",
        f"Files that do not parse ({len(unparsed)}): each really is not Python"
        " (IPython magics are neutralised only where a statement starts, and an indented cell is"
        " dedented as IPython does).",
        "",
        "| where | message | verdict |",
        "| --- | --- | --- |",
    ]
    for f in unparsed:
        out.append(
            f"| {corpus.md_cell(location(f, root))} | {corpus.md_cell(f.get('message', ''))} | "
            f"{corpus.md_cell(verdict[id(f)])} |"
        )
    stale = sorted(set(verdicts) - {verdict_key(f, root) for f in findings})
    if stale:
        out += ["", f"Verdicts that match no current finding ({len(stale)}):", ""]
        out += [f"- `{key}`" for key in stale]
    return "\n".join(out) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source", type=Path, default=os.environ.get(SOURCE_ENV) or None,
        help=f"an unpacked copy to lint (default: ${SOURCE_ENV}, else the archive unpacked"
        " into benchmarks/.cache/training-repos)",
    )  # fmt: skip
    parser.add_argument("--jobs", type=int, default=None, help="passed to `looplint --jobs`")
    parser.add_argument(
        "--no-write", action="store_true", help="do not update benchmarks/RESULTS.md"
    )
    args = parser.parse_args(argv)
    try:
        root = prepare(Path(args.source) if args.source else None)
    except ArchiveError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    canary_error = corpus.canary_check()
    if canary_error is not None:
        print(f"error: {canary_error}", file=sys.stderr)
        return 1
    dirs = repositories(root)
    try:
        run = corpus.run_linter(dirs, jobs=args.jobs)
    except corpus.LinterCrash as exc:
        print(f"error: linter crashed: {exc}", file=sys.stderr)
        return 1
    report = render(root, corpus_size(dirs), run, load_verdicts())
    print(report)
    if not args.no_write:
        corpus.write_section(SECTION, report)
        print(f"[training-repos] wrote section '{SECTION}' of {corpus.RESULTS_MD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
