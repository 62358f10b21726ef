"""looplint beside torch-preflight, the other LibCST linter for PyTorch training code.

Why: a claim that looplint catches bugs other tools miss, or raises fewer false alarms, is
only worth something measured against the peer, on the same files, with every finding of a
bug class both tools claim to catch judged by hand. This script installs a pinned
``torch-preflight`` into its own virtualenv under ``benchmarks/.cache/`` (never into the
environment running it), runs both tools on

1. the bundled ``fixtures/``, whose ``# expect: LLxxx`` comments are the ground truth, and
2. ``training-repos`` (69 public training repositories, unpacked from
   ``../shared/training-repos`` into ``benchmarks/.cache/training-repos`` or given with
   ``--training-repos DIR``), where each finding of a shared rule carries a hand-written
   verdict from ``benchmarks/peer_verdicts.toml``,

times both as whole processes (alternating, the order swapped every round, median
reported), and writes the side-by-side tables into its own section of
``benchmarks/RESULTS.md``.

Shared rules are the pairs in ``SHARED_RULES``; a pair whose looplint rule the installed
looplint does not have yet is still shown (the peer's side is measured), so the script
follows the rules as they land.

Usage::

    python benchmarks/peers.py                          # 3 rounds, writes the `peers` section
    python benchmarks/peers.py --training-repos /work/tr --rounds 5
    python benchmarks/peers.py --repos-rounds 1         # the peer takes minutes on the repos
    python benchmarks/peers.py --no-write               # print the section only
"""

from __future__ import annotations

import argparse
import ast
import collections
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import corpus  # sibling module: benchmarks/ is not a package

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the project supports 3.10, where tomli is a dependency
    import tomli as tomllib

sys.path.insert(0, str(corpus.REPO_ROOT))
from tests.expectations import expected_findings

CACHE_DIR = corpus.BENCH_DIR / ".cache"
PEER_VENV = CACHE_DIR / "peers-venv"
PEER_NAME = "torch-preflight"
# The release whose rules issue 15 compares against; pinned so the peer cannot move under us.
PEER_VERSION = "0.5.0"
FIXTURES = corpus.REPO_ROOT / "fixtures"
TRAINING_REPOS_CACHE = CACHE_DIR / "training-repos"
VERDICTS_TOML = corpus.BENCH_DIR / "peer_verdicts.toml"
LOOPLINT = "looplint"

# A true finding on the same file within this many lines of one of the other tool's is taken
# as the same bug (the tools anchor differently: `backward()` against `step()`, a loader
# against its loop); `[same_bug]` in the verdicts file pairs the ones further apart.
SAME_BUG_WINDOW = 25


@dataclass(frozen=True, slots=True)
class SharedRule:
    """A bug class both tools claim to catch: the looplint rule, the peer's, and how they differ."""

    code: str
    peer_codes: tuple[str, ...]
    bug: str
    scope: str


