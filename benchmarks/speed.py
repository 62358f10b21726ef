"""Time looplint against ruff, TorchFix and the cost of parsing alone, on the pinned corpus.

Why: a linter's speed claim means nothing without a reference. This script measures, in one
run and on the same files (``corpus.prepare_corpus()``):

1. looplint, cold (``--no-cache`` when the CLI has it), with its default jobs (all cores);
   with a cache, also a warm run, a run after one file changed, and that file checked alone
   (its own cost);
2. ruff (``ruff check --select ALL --isolated --no-cache``), the linter looplint runs next to
   in a pre-commit hook, from its own virtualenv (pip-installed there when missing);
3. TorchFix, the other LibCST-based PyTorch linter, from its own virtualenv;
4. the floor: ``libcst.parse_module`` of the files looplint's text screen keeps (stage 1 of
   ``looplint.files.screening``: every enabled rule's words), in a ``multiprocessing.Pool``
   of ``os.cpu_count()`` workers. Without its second, ``ast``-based stage, a LibCST linter
   could not be faster than parsing these files, so looplint/floor says what the rest of the
   engine costs or, below 1, what the second stage saves.

Each run's CPU time (user + system, the process and every child it reaped) is reported next
to its wall time: on a machine shared with other work the wall time of one run says as much
about the neighbours as about the tool, while CPU time barely moves. The load average before
and after is printed with the numbers.

Repetitions are interleaved (round 1 runs every tool once, then round 2, ...), with the tool
order rotated per round, so slow drift of the machine (thermal, page cache, a neighbour's
load) hits every tool alike; the median of the rounds is reported. Peak memory is taken from
``os.wait4`` on each run (the largest single process of the tree) and, in one extra untimed
run per tool, by sampling ``/proc`` (the whole process tree's RSS summed, which is what a
process pool costs).

Usage::

    python benchmarks/speed.py              # 3 rounds over the whole corpus
    python benchmarks/speed.py --quick      # a few small packages, for a smoke test
    python benchmarks/speed.py --rounds 5 --no-torchfix
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import venv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # sibling module: benchmarks/ is not a package

CACHE_DIR = corpus.BENCH_DIR / ".cache"
TORCHFIX_VENV = CACHE_DIR / "torchfix-venv"
# Latest TorchFix at the time of writing; pinned so the reference does not move under us.
TORCHFIX_REQ = "torchfix==0.7.0"
RUFF_VENV = CACHE_DIR / "ruff-venv"
RUFF_REQ = "ruff==0.17.6"
LOOPLINT_CACHE = CACHE_DIR / "looplint-speed-cache"

# Small, quick-to-lint packages for --quick (about 400 files).
QUICK_PACKAGES = ("skorch", "stable-baselines3", "pytorch-ignite", "accelerate")

# For "one file changed": a file people really edit (a training loop), when in the corpus.
EDIT_TARGETS = (
    "transformers-5.23.0/transformers/trainer.py",
    "pytorch-ignite-0.5.5/ignite/engine/engine.py",
    "skorch-1.4.0/skorch/net.py",
)
EDIT_SUFFIX = b"\n# looplint speed benchmark: one-file edit\n"


# --------------------------------------------------------------------------- running


@dataclass
class RunResult:
    """One timed process: wall time, exit code, and the largest RSS in its tree (KiB)."""

    wall_s: float
    returncode: int
    maxrss_kib: int
    stderr: str
    cpu_s: float = 0.0
    """User + system time of the process and the children it reaped (its worker pool)."""


def run_timed(cmd: Sequence[str], cwd: Path | None = None) -> RunResult:
    """Run ``cmd`` with stdout discarded and time it.

    ``os.wait4`` gives the rusage of exactly this child (and the descendants it reaped), unlike
    ``getrusage(RUSAGE_CHILDREN)``, which is a running max over every child this harness has
    ever had and so would report the biggest tool for all of them.
    """
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode("utf-8", errors="replace")
    cpu = usage.ru_utime + usage.ru_stime
    return RunResult(wall, proc.returncode, int(usage.ru_maxrss), stderr, cpu)


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rfind(b")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree_rss_bytes(root: int) -> int:
    kids = _children_map()
    page = os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo.extend(kids.get(pid, []))
        try:
            with open(f"/proc/{pid}/statm", "rb") as fh:
                total += int(fh.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            pass
    return total


def peak_tree_rss(cmd: Sequence[str], cwd: Path | None = None, interval: float = 0.05) -> int:
    """Peak of the summed RSS of ``cmd``'s whole process tree, sampled from ``/proc`` (bytes).

    Sampling can miss a short spike, so this is a lower bound; it is run untimed, apart from
    the timed rounds, because the sampling itself costs CPU.
    """
    if not os.path.isdir("/proc"):
        return 0
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss_bytes(proc.pid))
            done.wait(interval)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    proc.wait()
    done.set()
    thread.join()
    return peak


# --------------------------------------------------------------------------- tools


def looplint_help() -> str:
    """``looplint check --help``, to detect options (the CLI is still growing)."""
    proc = subprocess.run(
        corpus.looplint_cmd("check", "--help"), capture_output=True, text=True, cwd=corpus.REPO_ROOT
    )
    if proc.returncode != 0:
        raise SystemExit(f"error: `looplint check --help` failed:\n{proc.stderr[-2000:]}")
    return proc.stdout


def ensure_torchfix() -> Path:
    """Create ``benchmarks/.cache/torchfix-venv`` with TorchFix in it (cached); return its CLI.

    A separate venv because TorchFix pins ``libcst<1.6`` and must not downgrade ours; it does
    not need torch.
    """
    exe = TORCHFIX_VENV / "bin" / "torchfix"
    if exe.exists():
        return exe
    print(f"[speed] creating {TORCHFIX_VENV} with {TORCHFIX_REQ}", file=sys.stderr)
    venv.EnvBuilder(with_pip=True, clear=True).create(TORCHFIX_VENV)
    subprocess.run(
        [str(TORCHFIX_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
         "--disable-pip-version-check", TORCHFIX_REQ],
        check=True,
    )  # fmt: skip
    return exe


def ensure_ruff() -> tuple[Path, str]:
    """``benchmarks/.cache/ruff-venv`` with ruff in it (pip-installed when missing): its CLI
    and version. Pinned, like TorchFix, so the reference does not move under us."""
    exe = RUFF_VENV / "bin" / "ruff"
    if not exe.exists():
        print(f"[speed] creating {RUFF_VENV} with {RUFF_REQ}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(RUFF_VENV)
        subprocess.run(
            [str(RUFF_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", RUFF_REQ],
            check=True,
        )  # fmt: skip
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout
    return exe, version.strip() or "ruff (version ?)"


def torchfix_versions(exe: Path) -> str:
    py = exe.parent / "python"
    code = "import importlib.metadata as m;print(m.version('torchfix'), m.version('libcst'))"
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True).stdout.split()
    return f"TorchFix {out[0]} (libcst {out[1]})" if len(out) == 2 else "TorchFix (version ?)"


@dataclass
class Screening:
    """What looplint's two-stage screen keeps of the corpus, and what each stage costs."""

    text_kept: list[Path]
    syntax_kept: list[Path]
    text_s: float
    syntax_s: float
    note: str


