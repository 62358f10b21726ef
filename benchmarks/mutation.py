"""Mutation benchmark: inject one known bug at a time into the real training loops of the
benchmark corpus and measure how many of them looplint reports.

Why: the corpus run (`corpus.py`) measures false alarms, never recall: real code with no
finding may simply be code looplint does not understand. Here every mutant holds exactly one
bug of a known rule, injected into a real loop of a pinned wheel by `mutants.py` (which
recognises training loops on its own, never with looplint's analysis, and excludes mutations
that would not be real bugs). Each mutant is checked *in place*: the mutated file is written
into a temporary copy of its package tree, so imports resolve as in the real package, and
looplint checks it together with the package's files that import it. A mutant counts as found
when the run reports a finding of the injected rule that the unmutated files did not have.

Usage::

    python benchmarks/mutation.py                       # whole corpus, writes the section
    python benchmarks/mutation.py --only training --rules LL001,LL004
    python benchmarks/mutation.py --list --only skorch  # show the mutants, run nothing
    python benchmarks/mutation.py --limit 50 --json /tmp/mutation.json

Sampling: at most `--per-file` mutants (default 4) of one rule in one file are kept, chosen
evenly over the file's sites in line order (the first and the last always kept), so that one
huge trainer cannot dominate a rule's recall; `--limit N` keeps every k-th mutant of the
sorted list so that N remain. Both are deterministic.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import hashlib
import json
import multiprocessing
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus
import mutants

# Every training-loop mutation needs a backward pass and a step in the same file (a training
# unit): the other files are not even parsed ...
_HAS_TRAINING = re.compile(r"backward")
_HAS_STEP = re.compile(r"\.step\(")
# ... or a timm-style scaler call that backpropagates and steps itself (LL013's second
# operator: `loss_scaler(loss, optimizer, update_grad=...)`, no `backward`/`.step(` in sight)
_SCALER_CALLS = re.compile(r"\b(?:update_grad|need_update)\s*=")
# ... except the rules about how a network is defined, whose sites are in model files.
_DEFINITION_RULES = frozenset({"LL017", "LL018", "LL019", "LL020"})
_DEFINITIONS = re.compile(
    r"Module(?:List|Dict)\(|Parameter\(|dropout\w*\([^)]*training|\.requires_grad\s*=[^=]"
)
_RELEVANT = re.compile(r"optim|GradScaler|scaler|AdamW|Adafactor|_schedule|lion_pytorch")
_MAX_IMPORTERS = 8


@dataclass(frozen=True, slots=True)
class Source:
    """One unit of the corpus: a pinned wheel's unpacked package, or one training repository."""

    name: str
    """The package (`skorch`) or the repository folder (`owner__repo`)."""
    version: str
    """The pinned wheel version; empty for a repository (its commit is in its MANIFEST.md)."""
    directory: Path
    root: Path
    """Reported paths are relative to this (the wheels' source root, or the repositories')."""
    group: str
    """`wheels` or `training-repos`."""


REPOS_GROUP = "repos"
"""The `--only` name of the whole training-repos corpus (a repository folder name selects one)."""


def select_sources(only: Sequence[str] | None) -> list[Source]:
    """The wheels and training repositories `--only` names (all of both by default); the
    wheels are downloaded and the repositories unpacked when missing (both cached)."""
    names = [n.strip() for item in only or () for n in item.split(",") if n.strip()]
    repo_names = [n for n in names if n == REPOS_GROUP or "__" in n]
    wheel_names = [n for n in names if n not in repo_names]
    sources: list[Source] = []
    if not names or wheel_names:
        corpus.prepare_corpus(wheel_names or None)
        sources += [
            Source(n, v, corpus.package_dir(n, v), corpus.SRC_ROOT, "wheels")
            for n, v in corpus.select_packages(wheel_names or None)
        ]
    if not names or repo_names:
        root = corpus.prepare_training_repos()
        repos = corpus.training_repo_dirs(root)
        if REPOS_GROUP not in repo_names and repo_names:
            known = {d.name for d in repos}
            unknown = sorted(set(repo_names) - known)
            if unknown:
                raise corpus.CorpusError(f"unknown training repositories: {', '.join(unknown)}")
            repos = [d for d in repos if d.name in repo_names]
        sources += [Source(d.name, "", d, root, "training-repos") for d in repos]
    return sources