# Read from the peer's rule sources (torch_preflight/rules/tg0*.py in the 0.5.0 wheel). The
# peer's other rules have no looplint counterpart: TG004 (DataLoader settings that stall a
# GPU), TG007 (device synchronisation in a loop), TG008 (unseeded randomness), TG010
# (projected out-of-memory), TG013 (repeated host-to-device copies) are about speed, memory
# budgets and reproducibility, not a silently wrong training step.
SHARED_RULES: tuple[SharedRule, ...] = (
    SharedRule(
        "LL001", ("TG003",), "gradients never cleared between steps",
        "TG003: a `backward()` whose innermost loop has no `zero_grad` call and an optimizer-"
        "looking `.step()`, in the same file",
    ),
    SharedRule(
        "LL006", ("TG001",), "tensor kept with its autograd graph across iterations",
        "TG001 is wider: any graph-carrying tensor stored in a container or summed (outputs too,"
        " not only losses), as a warning when its backward already ran",
    ),
    SharedRule(
        "LL011", ("TG011",), "eval() in the training loop, never train() again",
        "TG011: `x.eval()` inside an epoch loop that backwards and iterates a validation-named"
        " loader, with no `x.train()` in that loop",
    ),
    SharedRule(
        "LL012", ("TG005", "TG006"), "activation before a loss that applies its own",
        "TG006 also warns that `sigmoid` + `BCELoss` is numerically fragile while correct"
        " (advice here)",
    ),
    SharedRule(
        "LL013", ("TG014",), "accumulated loss not divided by the accumulation count",
        "TG014: a `backward()` in a loop whose optimizer step is under an `if ... % N` and no"
        " division by `N` in the loop",
    ),
    SharedRule(
        "LL014", ("TG002",), "evaluation with autograd on",
        "TG002: a model call in an evaluation-named function, after `eval()`, or in a loop"
        " over a validation-named loader, outside `no_grad`",
    ),
    SharedRule(
        "LL015", ("TG012",), "distributed sampling (no DistributedSampler, no set_epoch)",
        "TG012 checks only the missing `DistributedSampler` (and warns on evaluation loaders:"
        " advice here); LL015 also reports a shuffling sampler whose `set_epoch` is never called",
    ),
)  # fmt: skip
SHARED_OF_PEER = {peer: rule for rule in SHARED_RULES for peer in rule.peer_codes}
SHARED_OF_LOOPLINT = {rule.code: rule for rule in SHARED_RULES}

VERDICT_KINDS = ("real bug", "false alarm", "advice")
"""How a verdict starts. *advice*: the finding itself says the code is correct (the peer's
"correct but numerically fragile" `sigmoid` + `BCELoss`, its evaluation-loader warning that
costs work but not correctness); counted apart, in neither precision nor recall."""


