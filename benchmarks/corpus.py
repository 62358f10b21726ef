"""Run looplint over a pinned corpus of real, public PyTorch code and record what it finds.

Why: fixtures show that a rule can fire; only a large body of real code shows how often it
fires where it should not. This script downloads pinned wheels of well-known PyTorch
libraries (wheels, not sdists or git checkouts, because PyPI is the only network we have and
a wheel pins the exact source), unpacks their ``.py`` files, lints them with the real CLI in a
subprocess, and writes the numbers plus every finding, each with a hand-written verdict from
``benchmarks/verdicts.toml``, into its own section of ``benchmarks/RESULTS.md``.

Usage::

    python benchmarks/corpus.py                 # download/unpack (cached), lint, report
    python benchmarks/corpus.py --only timm,skorch --jobs 2
    python benchmarks/corpus.py --no-run        # just prepare the corpus, print its root

``prepare_corpus()`` is reused by ``benchmarks/speed.py`` and by tests.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the project supports 3.10, where tomli is a dependency
    import tomli as tomllib

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
CORPUS_DIR = BENCH_DIR / ".corpus"
WHEEL_DIR = CORPUS_DIR / "wheels"
SRC_ROOT = CORPUS_DIR / "src"
RESULTS_MD = BENCH_DIR / "RESULTS.md"
VERDICTS_TOML = BENCH_DIR / "verdicts.toml"

# Pinned so that every run, on every machine, lints byte-identical sources: a change in the
# numbers must come from looplint, never from an upstream release. All are pure-Python wheels
# on PyPI (checked with `pip download --no-deps --only-binary=:all:`). torchvision and torchrl
# are left out (no pure-Python wheel), cleanrl and fairseq too (no wheel at all); `lightning`
# is left out because it re-ships the same code as pytorch-lightning; diffusers is left out
# because its wheel has none of the training examples.
#
# Two groups. LIBRARIES: well-known library internals (4,750 files), the corpus the speed
# goals of `speed.py` are measured on. TRAINING: packages whose code is trainers, recipes and
# training scripts (`fit` loops, RL updates, per-batch methods), where most of the real
# training loops are: what the mutation benchmark (`mutation.py`) needs.
LIBRARIES: tuple[tuple[str, str], ...] = (
    ("transformers", "5.23.0"),
    ("timm", "1.0.31"),
    ("accelerate", "1.15.0"),
    ("peft", "0.21.2"),
    ("trl", "1.16.0"),
    ("torchtune", "0.6.1"),
    ("stable-baselines3", "2.9.2"),
    ("pytorch-ignite", "0.5.5"),
    ("skorch", "1.4.0"),
    ("flair", "0.15.1"),
    ("sentence-transformers", "6.2.0"),
    ("pytorch-lightning", "2.6.6"),
)
TRAINING: tuple[tuple[str, str], ...] = (
    ("d2l", "1.0.3"),
    ("simpletransformers", "0.70.8"),
    ("pykeen", "1.11.1"),
    ("avalanche-lib", "0.6.0"),
    ("speechbrain", "1.1.2"),
    ("ultralytics", "8.4.190"),
    ("yolov5", "7.0.14"),
    ("tianshou", "2.0.1"),
    ("pyro-ppl", "1.9.2"),
    ("pytorch-tabnet", "4.1.0"),
    ("allennlp", "2.10.1"),
    ("lightly", "1.6.0"),
    ("litgpt", "0.5.13"),
    ("mmengine", "0.10.7"),
    ("fastai", "2.8.12"),
)
PACKAGES: tuple[tuple[str, str], ...] = LIBRARIES + TRAINING
GROUPS: dict[str, tuple[tuple[str, str], ...]] = {"libraries": LIBRARIES, "training": TRAINING}
"""Names accepted by `--only` besides package names: a whole group."""

# Written last into an unpacked package directory: its presence means the extraction finished.
_COMPLETE_MARKER = ".unpacked"


class CorpusError(RuntimeError):
    """The corpus could not be prepared (download or unpack failed, unknown package name)."""


def _normalize(name: str) -> str:
    """PEP 503 normalization, so that ``--only Stable_Baselines3`` matches ``stable-baselines3``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def select_packages(only: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """Return the pinned (name, version) pairs, restricted to ``only`` when given.

    ``only`` entries may be comma-separated package names or group names (``libraries``,
    ``training``); an unknown name is an error rather than an empty corpus, so a typo cannot
    silently produce a benchmark of nothing.
    """
    if not only:
        return list(PACKAGES)
    wanted: set[str] = set()
    for name in (n.strip() for item in only for n in item.split(",")):
        if name in GROUPS:
            wanted.update(_normalize(n) for n, _ in GROUPS[name])
        elif name:
            wanted.add(_normalize(name))
    known = {_normalize(n) for n, _ in PACKAGES}
    unknown = sorted(wanted - known)
    if unknown:
        raise CorpusError(
            f"unknown package(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            f" or a group: {', '.join(GROUPS)}"
        )
    return [(n, v) for n, v in PACKAGES if _normalize(n) in wanted]


def package_dir(name: str, version: str) -> Path:
    """Where the ``.py`` files of one pinned wheel are unpacked."""
    return SRC_ROOT / f"{name}-{version}"


def _find_wheel(name: str, version: str) -> Path | None:
    """The already-downloaded wheel for ``name==version``, if any (wheel names use ``_``)."""
    stem = re.sub(r"[-_.]+", "_", name).lower()
    for candidate in WHEEL_DIR.glob("*.whl"):
        parts = candidate.name.split("-")
        if len(parts) >= 2 and parts[0].lower() == stem and parts[1] == version:
            return candidate
    return None


def download_wheel(name: str, version: str) -> Path:
    """Download the pinned wheel with pip (cached: nothing is fetched when it is present)."""
    found = _find_wheel(name, version)
    if found is not None:
        return found
    WHEEL_DIR.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", f"{name}=={version}", "-d", str(WHEEL_DIR),
    ]  # fmt: skip
    print(f"[corpus] downloading {name}=={version}", file=sys.stderr)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    found = _find_wheel(name, version)
    if proc.returncode != 0 or found is None:
        raise CorpusError(
            f"pip download {name}=={version} failed (rc={proc.returncode}):\n{proc.stderr[-2000:]}"
        )
    return found