@dataclass(frozen=True, slots=True)
class Site:
    """A mutant, without its text, as reported."""

    package: str
    path: str
    """Relative to its corpus root (`skorch-1.4.0/skorch/net.py`, `owner__repo/train.py`)."""
    line: int
    rule: str
    description: str
    subject: str
    """The optimizer, scheduler, scaler, total or model the bug is about."""
    shape: str
    """`loop` or `per-batch function`."""


@dataclass(slots=True)
class Outcome:
    """A checked mutant: whether its rule was reported, and what else was."""

    site: Site
    found: bool
    new_codes: list[str] = field(default_factory=list)


@dataclass(slots=True)
class PackageRun:
    """Everything measured in one package."""

    outcomes: list[Outcome] = field(default_factory=list)
    exclusions: list[tuple[str, str, int, str]] = field(default_factory=list)
    """(path, rule, line, reason)."""
    original_findings: list[dict[str, Any]] = field(default_factory=list)
    unparsable: list[str] = field(default_factory=list)
    files: int = 0
    lines: int = 0


# --------------------------------------------------------------------------- generation


def _sample(found: list[mutants.Mutant], cap: int) -> list[mutants.Mutant]:
    """At most `cap` mutants, spread evenly over the sites in line order."""
    found = sorted(found, key=lambda m: (m.line, m.description))
    if len(found) <= cap:
        return found
    if cap == 1:
        return found[:1]
    picks = sorted({round(i * (len(found) - 1) / (cap - 1)) for i in range(cap)})
    return [found[i] for i in picks]


_CACHE_DIR = corpus.BENCH_DIR / ".cache" / "mutants"
_GENERATOR = Path(mutants.__file__).read_bytes()


def _mutations_of(data: bytes, text: str) -> mutants.FileMutations | None:
    """`mutants.mutate(text)` for every rule, cached by the file's and the generator's bytes
    (parsing a 5,000-line trainer with positions takes seconds; the corpus is pinned).
    None when LibCST cannot parse the file."""
    key = hashlib.sha256(_GENERATOR + b"\0" + data).hexdigest()
    cached = _CACHE_DIR / f"{key}.json.gz"
    if cached.exists():
        stored = json.loads(gzip.decompress(cached.read_bytes()))
        if stored is None:
            return None
        return mutants.FileMutations(
            [mutants.Mutant(**m) for m in stored["mutants"]],
            [mutants.Exclusion(**e) for e in stored["exclusions"]],
        )
    try:
        result: mutants.FileMutations | None = mutants.mutate(text)
    except Exception:
        result = None
    payload = (
        None
        if result is None
        else {
            "mutants": [asdict(m) for m in result.mutants],
            "exclusions": [asdict(e) for e in result.exclusions],
        }
    )
    _CACHE_DIR.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_bytes(gzip.compress(json.dumps(payload).encode("utf-8")))
    os.replace(tmp, cached)
    return result


def _relative(path: Path, source: Source) -> str:
    return path.relative_to(source.root).as_posix()