# --------------------------------------------------------------------------- findings


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding of either tool, with its path relative to the input it came from."""

    tool: str
    path: str
    line: int
    code: str
    message: str
    cell: int | None = None

    @property
    def key(self) -> str:
        """``tool:path:line:code`` (``path#cellN`` in a notebook): the verdict key."""
        where = self.path if self.cell is None else f"{self.path}#cell{self.cell}"
        return f"{self.tool}:{where}:{self.line}:{self.code}"

    @property
    def shared(self) -> SharedRule | None:
        if self.tool == LOOPLINT:
            return SHARED_OF_LOOPLINT.get(self.code)
        return SHARED_OF_PEER.get(self.code)

    @property
    def in_notebook(self) -> bool:
        return self.path.endswith(".ipynb")


@dataclass
class Tool:
    """One linter: how to run it on a folder and read its JSON into findings."""

    name: str
    version: str
    rules: dict[str, str]
    argv: list[str]
    walls: dict[str, list[float]] = field(default_factory=dict)

    def command(self, target: Path, shared_only: bool) -> list[str]:
        """The command line; ``shared_only``: only its rules of the shared bug classes."""
        if not shared_only:
            return [*self.argv, str(target)]
        return [*self.argv, "--select", ",".join(self.shared_codes()), str(target)]

    def shared_codes(self) -> list[str]:
        if self.name == LOOPLINT:
            return sorted(code for code in self.rules if code in SHARED_OF_LOOPLINT)
        return sorted(code for code in self.rules if code in SHARED_OF_PEER)

    def parse(self, stdout: str, root: Path) -> list[Finding]:
        data = json.loads(stdout)
        rows = data if self.name == LOOPLINT else data["diagnostics"]
        return [
            Finding(
                self.name,
                _relative(str(row["path"]), root),
                int(row["line"]),
                str(row["code"]),
                str(row.get("message", "")),
                row.get("cell"),
            )
            for row in rows
        ]


def _relative(path: str, root: Path) -> str:
    p = Path(path)
    if not p.is_absolute():
        p = corpus.REPO_ROOT / p
    try:
        return p.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(path).as_posix()


def looplint_tool() -> Tool:
    """The looplint of this checkout, with the rules it has now (they land during a session)."""
    listing = subprocess.run(
        corpus.looplint_cmd("rules"), capture_output=True, text=True, cwd=corpus.REPO_ROOT
    )
    if listing.returncode != 0:
        raise SystemExit(f"error: `looplint rules` failed:\n{listing.stderr[-2000:]}")
    rules = {}
    for line in listing.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("LL"):
            rules[parts[0]] = parts[1]
    version = subprocess.run(
        corpus.looplint_cmd("--version"), capture_output=True, text=True, cwd=corpus.REPO_ROOT
    ).stdout.strip()
    argv = corpus.looplint_cmd("check", "--format", "json", "--exit-zero", "--no-cache")
    return Tool(LOOPLINT, version or "looplint", rules, argv)


def ensure_peer() -> Tool:
    """``benchmarks/.cache/peers-venv`` with the pinned torch-preflight (created once).

    Its own virtualenv: it brings its own libcst and rich, which must neither change nor be
    borrowed from the environment that runs looplint.
    """
    python = PEER_VENV / "bin" / "python"
    probe = (
        "import json, importlib.metadata as m\n"
        "from torch_preflight.rules import all_rules\n"
        "print(json.dumps({'version': m.version('torch-preflight'),"
        " 'libcst': m.version('libcst'),"
        " 'rules': {r.code: r.name for r in all_rules()}}))\n"
    )

    def describe() -> dict[str, Any] | None:
        if not python.exists():
            return None
        out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True)
        return json.loads(out.stdout) if out.returncode == 0 else None

    info = describe()
    if info is None or info["version"] != PEER_VERSION:
        print(f"[peers] creating {PEER_VENV} with {PEER_NAME}=={PEER_VERSION}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(PEER_VENV)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
             f"{PEER_NAME}=={PEER_VERSION}"],
            check=True,
        )  # fmt: skip
        info = describe()
        if info is None:
            raise SystemExit(f"error: {PEER_NAME} does not import from {PEER_VENV}")
    # `--fail-on note` is not passed: the exit code says nothing the JSON does not.
    argv = [str(PEER_VENV / "bin" / PEER_NAME), "check", "--format", "json"]
    version = f"{PEER_NAME} {info['version']} (libcst {info['libcst']})"
    return Tool(PEER_NAME, version, dict(info["rules"]), argv)