def screen_corpus(files: Sequence[Path]) -> Screening:
    """Stage 1 (every enabled rule's words) and stage 2 (their ``ast`` predicates), timed in
    this process, one core; all files when looplint's screening is not importable."""
    try:
        from looplint.files.screening import Screen, passes
        from looplint.registry import rule_classes
    except ImportError as exc:
        note = f"looplint.files.screening not importable ({exc}): floor parses ALL files"
        return Screening(list(files), list(files), 0.0, 0.0, note)
    screens = list(dict.fromkeys(rule.screen for rule in rule_classes()))
    words_only = [Screen(screen.words) for screen in screens]
    texts = [(f, f.read_bytes().decode("utf-8", errors="replace")) for f in files]
    start = time.process_time()
    text_kept = [(f, text) for f, text in texts if passes(text, words_only)]
    middle = time.process_time()
    syntax_kept = [f for f, text in text_kept if passes(text, screens)]
    end = time.process_time()
    note = "files whose text passes stage 1 of looplint.files.screening (every rule's words)"
    return Screening([f for f, _ in text_kept], syntax_kept, middle - start, end - middle, note)


def _parse_one(path: str) -> tuple[str, str | None]:
    import libcst

    try:
        with open(path, "rb") as fh:
            libcst.parse_module(fh.read())
    except Exception as exc:  # report, never abort: one odd file must not hide the rest
        return path, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return path, None