def generate(
    source: Source, rules: Sequence[str], per_file: int
) -> tuple[dict[Path, list[mutants.Mutant]], PackageRun]:
    """The sampled mutants of every file of one unpacked package or repository, by file."""
    run = PackageRun()
    by_file: dict[Path, list[mutants.Mutant]] = {}
    for path in corpus.iter_py_files([source.directory]):
        data = path.read_bytes()
        run.files += 1
        run.lines += corpus.count_lines(data)
        text = data.decode("utf-8", errors="replace")
        if (
            not (_HAS_TRAINING.search(text) and _HAS_STEP.search(text))
            and not (_DEFINITIONS.search(text) and set(rules) & _DEFINITION_RULES)
            and not (_SCALER_CALLS.search(text) and "LL013" in rules)
        ):
            continue
        result = _mutations_of(data, text)
        if result is None:
            run.unparsable.append(_relative(path, source))
            continue
        rel = _relative(path, source)
        run.exclusions.extend(
            (rel, e.rule, e.line, e.reason) for e in result.exclusions if e.rule in rules
        )
        kept: list[mutants.Mutant] = []
        for rule in rules:
            kept += _sample([m for m in result.mutants if m.rule == rule], per_file)
        if kept:
            by_file[path] = kept
    return by_file, run


# --------------------------------------------------------------------------- checking


class Checker:
    """Runs looplint on a few files of a package copy, in this process when the engine's
    `runner.run` is importable (one parse of the engine, no start-up per mutant), else through
    `python -m looplint check --format json --exit-zero --no-cache --jobs 1`."""

    def __init__(self) -> None:
        self._run: Any = None
        self._codes: list[str] = []
        try:
            from looplint.checking.runner import run
            from looplint.registry import rule_classes

            self._run = run
            self._codes = [r.identity.code for r in rule_classes()]
        except ImportError:  # pragma: no cover - the engine was reorganised: use the CLI
            pass

    def findings(self, paths: Sequence[Path]) -> list[dict[str, Any]]:
        if self._run is not None:
            result = self._run([str(p) for p in paths], self._codes, jobs=1)
            return [
                {"path": f.path, "line": f.line, "code": f.code, "message": f.message}
                for f in result.findings
            ]
        cmd = corpus.looplint_cmd(
            "check",
            "--format",
            "json",
            "--exit-zero",
            "--no-cache",
            "--jobs",
            "1",
            *(str(p) for p in paths),
        )
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=corpus.REPO_ROOT)
        if proc.returncode not in (0, 1):
            raise corpus.LinterCrash(
                f"looplint exited with {proc.returncode}: {proc.stderr[-2000:]}"
            )
        found: list[dict[str, Any]] = json.loads(proc.stdout)
        return found


def _importers(target: Path, root: Path, texts: dict[Path, str]) -> list[Path]:
    """Files of the package (that could matter to a rule) importing `target`'s module."""
    stem = target.parent.name if target.name == "__init__.py" else target.stem
    pattern = re.compile(
        rf"^\s*(?:from\s+[\w.]*\b{re.escape(stem)}\b[\w.]*\s+import|import\s+[\w.]*\b"
        rf"{re.escape(stem)}\b|from\s+[\w.]+\s+import\s[^\n]*\b{re.escape(stem)}\b)",
        re.MULTILINE,
    )
    found = [p for p, text in sorted(texts.items()) if p != target and pattern.search(text)]
    return found[:_MAX_IMPORTERS]


def _key(finding: dict[str, Any], root: Path) -> tuple[str, str, str]:
    """A finding without its position (a mutation shifts lines)."""
    path = Path(str(finding["path"])).resolve()
    try:
        rel = path.relative_to(root.resolve()).as_posix()
    except ValueError:
        rel = path.as_posix()
    return rel, str(finding["code"]), re.sub(r"\d+", "N", str(finding["message"]))