def _safe_member(member: str) -> bool:
    """Only plain relative ``.py`` paths: a wheel is untrusted input for ``extract``."""
    if not member.endswith(".py"):
        return False
    parts = Path(member).parts
    return not (member.startswith(("/", "\\")) or ".." in parts or ":" in member)


def unpack_wheel(wheel: Path, dest: Path) -> Path:
    """Extract only the ``.py`` files of ``wheel`` into ``dest`` (cached via a marker file).

    Extraction goes to a temporary sibling directory that is renamed into place, so an
    interrupted run never leaves a half-unpacked package that later runs would trust.
    """
    if (dest / _COMPLETE_MARKER).exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", dir=dest.parent))
    try:
        with zipfile.ZipFile(wheel) as zf:
            members = [m for m in zf.namelist() if _safe_member(m)]
            for member in members:
                target = tmp / member
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(zf.read(member))
        (tmp / _COMPLETE_MARKER).write_text(f"{wheel.name}\n{len(members)} files\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def prepare_corpus(only: Iterable[str] | None = None) -> Path:
    """Download and unpack the pinned corpus (cached) and return its source root.

    The root may also hold directories of other versions from earlier pins; callers that
    must not see them should lint ``corpus_dirs(only)`` rather than the root itself.
    """
    for name, version in select_packages(only):
        unpack_wheel(download_wheel(name, version), package_dir(name, version))
    return SRC_ROOT


def corpus_dirs(only: Iterable[str] | None = None) -> list[Path]:
    """The unpacked directories of the selected pinned packages (call ``prepare_corpus`` first)."""
    return [package_dir(n, v) for n, v in select_packages(only)]


# --------------------------------------------------------------------------- training-repos

# The second real corpus: 69 public training repositories at pinned commits (research and
# example code, where training loops live), shipped as `training-repos.tar.xz` with its
# `unpack.sh` in a `shared/` folder beside the clone. It is unpacked once into the gitignored
# cache; `LOOPLINT_TRAINING_REPOS` may name an already unpacked copy instead.
TRAINING_REPOS_ENV = "LOOPLINT_TRAINING_REPOS"
TRAINING_REPOS_CACHE = BENCH_DIR / ".cache" / "training-repos"


def _training_repos_archive() -> Path | None:
    """The `shared/training-repos` folder of the nearest ancestor of the clone that has one
    (`../shared` for a clone, further up for a worktree nested in a workspace)."""
    for parent in REPO_ROOT.parents:
        candidate = parent / "shared" / "training-repos"
        if (candidate / "unpack.sh").is_file():
            return candidate
    return None


def prepare_training_repos() -> Path:
    """The root holding one unpacked folder per training repository (`owner__repo`)."""
    named = os.environ.get(TRAINING_REPOS_ENV)
    if named:
        root = Path(named)
        if not root.is_dir():
            raise CorpusError(f"{TRAINING_REPOS_ENV}={named} is not a directory")
        return root.resolve()
    archive = _training_repos_archive()
    if archive is None:
        raise CorpusError(
            "no shared/training-repos/unpack.sh beside the clone or above it; set"
            f" {TRAINING_REPOS_ENV} to an unpacked copy"
        )
    print(f"[corpus] unpacking {archive} into {TRAINING_REPOS_CACHE}", file=sys.stderr)
    proc = subprocess.run(
        ["bash", str(archive / "unpack.sh"), str(TRAINING_REPOS_CACHE)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise CorpusError(f"unpack.sh failed (rc={proc.returncode}): {proc.stderr[-2000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def training_repo_dirs(root: Path) -> list[Path]:
    """The repository folders under an unpacked training-repos root, sorted."""
    return sorted(p for p in root.iterdir() if p.is_dir() and "__" in p.name)


def iter_py_files(dirs: Iterable[Path]) -> Iterator[Path]:
    """All ``.py`` files under ``dirs``, in a stable (sorted) order."""
    for d in dirs:
        yield from sorted(p for p in d.rglob("*.py") if p.is_file())


def count_lines(data: bytes) -> int:
    """Physical lines, counting a last line that lacks its newline (what ``wc -l`` misses)."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


@dataclass
class CorpusStats:
    """Size of the linted corpus: what a files/s or lines/s figure is divided by."""

    files: int
    lines: int
    bytes: int


def corpus_stats(dirs: Iterable[Path]) -> CorpusStats:
    """Count files, lines and bytes (outside any timed region)."""
    files = lines = size = 0
    for path in iter_py_files(dirs):
        data = path.read_bytes()
        files += 1
        lines += count_lines(data)
        size += len(data)
    return CorpusStats(files, lines, size)


def looplint_cmd(*args: str) -> list[str]:
    """The linter's command line, run as ``sys.executable -m looplint`` (no PATH lookup)."""
    return [sys.executable, "-m", "looplint", *args]


def display_cmd(cmd: Sequence[str]) -> str:
    """A command as a reader can paste it from the repo root: the interpreter shown as
    ``python``, repo paths made relative, and the run of corpus directories folded into
    ``<corpus>`` (each report says which packages that is)."""
    out: list[str] = []
    for part in cmd:
        if part == sys.executable:
            out.append("python")
            continue
        path = Path(part)
        if path.is_absolute() and path.parent == SRC_ROOT:
            if out[-1:] != ["<corpus>"]:
                out.append("<corpus>")
            continue
        try:
            out.append(str(path.relative_to(REPO_ROOT)) if path.is_absolute() else part)
        except ValueError:
            out.append(part)
    return " ".join(out)


# --------------------------------------------------------------------------- RESULTS.md


def write_section(name: str, body: str, results: Path | None = None) -> None:
    """Replace the text between ``<!-- NAME:start -->`` and ``<!-- NAME:end -->``.

    Other scripts own other sections of the same file, so everything outside our markers is
    kept byte for byte; the file and markers are created when missing. The write goes through
    a temporary file and ``os.replace`` so a concurrent reader never sees a torn file.
    """
    results = RESULTS_MD if results is None else results
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    block = f"{start}\n{body.rstrip()}\n{end}"
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    i, j = text.find(start), text.find(end)
    if i != -1 and j > i:
        text = text[:i] + block + text[j + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    fd, tmp = tempfile.mkstemp(prefix=".RESULTS.", dir=results.parent)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, results)


def md_cell(text: object) -> str:
    """Make ``text`` safe inside a Markdown table cell."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


# --------------------------------------------------------------------------- linting


class LinterCrash(RuntimeError):
    """looplint exited with 2 (internal error), died from a signal, or printed non-JSON."""


@dataclass
class LintRun:
    """One linter invocation: its findings and how long it took."""

    findings: list[dict[str, Any]]
    wall_s: float
    cmd: list[str]
    stderr: str


def supports_option(option: str) -> bool:
    """Whether ``looplint check --help`` lists ``option`` (the CLI grows while we measure it)."""
    proc = subprocess.run(
        looplint_cmd("check", "--help"), capture_output=True, text=True, cwd=REPO_ROOT
    )
    return proc.returncode == 0 and re.search(rf"{re.escape(option)}\b", proc.stdout) is not None


def run_linter(dirs: Sequence[Path], jobs: int | None = None) -> LintRun:
    """Lint ``dirs`` with ``looplint check --format json --exit-zero`` and time it."""
    args = ["check", "--format", "json", "--exit-zero"]
    if supports_option("--no-cache"):  # a cold run: a warm cache would make the time meaningless
        args.append("--no-cache")
    if jobs is not None:
        args += ["--jobs", str(jobs)]
    cmd = looplint_cmd(*args, *(str(d) for d in dirs))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO_ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode not in (0, 1):  # 2 = internal error, <0 = killed by a signal
        raise LinterCrash(
            f"looplint exited with {proc.returncode}\n--- stderr (tail) ---\n{proc.stderr[-4000:]}"
        )
    try:
        findings = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise LinterCrash(
            f"looplint output is not JSON ({exc}); stdout starts: {proc.stdout[:500]!r}\n"
            f"--- stderr (tail) ---\n{proc.stderr[-4000:]}"
        ) from exc
    if not isinstance(findings, list):
        raise LinterCrash(f"looplint JSON is a {type(findings).__name__}, expected an array")
    broken = [f for f in findings if "internal error" in f["message"] or "crashed" in f["message"]]
    if broken or "Traceback" in proc.stderr:
        raise LinterCrash(f"internal errors: {broken[:5]}\n--- stderr ---\n{proc.stderr[-4000:]}")
    return LintRun(findings, wall, cmd, proc.stderr)


CANARY_DIR = BENCH_DIR / ".cache" / "canary"
# A training loop with two textbook bugs (optimizer re-created per epoch, no zero_grad).
CANARY_SOURCE = """\
import torch

model = torch.nn.Linear(2, 2)
for epoch in range(3):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for step in range(10):
        loss = model(torch.randn(2)).sum()
        loss.backward()
        opt.step()
"""


def canary_check() -> str | None:
    """Lint a known-buggy file kept, like the corpus, in a gitignored hidden folder.

    Why: zero findings on the corpus looks like success, but is also what a linter reports
    when file discovery skips the folder (``.corpus`` is hidden and gitignored). Returns an
    error message when the canary yields no finding, else None.
    """
    CANARY_DIR.mkdir(parents=True, exist_ok=True)
    (CANARY_DIR / "train.py").write_text(CANARY_SOURCE, encoding="utf-8")
    try:
        found = run_linter([CANARY_DIR]).findings
    except LinterCrash as exc:
        return f"linter crashed on the canary: {exc}"
    if not found:
        return (
            f"looplint reported nothing on {CANARY_DIR.relative_to(REPO_ROOT)}/train.py, which"
            " has two known bugs: it is not checking files under hidden/gitignored folders"
            " named on the command line, so a corpus run would be meaningless"
        )
    return None


def relpath(path: str, root: Path = SRC_ROOT) -> str:
    """A finding's path relative to the corpus root, POSIX style (the verdict key form)."""
    p = Path(path)
    if not p.is_absolute():
        p = REPO_ROOT / p
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def load_verdicts(path: Path | None = None) -> dict[str, str]:
    """``"<relpath>:<line>:<code>" = "real bug: ..." | "false alarm: ..."`` (hand-edited)."""
    path = VERDICTS_TOML if path is None else path
    if not path.exists():
        return {}
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    return {str(k): str(v) for k, v in data.items() if isinstance(v, str)}


def verdict_key(finding: dict[str, Any]) -> str:
    return f"{relpath(str(finding['path']))}:{finding['line']}:{finding['code']}"


# --------------------------------------------------------------------------- report


def render_report(
    packages: Sequence[tuple[str, str]],
    stats: CorpusStats,
    run: LintRun,
    verdicts: dict[str, str],
) -> str:
    """The Markdown section: corpus, size, speed, findings by code, every finding + verdict."""
    findings = sorted(
        run.findings, key=lambda f: (relpath(str(f["path"])), int(f["line"]), str(f["code"]))
    )
    by_code = collections.Counter(str(f["code"]) for f in findings)
    names = {str(f["code"]): str(f.get("name", "")) for f in findings}
    verdict_of = [verdicts.get(verdict_key(f), "unreviewed") for f in findings]
    tally = collections.Counter(v.split(":", 1)[0].strip() for v in verdict_of)
    used = {verdict_key(f) for f in findings}
    stale = sorted(set(verdicts) - used)

    lines = [
        "## Corpus run (`benchmarks/corpus.py`)",
        "",
        "Corpus: " + ", ".join(f"{n}=={v}" for n, v in packages),
        "",
        "| files | lines | wall time | files/s | lines/s | findings |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {stats.files:,} | {stats.lines:,} | {run.wall_s:.2f} s | "
        f"{stats.files / run.wall_s:,.0f} | {stats.lines / run.wall_s:,.0f} | {len(findings)} |",
        "",
        f"Command: `{display_cmd(run.cmd)}`, run from the repo root, where `<corpus>` is the"
        " package directories above under `benchmarks/.corpus/src/` "
        f"(machine: {os.cpu_count()} cores, Python {platform.python_version()}).",
        "",
        "Verdicts: "
        + (", ".join(f"{k} {c}" for k, c in sorted(tally.items())) if tally else "none")
        + ".",
        "",
    ]
    if by_code:
        lines += ["| code | name | findings |", "| --- | --- | ---: |"]
        lines += [f"| {c} | {md_cell(names[c])} | {n} |" for c, n in sorted(by_code.items())]
        lines.append("")
    lines += ["| path | line | code | message | verdict |", "| --- | ---: | --- | --- | --- |"]
    for f, v in zip(findings, verdict_of, strict=True):
        lines.append(
            f"| {md_cell(relpath(str(f['path'])))} | {f['line']} | {md_cell(f['code'])} | "
            f"{md_cell(f.get('message', ''))} | {md_cell(v)} |"
        )
    if not findings:
        lines.append("| (no findings) | | | | |")
    if stale:
        lines += ["", f"Verdicts that match no current finding ({len(stale)}):", ""]
        lines += [f"- `{k}`" for k in stale]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=None, help="passed to `looplint --jobs`")
    parser.add_argument(
        "--only", action="append", metavar="NAME",
        help="packages or groups (libraries, training); repeatable or comma-separated",
    )  # fmt: skip
    parser.add_argument(
        "--no-run", action="store_true", help="only prepare the corpus and print its root"
    )
    parser.add_argument(
        "--no-write", action="store_true", help="do not update benchmarks/RESULTS.md"
    )
    args = parser.parse_args(argv)

    try:
        packages = select_packages(args.only)
        root = prepare_corpus(args.only)
    except CorpusError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.no_run:
        print(root)
        return 0

    canary_error = canary_check()
    if canary_error is not None:
        print(f"error: {canary_error}", file=sys.stderr)
        return 1
    dirs = corpus_dirs(args.only)
    stats = corpus_stats(dirs)
    try:
        run = run_linter(dirs, jobs=args.jobs)
    except LinterCrash as exc:
        print(f"error: linter crashed: {exc}", file=sys.stderr)
        return 1
    if run.stderr.strip():  # warnings about odd files belong in the log, not the table
        print(f"[corpus] looplint stderr (tail):\n{run.stderr[-3000:]}", file=sys.stderr)
    report = render_report(packages, stats, run, load_verdicts())
    print(report)
    if not args.no_write:
        write_section("corpus", report)
        print(f"[corpus] wrote section 'corpus' of {RESULTS_MD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