def training_repos(given: Path | None) -> Path:
    """The unpacked training-repos: ``given``, or ``unpack.sh`` into the gitignored cache.

    The archive is ``shared/training-repos`` beside the checkout or beside one of its
    parents (a worktree sits deeper than the checkout the shared folder was made for).
    """
    if given is not None:
        if not given.is_dir():
            raise SystemExit(f"error: --training-repos {given} is not a folder")
        return given
    scripts = [p / "shared" / "training-repos" / "unpack.sh" for p in corpus.REPO_ROOT.parents]
    script = next((s for s in scripts if s.is_file()), None)
    if script is None:
        raise SystemExit(
            "error: no shared/training-repos/unpack.sh beside the checkout or its parents;"
            " pass --training-repos DIR (an unpacked copy)"
        )
    out = subprocess.run(
        ["bash", str(script), str(TRAINING_REPOS_CACHE)], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise SystemExit(f"error: {script} failed:\n{out.stderr[-2000:]}")
    return Path(out.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------- running


@dataclass
class Input:
    """A folder both tools check, how often to time them there, and what each reported."""

    name: str
    root: Path
    target: Path
    rounds: int
    shared_only: bool = False
    findings: dict[str, list[Finding]] = field(default_factory=dict)
    peer_failures: list[str] = field(default_factory=list)

    def count_files(self) -> tuple[int, int]:
        py = sum(1 for _ in self.target.rglob("*.py"))
        nb = sum(1 for _ in self.target.rglob("*.ipynb"))
        return py, nb


def run_once(tool: Tool, item: Input) -> float:
    """Run ``tool`` on ``item`` as a whole process; keep its findings; return the wall time."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.run(
            tool.command(item.target, item.shared_only),
            stdout=out,
            stderr=err,
            cwd=corpus.REPO_ROOT,
        )
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        stdout = out.read().decode("utf-8", errors="replace")
        stderr = err.read().decode("utf-8", errors="replace")
    if proc.returncode not in (0, 1):
        raise SystemExit(
            f"error: {tool.name} exited {proc.returncode} on {item.name}:\n{stderr[-3000:]}"
        )
    try:
        findings = tool.parse(stdout, item.root)
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise SystemExit(
            f"error: {tool.name} printed no readable JSON ({exc}):\n{stderr[-3000:]}"
        ) from exc
    previous = item.findings.get(tool.name)
    # Compared by place and code: a message may name things in set order, which varies with
    # the interpreter's hash seed (looplint's LL008 did); the findings themselves must not.
    if previous is not None and {f.key for f in previous} != {f.key for f in findings}:
        raise SystemExit(
            f"error: {tool.name} reported different findings on two runs of {item.name}"
        )
    item.findings[tool.name] = findings
    if tool.name == PEER_NAME:
        item.peer_failures = [
            f"{_relative(f['path'], item.root)}: {f['error']}"
            for f in json.loads(stdout)["failures"]
        ]
    tool.walls.setdefault(item.name, []).append(wall)
    return wall


def _order(f: Finding) -> tuple[str, int, str, int]:
    return (f.path, f.line, f.code, f.cell or 0)


def measure(tools: Sequence[Tool], inputs: Sequence[Input]) -> None:
    """Alternate the tools on every input, swapping who goes first each round."""
    for rnd in range(max(item.rounds for item in inputs)):
        order = list(tools) if rnd % 2 == 0 else list(reversed(tools))
        for item in (i for i in inputs if rnd < i.rounds):
            for tool in order:
                wall = run_once(tool, item)
                print(
                    f"[peers] round {rnd + 1}: {tool.name} on {item.name}: {wall:.2f} s",
                    file=sys.stderr,
                )


# --------------------------------------------------------------------------- verdicts


@dataclass
class Verdicts:
    """Hand-written verdicts (``[verdicts]``) and pairs of findings of one bug (``[same_bug]``)."""

    text: dict[str, str]
    same_bug: dict[str, str]

    @classmethod
    def load(cls, path: Path = VERDICTS_TOML) -> Verdicts:
        if not path.exists():
            return cls({}, {})
        with path.open("rb") as fh:
            data = tomllib.load(fh)
        text = {str(k): str(v) for k, v in data.get("verdicts", {}).items()}
        pairs = {str(k): str(v) for k, v in data.get("same_bug", {}).items()}
        return cls(text, pairs)

    def kind(self, finding: Finding) -> str:
        verdict = self.text.get(finding.key)
        if verdict is None:
            return "unreviewed"
        head = verdict.split(":", 1)[0].strip()
        return next((k for k in VERDICT_KINDS if head.startswith(k)), "unreviewed")


def enclosing_function(path: Path, line: int) -> int:
    """First line of the innermost function around ``line`` (0: module level).

    On the fixtures a bug is identified by its function: the tools anchor one bug on
    different lines (`backward()` against `step()`), and a fixture file often holds a buggy
    function beside a correct twin, so the file alone is too coarse.
    """
    if path.suffix != ".py":
        return 0
    best = 0
    for node in ast.walk(_parsed(path)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            end = node.end_lineno or node.lineno
            if node.lineno <= line <= end and node.lineno > best:
                best = node.lineno
    return best


@functools.cache
def _parsed(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"))


@functools.cache
def fixture_bugs(code: str) -> frozenset[tuple[str, int]]:
    """(path, function) of every fixture bug of ``code`` that a `# expect:` comment marks."""
    bugs: set[tuple[str, int]] = set()
    for path in sorted(FIXTURES.rglob("*")):
        if path.suffix not in (".py", ".ipynb") or "__pycache__" in path.parts:
            continue
        for cell, line, expected in expected_findings(path):
            if expected == code:
                where = line if cell is None else cell
                rel = path.relative_to(corpus.REPO_ROOT).as_posix()
                bugs.add((rel, enclosing_function(path, where) if cell is None else -where))
    return frozenset(bugs)


def fixture_verdict(finding: Finding, verdicts: Verdicts) -> tuple[str, str]:
    """Judge a finding on the fixtures: a hand verdict wins, else the `# expect:` comments.

    looplint's finding is true when its exact (line, code) is expected. The peer's is true
    when the function around it holds an expected bug of the looplint rule of the same class.
    """
    if finding.key in verdicts.text:
        return verdicts.kind(finding), verdicts.text[finding.key]
    path = corpus.REPO_ROOT / finding.path
    if finding.tool == LOOPLINT:
        hit = (finding.cell, finding.line, finding.code) in expected_findings(path)
        return ("real bug", "expected") if hit else ("false alarm", "not expected")
    rule = finding.shared
    assert rule is not None
    if _fixture_bug_of(finding) in fixture_bugs(rule.code):
        return "real bug", f"its function expects {rule.code}"
    return "false alarm", f"its function expects no {rule.code}"


def _fixture_bug_of(finding: Finding) -> tuple[str, int]:
    path = corpus.REPO_ROOT / finding.path
    if finding.cell is not None:
        return finding.path, -finding.cell
    return finding.path, enclosing_function(path, finding.line)


@dataclass
class Tally:
    """Verdict counts of one tool on one shared rule."""

    counts: collections.Counter[str] = field(default_factory=collections.Counter)

    def precision(self) -> str:
        judged = self.counts["real bug"] + self.counts["false alarm"]
        if not judged:
            return "-"
        return f"{self.counts['real bug'] / judged:.0%}"

    def cell(self) -> str:
        c = self.counts
        total = sum(c.values())
        parts = [f"{c['real bug']} true", f"{c['false alarm']} false"]
        if c["advice"]:
            parts.append(f"{c['advice']} advice")
        if c["unreviewed"]:
            parts.append(f"{c['unreviewed']} unreviewed")
        return f"{total} ({', '.join(parts)})"


def pair_real_bugs(
    mine: Iterable[Finding],
    theirs: Iterable[Finding],
    kind_of: dict[str, str],
    same_bug: dict[str, str],
) -> set[str]:
    """Keys of ``mine`` whose bug ``theirs`` also reports (true findings of the same class)."""
    theirs_real = [f for f in theirs if kind_of[f.key] == "real bug"]
    paired: set[str] = set()
    explicit = {**same_bug, **{v: k for k, v in same_bug.items()}}
    for f in mine:
        if kind_of[f.key] != "real bug":
            continue
        for other in theirs_real:
            near = other.path == f.path and abs(other.line - f.line) <= SAME_BUG_WINDOW
            if other.shared == f.shared and (near or explicit.get(f.key) == other.key):
                paired.add(f.key)
                break
    return paired


# --------------------------------------------------------------------------- report


def _median(walls: Sequence[float]) -> str:
    return f"{statistics.median(walls):.2f} s"


def render(
    tools: Sequence[Tool],
    inputs: Sequence[Input],
    verdicts: Verdicts,
    fixtures: Input,
    repos: Input,
) -> str:
    """The Markdown section: wall time, findings per rule, the shared rules side by side."""
    looplint, peer = tools
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "## looplint vs torch-preflight (`benchmarks/peers.py`)",
        "",
        f"{looplint.version} (this checkout, {len(looplint.rules)} codes) against "
        f"{peer.version}, installed by the script in `benchmarks/.cache/peers-venv`. Machine: "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, load average "
        f"{load:.1f} at the end (a shared machine: compare the two columns, not runs).",
        "",
        "### Wall time (whole process; median of the rounds, the tools alternating and the "
        "order swapped every round)",
        "",
        "| input | `.py` / `.ipynb` files | rules | looplint | torch-preflight "
        "| looplint, all rounds | torch-preflight, all rounds |",
        "| --- | ---: | --- | ---: | ---: | --- | --- |",
    ]
    for item in inputs:
        py, nb = item.count_files()
        lw, pw = looplint.walls[item.name], peer.walls[item.name]
        rules = (
            "shared classes only: " + ", ".join(looplint.shared_codes() + peer.shared_codes())
            if item.shared_only
            else "all (defaults)"
        )
        lines.append(
            f"| {item.name} | {py:,} / {nb:,} | {rules} | {_median(lw)} | {_median(pw)} | "
            + ", ".join(f"{w:.2f}" for w in lw)
            + " | "
            + ", ".join(f"{w:.2f}" for w in pw)
            + " |"
        )
    lines += [
        "",
        f"Both with their default jobs (all cores) and JSON output; looplint with `--no-cache`. "
        f"torch-preflight reads `.py` files only (notebooks are not checked); "
        f"files it could not parse: {len(repos.peer_failures) + len(fixtures.peer_failures)}. "
        "Run with all rules, torch-preflight spends most of its time in TG008 (unseeded run), "
        "which walks the enclosing function again for every call.",
        "",
        "### Findings per rule (every rule of both tools)",
        "",
        "| tool | code | name | shared bug class | fixtures | training-repos |",
        "| --- | --- | --- | --- | ---: | ---: |",
    ]
    for tool in tools:
        per_input = {
            item.name: collections.Counter(f.code for f in item.findings[tool.name])
            for item in inputs
        }
        for code, name in sorted(tool.rules.items()):
            shared = SHARED_OF_LOOPLINT.get(code) if tool is looplint else SHARED_OF_PEER.get(code)
            counts = [
                "not run"
                if item.shared_only and not shared and not per_input[item.name][code]
                else str(per_input[item.name][code])
                for item in inputs
            ]
            lines.append(
                f"| {tool.name} | {code} | {name} | {shared.code if shared else '-'} | "
                + " | ".join(counts)
                + " |"
            )

    lines += _shared_fixture_table(looplint, fixtures, verdicts)
    lines += _shared_repos_table(looplint, repos, verdicts)
    current = {f.key for item in inputs for fs in item.findings.values() for f in fs}
    stale = sorted(set(verdicts.text) - current)
    if stale:
        lines += ["", f"Verdicts that match no current finding ({len(stale)}):", ""]
        lines += [f"- `{k}`" for k in stale]
    return "\n".join(lines) + "\n"


def _shared_fixture_table(looplint: Tool, fixtures: Input, verdicts: Verdicts) -> list[str]:
    """Per shared rule: fixture bugs, how many each tool finds, the peer's true/false."""
    lines = [
        "",
        "### Shared rules on the fixtures",
        "",
        "Ground truth: the `# expect:` comments (looplint's own test set, so looplint matches "
        "it by construction: `tests/test_fixtures.py` fails otherwise). A *bug* is a function "
        "(or notebook cell, or module level) with an expected finding of the rule. A "
        "torch-preflight finding is true when its function holds an expected bug of the "
        "looplint rule of the same class, unless `peer_verdicts.toml` says otherwise.",
        "",
        "| bug class | looplint | torch-preflight | bugs | found by looplint "
        "| found by torch-preflight | torch-preflight findings | torch-preflight precision |",
        "| --- | --- | --- | ---: | ---: | ---: | --- | ---: |",
    ]
    rows: list[tuple[Finding, str, str]] = []
    for rule in SHARED_RULES:
        bugs = fixture_bugs(rule.code)
        have = rule.code in looplint.rules
        found: dict[str, set[tuple[str, int]]] = {LOOPLINT: set(), PEER_NAME: set()}
        tally = Tally()
        for tool in (LOOPLINT, PEER_NAME):
            for f in fixtures.findings[tool]:
                if f.shared is not rule:
                    continue
                kind, why = fixture_verdict(f, verdicts)
                if kind == "real bug":
                    found[tool].add(_fixture_bug_of(f))
                if tool == PEER_NAME:
                    tally.counts[kind] += 1
                    rows.append((f, kind, why))
        lines.append(
            f"| {rule.bug} | {rule.code if have else f'{rule.code} (not in this looplint)'} | "
            f"{', '.join(rule.peer_codes)} | {len(bugs)} | "
            f"{len(found[LOOPLINT] & bugs) if have else '-'} | {len(found[PEER_NAME] & bugs)} | "
            f"{tally.cell()} | {tally.precision()} |"
        )
    lines += ["", "torch-preflight's findings of the shared rules on the fixtures:", ""]
    lines += ["| path | line | code | verdict | why |", "| --- | ---: | --- | --- | --- |"]
    for f, kind, why in sorted(rows, key=lambda r: _order(r[0])):
        lines.append(f"| {f.path} | {f.line} | {f.code} | {kind} | {corpus.md_cell(why)} |")
    if not rows:
        lines.append("| (none) | | | | |")
    return lines


def _shared_repos_table(looplint: Tool, repos: Input, verdicts: Verdicts) -> list[str]:
    """Per shared rule on training-repos: findings, verdicts, precision, bugs only one finds."""
    shared = {
        tool: [f for f in repos.findings[tool] if f.shared is not None]
        for tool in (LOOPLINT, PEER_NAME)
    }
    kind_of = {f.key: verdicts.kind(f) for fs in shared.values() for f in fs}
    also = {
        LOOPLINT: pair_real_bugs(shared[LOOPLINT], shared[PEER_NAME], kind_of, verdicts.same_bug),
        PEER_NAME: pair_real_bugs(shared[PEER_NAME], shared[LOOPLINT], kind_of, verdicts.same_bug),
    }
    lines = [
        "",
        "### Shared rules on training-repos",
        "",
        "Every finding of a shared rule, by either tool, read in the source and judged in "
        "`benchmarks/peer_verdicts.toml` (keyed `tool:path:line:code`). Precision = true / "
        "(true + false); *advice* (a finding that itself says the code is correct) is in "
        "neither. *Only*: true findings the other tool does not report (no true finding of the "
        f"same class in the same file within {SAME_BUG_WINDOW} lines, or paired in "
        "`[same_bug]`).",
        "",
        "| bug class | looplint | looplint findings | precision | torch-preflight "
        "| torch-preflight findings | precision | true, only looplint "
        "| true, only torch-preflight |",
        "| --- | --- | --- | ---: | --- | --- | ---: | ---: | ---: |",
    ]
    for rule in SHARED_RULES:
        tallies = {tool: Tally() for tool in shared}
        only: collections.Counter[str] = collections.Counter()
        for tool, fs in shared.items():
            for f in fs:
                if f.shared is rule:
                    tallies[tool].counts[kind_of[f.key]] += 1
                    if kind_of[f.key] == "real bug" and f.key not in also[tool]:
                        only[tool] += 1
        have = rule.code in looplint.rules
        lines.append(
            f"| {rule.bug} | {rule.code if have else f'{rule.code} (not in this looplint)'} | "
            f"{tallies[LOOPLINT].cell() if have else '-'} | {tallies[LOOPLINT].precision()} | "
            f"{', '.join(rule.peer_codes)} | {tallies[PEER_NAME].cell()} | "
            f"{tallies[PEER_NAME].precision()} | {only[LOOPLINT] if have else '-'} | "
            f"{only[PEER_NAME]} |"
        )
    lines += ["", "Where the pairs differ in scope:", ""]
    lines += [
        f"- {rule.code} / {', '.join(rule.peer_codes)}: {rule.scope}." for rule in SHARED_RULES
    ]
    lines += [
        "",
        "Every shared-rule finding on training-repos (*also*: the other tool reports the same "
        "bug):",
        "",
        "| tool | path | line | code | verdict | also |",
        "| --- | --- | ---: | --- | --- | --- |",
    ]
    every = sorted(
        (f for fs in shared.values() for f in fs), key=lambda f: (f.path, f.line, f.tool)
    )
    for f in every:
        where = f.path if f.cell is None else f"{f.path} (cell {f.cell})"
        verdict = verdicts.text.get(f.key, "unreviewed")
        lines.append(
            f"| {f.tool} | {corpus.md_cell(where)} | {f.line} | {f.code} | "
            f"{corpus.md_cell(verdict)} | {'yes' if f.key in also[f.tool] else ''} |"
        )
    if not every:
        lines.append("| (none) | | | | | |")
    return lines


LAST_RUN = CACHE_DIR / "peers-last.json"


def save_last(tools: Sequence[Tool], fixtures: Input, repos: Input) -> None:
    """Keep what was measured, so new verdicts can be rendered without half an hour of runs."""
    data = {
        "tools": [asdict(tool) for tool in tools],
        "inputs": [
            {**asdict(item), "root": str(item.root), "target": str(item.target)}
            for item in (fixtures, repos)
        ],
    }
    LAST_RUN.write_text(json.dumps(data), encoding="utf-8")


def load_last() -> tuple[list[Tool], Input, Input]:
    if not LAST_RUN.exists():
        raise SystemExit(f"error: no earlier run in {LAST_RUN}")
    data = json.loads(LAST_RUN.read_text(encoding="utf-8"))
    tools = [Tool(**tool) for tool in data["tools"]]
    inputs = []
    for raw in data["inputs"]:
        findings = {
            name: [Finding(**f) for f in found] for name, found in raw.pop("findings").items()
        }
        item = Input(**{**raw, "root": Path(raw["root"]), "target": Path(raw["target"])})
        item.findings = findings
        inputs.append(item)
    return tools, inputs[0], inputs[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="timed runs per tool and input")
    parser.add_argument(
        "--repos-rounds", type=int, metavar="N",
        help="timed runs on training-repos (default: --rounds; the peer takes minutes there)",
    )  # fmt: skip
    parser.add_argument(
        "--training-repos", type=Path, metavar="DIR",
        help="an unpacked training-repos (default: unpack ../shared/training-repos into"
        " benchmarks/.cache/training-repos)",
    )  # fmt: skip
    parser.add_argument(
        "--repos-shared-only", action="store_true",
        help="on training-repos run each tool with only its rules of the shared bug classes"
        " (torch-preflight's TG008 alone takes most of its time there)",
    )  # fmt: skip
    parser.add_argument(
        "--from-last", action="store_true",
        help=f"render the last run again ({LAST_RUN.name}) with the current verdicts; run nothing",
    )  # fmt: skip
    parser.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = parser.parse_args(argv)
    repos_rounds = args.rounds if args.repos_rounds is None else args.repos_rounds
    if min(args.rounds, repos_rounds) < 1:
        parser.error("--rounds and --repos-rounds must be at least 1")

    canary_error = corpus.canary_check()
    if canary_error is not None:
        raise SystemExit(f"error: {canary_error}")
    tools = [looplint_tool(), ensure_peer()]
    repos_root = training_repos(args.training_repos)
    fixtures = Input("fixtures", corpus.REPO_ROOT, FIXTURES, args.rounds)
    repos = Input("training-repos", repos_root, repos_root, repos_rounds, args.repos_shared_only)
    if args.from_last:
        tools, fixtures, repos = load_last()
    else:
        measure(tools, [fixtures, repos])
        save_last(tools, fixtures, repos)

    report = render(tools, [fixtures, repos], Verdicts.load(), fixtures, repos)
    print(report)
    if not args.no_write:
        corpus.write_section("peers", report)
        print(f"[peers] wrote section 'peers' of {corpus.RESULTS_MD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