def check_package(
    source: Source,
    by_file: dict[Path, list[mutants.Mutant]],
    run: PackageRun,
    checker: Checker,
    progress: bool,
) -> None:
    """Check every mutant of one package in a temporary copy of its tree."""
    if not by_file:
        return
    with tempfile.TemporaryDirectory(prefix="looplint-mutation-") as tmp:
        copy = Path(tmp) / source.directory.name
        shutil.copytree(source.directory, copy, symlinks=True)
        texts: dict[Path, str] = {}
        for path in corpus.iter_py_files([copy]):
            text = path.read_text(encoding="utf-8", errors="replace")
            if _RELEVANT.search(text):
                texts[path] = text
        seen_original: set[tuple[str, str, str, int]] = set()
        for original_path, file_mutants in sorted(by_file.items()):
            target = copy / original_path.relative_to(source.directory)
            checked = [target, *_importers(target, copy, texts)]
            baseline = checker.findings(checked)
            for f in baseline:
                rel = f"{source.directory.name}/{_key(f, copy)[0]}"
                key = (rel, str(f["code"]), str(f["message"]), int(f["line"]))
                if key not in seen_original:
                    seen_original.add(key)
                    run.original_findings.append({**f, "path": rel})
            before = collections.Counter(_key(f, copy) for f in baseline)
            data = target.read_bytes()
            rel_path = _relative(original_path, source)
            flagged = {str(f["code"]) for f in baseline if Path(str(f["path"])) == target}
            try:
                for mutant in file_mutants:
                    if mutant.rule in flagged:
                        # The same rule already fires on the original: no new finding can
                        # show the injected bug, whether it is seen or not.
                        excluded = (rel_path, mutant.rule, mutant.line, "already-flagged")
                        run.exclusions.append(excluded)
                        continue
                    target.write_text(mutant.text, encoding="utf-8")
                    after = collections.Counter(_key(f, copy) for f in checker.findings(checked))
                    new = after - before
                    codes = sorted({code for _, code, _ in new.elements()})
                    site = Site(
                        source.name,
                        rel_path,
                        mutant.line,
                        mutant.rule,
                        mutant.description,
                        mutant.subject,
                        mutant.shape,
                    )
                    run.outcomes.append(Outcome(site, mutant.rule in codes, codes))
                    if progress:
                        mark = "found" if mutant.rule in codes else "MISSED"
                        print(
                            f"[mutation] {mark:6} {mutant.rule} {rel_path}:{mutant.line}",
                            file=sys.stderr,
                        )
            finally:
                target.write_bytes(data)


# --------------------------------------------------------------------------- report


def _pct(found: int, total: int) -> str:
    return f"{100 * found / total:.0f} %" if total else "-"


def _corpus_line(sources: Sequence[Source], runs: dict[str, PackageRun], group: str) -> str:
    chosen = [s for s in sources if s.group == group]
    files = sum(runs[s.name].files for s in chosen)
    lines_total = sum(runs[s.name].lines for s in chosen)
    if group == "wheels":
        what = f"{len(chosen)} packages"
        names = ", ".join(f"{s.name}=={s.version}" for s in chosen)
    else:
        what = f"{len(chosen)} training repositories (`../shared/training-repos`, `.py` files)"
        names = "the folders of its MANIFEST.md"
    return f"- {group}: {what} ({files:,} files, {lines_total:,} lines): {names}."