def floor_worker(list_file: Path) -> int:
    """Child-process entry: parse every listed file in a Pool; failures go to ``<list>.json``.

    Run as a separate process so its time includes interpreter start-up and libcst import,
    exactly as looplint's does, and its memory is measured the same way.
    """
    import multiprocessing

    files = list_file.read_text(encoding="utf-8").splitlines()
    failed: list[tuple[str, str]] = []
    with multiprocessing.Pool(os.cpu_count()) as pool:
        for path, error in pool.imap_unordered(_parse_one, files, chunksize=8):
            if error is not None:
                failed.append((path, error))
    report = {"parsed": len(files) - len(failed), "failed": sorted(failed)}
    list_file.with_suffix(".json").write_text(json.dumps(report), encoding="utf-8")
    return 0


# --------------------------------------------------------------------------- benchmark


@dataclass
class Bench:
    """A named command measured over several rounds."""

    name: str
    cmd: list[str]
    ok_codes: tuple[int, ...] = (0,)
    walls: list[float] = field(default_factory=list)
    maxrss_kib: list[int] = field(default_factory=list)
    last: RunResult | None = None

    def measure(self) -> RunResult:
        res = run_timed(self.cmd, cwd=corpus.REPO_ROOT)
        if res.returncode not in self.ok_codes:
            raise SystemExit(
                f"error: {self.name} exited {res.returncode}: {corpus.display_cmd(self.cmd)}\n"
                f"{res.stderr[-3000:]}"
            )
        self.walls.append(res.wall_s)
        self.cpus.append(res.cpu_s)
        self.maxrss_kib.append(res.maxrss_kib)
        self.last = res
        return res

    cpus: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpus) if self.cpus else 0.0


def _load(average: tuple[float, float, float]) -> str:
    return ", ".join(f"{value:.1f}" for value in average)