def render(
    sources: Sequence[Source],
    runs: dict[str, PackageRun],
    rules: Sequence[str],
    wall_s: float,
    command: str,
) -> str:
    outcomes = [o for r in runs.values() for o in r.outcomes]
    exclusions = [e for r in runs.values() for e in r.exclusions]
    originals = [f for r in runs.values() for f in r.original_findings]
    groups = [g for g in ("wheels", "training-repos") if any(s.group == g for s in sources)]
    group_of = {s.name: s.group for s in sources}
    lines = [
        "## Mutation benchmark (`benchmarks/mutation.py`)",
        "",
        "Corpus:",
        "",
        *(_corpus_line(sources, runs, g) for g in groups),
        "",
        f"Command: `{command}` ({wall_s:.0f} s on {os.cpu_count()} cores). One bug per mutant,"
        " injected into a real training loop by `benchmarks/mutants.py` and checked in place"
        " (a temporary copy of the package or repository tree; the mutated file linted with"
        " the files that import it). Found = a finding of the injected rule that the"
        " unmutated files do not have.",
        "",
        "| rule | mutants | found | recall | "
        + "".join(f"{g} | " for g in groups)
        + "excluded (not a real bug) |",
        "| --- | ---: | ---: | ---: | " + "---: | " * len(groups) + "---: |",
    ]

    def split(got: list[Outcome]) -> str:
        cells = []
        for g in groups:
            mine = [o for o in got if group_of[o.site.package] == g]
            found = sum(o.found for o in mine)
            cells.append(f"{found}/{len(mine)} ({_pct(found, len(mine))}) | ")
        return "".join(cells)

    by_rule = collections.defaultdict(list)
    for o in outcomes:
        by_rule[o.site.rule].append(o)
    excluded = collections.Counter(e[1] for e in exclusions)
    for rule in rules:
        got = by_rule.get(rule, [])
        found = sum(o.found for o in got)
        lines.append(
            f"| {rule} | {len(got)} | {found} | {_pct(found, len(got))} | {split(got)}"
            f"{excluded[rule]} |"
        )
    found_all = sum(o.found for o in outcomes)
    lines.append(
        f"| **all** | {len(outcomes)} | {found_all} | {_pct(found_all, len(outcomes))} |"
        f" {split(outcomes)}{len(exclusions)} |"
    )
    lines += [
        "",
        "Where the mutants are (sources without any are left out):",
        "",
        "| package or repository | mutants | found | recall |",
        "| --- | ---: | ---: | ---: |",
    ]
    for source in sources:
        got = runs[source.name].outcomes if source.name in runs else []
        if not got:
            continue
        found = sum(o.found for o in got)
        lines.append(f"| {source.name} | {len(got)} | {found} | {_pct(found, len(got))} |")
    lines += ["", "Exclusions by criterion:", ""]
    reasons = collections.Counter(e[3] for e in exclusions)
    for reason, count in reasons.most_common():
        lines.append(f"- {count} x `{reason}`: {mutants.EXCLUSION_CRITERIA[reason]}")
    lines += [
        "",
        f"Findings on the unmutated files checked ({len(originals)}; each is a false"
        " alarm unless `verdicts.toml` says otherwise):",
        "",
    ]
    verdicts = corpus.load_verdicts()
    for f in sorted(originals, key=lambda f: (f["path"], f["line"])):
        verdict = verdicts.get(f"{f['path']}:{f['line']}:{f['code']}", "unreviewed")
        lines.append(
            f"- `{f['path']}:{f['line']}` {f['code']}: {corpus.md_cell(f['message'])[:160]}"
            f" — {corpus.md_cell(verdict)}"
        )
    if not originals:
        lines.append("- none")
    misses = sorted((o for o in outcomes if not o.found), key=lambda o: (o.site.rule, o.site.path))
    lines += [
        "",
        f"Misses ({len(misses)}):",
        "",
        "| rule | where | mutation | reported instead |",
        "| --- | --- | --- | --- |",
    ]
    for o in misses:
        where = f"`{o.site.path}:{o.site.line}`"
        what = corpus.md_cell(o.site.description)
        lines.append(f"| {o.site.rule} | {where} | {what} | {', '.join(o.new_codes) or '-'} |")
    return "\n".join(lines) + "\n"


_WORKER_CHECKER: Checker | None = None


def _check_source(
    item: tuple[Source, dict[Path, list[mutants.Mutant]], PackageRun, bool],
) -> tuple[str, PackageRun]:
    """Check one source's mutants (in a pool worker, or in this process)."""
    global _WORKER_CHECKER
    if _WORKER_CHECKER is None:
        _WORKER_CHECKER = Checker()
    source, by_file, run, progress = item
    check_package(source, by_file, run, _WORKER_CHECKER, progress)
    return source.name, run


def _report_json(runs: dict[str, PackageRun]) -> dict[str, Any]:
    return {
        "mutants": [
            {**asdict(o.site), "found": o.found, "new_codes": o.new_codes}
            for r in runs.values()
            for o in r.outcomes
        ],
        "exclusions": [
            {"path": p, "rule": rule, "line": line, "reason": reason}
            for r in runs.values()
            for p, rule, line, reason in r.exclusions
        ],
        "original_findings": [f for r in runs.values() for f in r.original_findings],
        "unparsable": [p for r in runs.values() for p in r.unparsable],
    }


def _thin(by_package: dict[str, dict[Path, list[mutants.Mutant]]], limit: int) -> None:
    """Keep every k-th mutant (in package, path, line order) so that `limit` remain."""
    flat = [
        (n, p, m) for n, files in by_package.items() for p, ms in sorted(files.items()) for m in ms
    ]
    if len(flat) <= limit:
        return
    keep = {id(flat[round(i * (len(flat) - 1) / max(limit - 1, 1))][2]) for i in range(limit)}
    for files in by_package.values():
        for path in list(files):
            files[path] = [m for m in files[path] if id(m) in keep]
            if not files[path]:
                del files[path]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="packages, wheel groups (libraries, training), training repositories"
        f" (`owner__repo`) or `{REPOS_GROUP}` for all of them; comma-separated",
    )
    parser.add_argument(
        "--rules",
        default=",".join(mutants.RULES),
        help=f"rules to mutate (default {','.join(mutants.RULES)})",
    )
    parser.add_argument("--limit", type=int, default=None, help="check at most N mutants")
    parser.add_argument(
        "--per-file",
        type=int,
        default=4,
        help="at most this many mutants of one rule per file (default 4)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="check packages and repositories in this many processes (default 1)",
    )
    parser.add_argument("--list", action="store_true", help="list the mutants, check nothing")
    parser.add_argument("--json", type=Path, default=None, help="write every outcome here")
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--quiet", action="store_true", help="no per-mutant progress lines")
    args = parser.parse_args(argv)
    rules = [r.strip() for r in args.rules.split(",") if r.strip()]
    unknown = sorted(set(rules) - set(mutants.RULES))
    if unknown:
        print(
            f"error: no mutation for {', '.join(unknown)}; known: {', '.join(mutants.RULES)}",
            file=sys.stderr,
        )
        return 2
    try:
        sources = select_sources(args.only)
    except corpus.CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    runs: dict[str, PackageRun] = {}
    by_package: dict[str, dict[Path, list[mutants.Mutant]]] = {}
    for source in sources:
        by_package[source.name], runs[source.name] = generate(source, rules, args.per_file)
    if args.limit is not None:
        _thin(by_package, args.limit)
    if args.list:
        for source in sources:
            for path, ms in sorted(by_package[source.name].items()):
                for m in ms:
                    print(f"{m.rule} {_relative(path, source)}:{m.line}: {m.description}")
        total = sum(len(ms) for files in by_package.values() for ms in files.values())
        excluded = sum(len(r.exclusions) for r in runs.values())
        print(f"{total} mutants, {excluded} exclusions", file=sys.stderr)
        return 0
    work = [(s, by_package[s.name], runs[s.name], not args.quiet) for s in sources]
    if args.jobs > 1:
        # Sources are independent (each checked in its own temporary copy): a pool of
        # workers, each with its own in-process checker, takes them largest first.
        work.sort(key=lambda w: -sum(len(ms) for ms in w[1].values()))
        with multiprocessing.Pool(args.jobs) as pool:
            for name, run in pool.imap_unordered(_check_source, work):
                runs[name] = run
    else:
        for item in work:
            name, run = _check_source(item)
            runs[name] = run
    wall = time.perf_counter() - t0
    shown = ["python", "benchmarks/mutation.py", *(argv if argv is not None else sys.argv[1:])]
    report = render(sources, runs, rules, wall, " ".join(shown))
    print(report)
    if args.json is not None:
        args.json.write_text(json.dumps(_report_json(runs), indent=1), encoding="utf-8")
    if not args.no_write:
        corpus.write_section("mutation", report)
        print(f"[mutation] wrote section 'mutation' of {corpus.RESULTS_MD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