def _mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.0f} MiB"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions")
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_PACKAGES)}")
    parser.add_argument("--only", action="append", metavar="NAME", help="restrict packages")
    parser.add_argument("--no-torchfix", action="store_true", help="skip TorchFix")
    parser.add_argument("--no-ruff", action="store_true", help="skip ruff")
    parser.add_argument(
        "--torchfix-select", default=None, metavar="SEL",
        help="pass --select SEL to TorchFix (default: its default rule set)",
    )  # fmt: skip
    parser.add_argument(
        "--torchfix-rounds", type=int, default=1, metavar="N",
        help="time TorchFix in the first N rounds only (default 1: it takes 30+ min per run"
        " on the full corpus with 2 cores, more on a busy machine)",
    )  # fmt: skip
    parser.add_argument("--no-memory", action="store_true", help="skip the /proc memory pass")
    parser.add_argument(
        "--torchfix-memory", action="store_true",
        help="include TorchFix in the untimed memory pass (one more full TorchFix run)",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    parser.add_argument("--floor-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.floor_worker is not None:
        return floor_worker(args.floor_worker)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    # The speed goals are stated for the library group; `--only training` measures the rest.
    only = args.only or (list(QUICK_PACKAGES) if args.quick else ["libraries"])
    packages = corpus.select_packages(only)
    corpus.prepare_corpus(only)
    dirs = corpus.corpus_dirs(only)
    dir_args = [str(d) for d in dirs]
    files = list(corpus.iter_py_files(dirs))
    stats = corpus.corpus_stats(dirs)
    notes: list[str] = []

    canary_error = corpus.canary_check()
    if canary_error is not None:
        raise SystemExit(f"error: {canary_error}")
    # looplint: detect optional flags at run time.
    help_text = looplint_help()
    has_no_cache = "--no-cache" in help_text
    has_cache_dir = "--cache-dir" in help_text
    cold_flags = ["--no-cache"] if has_no_cache else []
    if not has_no_cache:
        notes.append("`looplint check` has no `--no-cache`: cold run only, no warm/edit runs.")
    looplint = Bench(
        "looplint", corpus.looplint_cmd("check", "--exit-zero", *cold_flags, *dir_args), (0, 1)
    )
    benches: list[Bench] = [looplint]

    ruff: Bench | None = None
    ruff_version = ""
    if not args.no_ruff:
        ruff_exe, ruff_version = ensure_ruff()
        # --isolated: no configuration file of the checkout or the corpus applies to ruff.
        ruff_cmd = [str(ruff_exe), "check", "--select", "ALL", "--isolated", "--no-cache",
                    "--exit-zero", "--quiet", *dir_args]  # fmt: skip
        ruff = Bench("ruff check --select ALL", ruff_cmd, (0, 1))
        benches.append(ruff)

    torchfix: Bench | None = None
    tf_version = ""
    if not args.no_torchfix:
        exe = ensure_torchfix()
        tf_version = torchfix_versions(exe)
        select = ["--select", args.torchfix_select] if args.torchfix_select else []
        # exit 1 = TorchFix failed on some file; that is a result, not a harness error.
        torchfix = Bench("TorchFix", [str(exe), *select, *dir_args], (0, 1))
        benches.append(torchfix)

    screening = screen_corpus(files)
    candidates, floor_note = screening.text_kept, screening.note
    list_file = CACHE_DIR / "floor-files.txt"
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    list_file.write_text("".join(f"{p}\n" for p in candidates), encoding="utf-8")
    floor = Bench(
        "floor (libcst.parse_module)",
        [sys.executable, str(Path(__file__).resolve()), "--floor-worker", str(list_file)],
    )
    benches.append(floor)

    warm: Bench | None = None
    edited: Bench | None = None
    alone: Bench | None = None
    edit_file: Path | None = None
    if has_no_cache:
        cache_flags: list[str] = []
        if has_cache_dir:
            cache_flags = ["--cache-dir", str(LOOPLINT_CACHE)]
            if LOOPLINT_CACHE.exists():
                import shutil

                shutil.rmtree(LOOPLINT_CACHE)
        warm_cmd = corpus.looplint_cmd("check", "--exit-zero", *cache_flags, *dir_args)
        warm = Bench("looplint warm cache", warm_cmd, (0, 1))
        edited = Bench("looplint, one file changed", warm_cmd, (0, 1))
        edit_file = _pick_edit_target(candidates or files)
        alone_cmd = corpus.looplint_cmd("check", "--exit-zero", *cold_flags, str(edit_file))
        alone = Bench("looplint, the changed file alone (its own cost)", alone_cmd, (0, 1))

    load_before = os.getloadavg()
    print(
        f"[speed] {stats.files:,} files, {stats.lines:,} lines; floor parses "
        f"{len(candidates):,} ({floor_note}); {args.rounds} rounds",
        file=sys.stderr,
    )
    if warm is not None:
        print("[speed] filling the looplint cache (untimed)", file=sys.stderr)
        run_timed(warm.cmd, cwd=corpus.REPO_ROOT)

    for rnd in range(args.rounds):
        k = rnd % len(benches)
        for bench in benches[k:] + benches[:k]:  # rotate the order each round
            if bench is torchfix and rnd >= args.torchfix_rounds:
                continue
            res = bench.measure()
            print(f"[speed] round {rnd + 1}: {bench.name}: {res.wall_s:.2f} s", file=sys.stderr)
        if warm is not None and edited is not None and edit_file is not None:
            res = warm.measure()
            print(f"[speed] round {rnd + 1}: {warm.name}: {res.wall_s:.2f} s", file=sys.stderr)
            res = _with_edit(edit_file, edited.measure)
            print(f"[speed] round {rnd + 1}: {edited.name}: {res.wall_s:.2f} s", file=sys.stderr)
            run_timed(warm.cmd, cwd=corpus.REPO_ROOT)  # re-warm after restoring the file
            if alone is not None:
                res = alone.measure()
                print(f"[speed] round {rnd + 1}: {alone.name}: {res.wall_s:.2f} s", file=sys.stderr)
    load_after = os.getloadavg()

    floor_failures: list[tuple[str, str]] = []
    try:
        report_data = json.loads(list_file.with_suffix(".json").read_text(encoding="utf-8"))
        floor_failures = [(str(p), str(e)) for p, e in report_data["failed"]]
    except (OSError, json.JSONDecodeError, KeyError, ValueError):
        notes.append("could not read the floor worker's parse report")

    tf_files = ""
    if torchfix is not None and torchfix.last is not None:
        m = re.search(r"Finished checking (\d+) files", torchfix.last.stderr)
        tf_files = m.group(1) if m else "?"

    tree_peak: dict[str, int] = {}
    if not args.no_memory:
        in_pass = [looplint, floor] + ([torchfix] if torchfix and args.torchfix_memory else [])
        for bench in in_pass:
            print(f"[speed] memory pass: {bench.name}", file=sys.stderr)
            tree_peak[bench.name] = peak_tree_rss(bench.cmd, cwd=corpus.REPO_ROOT)

    report = render(
        packages=packages,
        stats=stats,
        rounds=args.rounds,
        torchfix_rounds=min(args.rounds, args.torchfix_rounds),
        benches=[
            b for b in (looplint, ruff, torchfix, floor, warm, edited, alone) if b is not None
        ],
        looplint=looplint,
        ruff=ruff,
        ruff_version=ruff_version,
        torchfix=torchfix,
        floor=floor,
        warm=warm,
        edited=edited,
        alone=alone,
        screening=screening,
        load=(load_before, load_after),
        n_candidates=len(candidates),
        floor_note=floor_note,
        floor_failures=floor_failures,
        tf_version=tf_version,
        tf_files=tf_files,
        edit_file=edit_file,
        tree_peak=tree_peak,
        notes=notes,
    )
    print(report)
    if not args.no_write:
        corpus.write_section("speed", report)
        print(f"[speed] wrote section 'speed' of {corpus.RESULTS_MD}", file=sys.stderr)
    return 0


def _pick_edit_target(files: Sequence[Path]) -> Path:
    """A known training-loop file if present, else the largest file (the worst single edit)."""
    present = set(files)
    for rel in EDIT_TARGETS:
        path = corpus.SRC_ROOT / rel
        if path in present:
            return path
    return max(files, key=lambda p: p.stat().st_size)


def _with_edit(path: Path, action: Callable[[], RunResult]) -> RunResult:
    """Run ``action`` with a comment appended to ``path``; restore bytes and mtime after."""
    original = path.read_bytes()
    st = path.stat()
    try:
        path.write_bytes(original + EDIT_SUFFIX)
        return action()
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def render(
    *,
    packages: Sequence[tuple[str, str]],
    stats: corpus.CorpusStats,
    rounds: int,
    torchfix_rounds: int,
    benches: Sequence[Bench],
    looplint: Bench,
    ruff: Bench | None,
    ruff_version: str,
    torchfix: Bench | None,
    floor: Bench,
    warm: Bench | None,
    edited: Bench | None,
    alone: Bench | None,
    screening: Screening,
    load: tuple[tuple[float, float, float], tuple[float, float, float]],
    n_candidates: int,
    floor_note: str,
    floor_failures: Sequence[tuple[str, str]],
    tf_version: str,
    tf_files: str,
    edit_file: Path | None,
    tree_peak: dict[str, int],
    notes: Sequence[str],
) -> str:
    """The Markdown section of RESULTS.md."""
    libcst_version = importlib.metadata.version("libcst")
    lines = [
        "## Speed (`benchmarks/speed.py`)",
        "",
        "Corpus: " + ", ".join(f"{n}=={v}" for n, v in packages),
        f"({stats.files:,} files, {stats.lines:,} lines). Machine: {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, libcst {libcst_version}"
        + (f"; {ruff_version}" if ruff_version else "")
        + (f"; {tf_version}" if tf_version else "")
        + f". Median of {rounds} interleaved round(s)"
        + (f" (TorchFix: {torchfix_rounds})" if torchfix and torchfix_rounds < rounds else "")
        + f". Load average (1, 5, 15 min) before: {_load(load[0])}; after: {_load(load[1])}.",
        "",
        "| run | median wall | all rounds | median CPU | files/s | max RSS, one process | "
        "peak RSS, whole tree |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for b in benches:
        n_files = n_candidates if b is floor else 1 if b is alone else stats.files
        tree = tree_peak.get(b.name)
        lines.append(
            f"| {b.name} | {b.median:.2f} s | "
            + ", ".join(f"{w:.2f}" for w in b.walls)
            + f" | {b.cpu_median:.2f} s"
            + f" | {n_files / b.median:,.0f} | {_mib(max(b.maxrss_kib) * 1024)} | "
            + (_mib(tree) if tree else "-")
            + " |"
        )
    lines += [
        "",
        f"- screening: stage 1 (text) keeps {len(screening.text_kept):,} of {stats.files:,} "
        f"files ({screening.text_s:.2f} s CPU, one core), stage 2 (`ast`) keeps "
        f"{len(screening.syntax_kept):,} of those ({screening.syntax_s:.2f} s CPU): only "
        f"these are parsed with LibCST.",
    ]
    if ruff is not None:
        lines.append(
            f"- looplint / ruff: **{looplint.median / ruff.median:.2f}x** wall, "
            f"**{looplint.cpu_median / ruff.cpu_median:.2f}x** CPU (goal: at most 1.0x)."
        )
    lines.append(
        f"- looplint / floor: **{looplint.median / floor.median:.2f}x** wall, "
        f"**{looplint.cpu_median / floor.cpu_median:.2f}x** CPU (goal: at most 1.0x;"
        f" floor = {floor_note}: {n_candidates:,} of {stats.files:,} files)."
    )
    if warm is not None:
        lines.append(
            f"- warm: **{warm.median:.2f} s** wall, {warm.cpu_median:.2f} s CPU (goal: 0.3 s)."
        )
    if edited is not None and alone is not None:
        lines.append(
            f"- one file changed: **{edited.median:.2f} s** wall ({edited.cpu_median:.2f} s CPU);"
            f" that file alone, cold: {alone.median:.2f} s ({alone.cpu_median:.2f} s CPU);"
            f" the difference: **{edited.median - alone.median:.2f} s** wall,"
            f" {edited.cpu_median - alone.cpu_median:.2f} s CPU (goal: 0.5 s)."
        )
    if torchfix is not None:
        lines.append(
            f"- TorchFix / looplint: **{torchfix.median / looplint.median:.2f}x**"
            f" (TorchFix checked {tf_files} files: it only parses files that contain the"
            " string `torch`; default rule set, which leaves out TOR3xx, TOR4xx, TOR9xx)."
        )
    if edit_file is not None:
        lines.append(
            f"- one file changed: `{edit_file.relative_to(corpus.SRC_ROOT)}` had a comment "
            "appended, then was restored (bytes and mtime)."
        )
    if floor_failures:
        lines.append(f"- files libcst cannot parse ({len(floor_failures)}):")
        lines += [
            f"  - `{Path(p).relative_to(corpus.SRC_ROOT)}`: {corpus.md_cell(e)}"
            for p, e in floor_failures
        ]
    else:
        lines.append("- libcst parsed every floor file.")
    lines += [f"- {n}" for n in notes]
    lines += ["", "Commands (`<corpus>` = the package directories under benchmarks/.corpus/src):"]
    for b in benches:
        lines.append(f"- {b.name}: `{corpus.display_cmd(b.cmd)}`")
    lines.append(
        "- wall time by `time.perf_counter` around the process; max RSS of one process by "
        "`os.wait4`; whole-tree peak by sampling `/proc` every 50 ms in a separate untimed run."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
