"""Checking many files, in parallel, with output that does not depend on `--jobs`."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from looplint.finding import Finding
from looplint.registry import rule_classes
from looplint.settings.suppression import Notice

if TYPE_CHECKING:
    from concurrent.futures import ProcessPoolExecutor

    from looplint.analysis.binding import Binding
    from looplint.analysis.project import Project
    from looplint.checking.cache import ResultCache
    from looplint.checking.result import FileResult
    from looplint.rule import Rule

_SMALL_RUN = 8


def rules_for(codes: Iterable[str]) -> list[Rule]:
    """Instances of the enabled rules, in code order."""
    wanted = set(codes)
    return [rule() for rule in rule_classes() if rule.identity.code in wanted]


@dataclass(slots=True)
class RunResult:
    """Findings of a whole run, sorted, and tracebacks of internal errors."""

    findings: list[Finding] = field(default_factory=list)
    tracebacks: list[tuple[str, str]] = field(default_factory=list)
    files: int = 0
    cached: int = 0
    fixed: list[tuple[str, str]] = field(default_factory=list)
    """(path, fixed text) of each file a fix applies to."""
    fixes: int = 0
    notices: list[tuple[str, Notice]] = field(default_factory=list)
    """(path, notice) of each suppression comment that misfires."""


_worker_rules: list[Rule] = []
_worker_fix = False
_worker_project: Project | None = None

Incoming = dict[str, tuple["Binding", ...]]
"""Per file: what other files of the run pass to its functions."""
_LINK_ROUNDS = 3


def _fewer_collections() -> None:
    """Parsing allocates millions of short-lived, acyclic nodes; with Python's default
    thresholds the cycle collector keeps re-walking every live tree for nothing."""
    gc.set_threshold(50_000, 20, 20)


def _init_worker(codes: tuple[str, ...], fix: bool = False) -> None:
    from looplint.analysis.project import Project

    _fewer_collections()
    global _worker_rules, _worker_fix, _worker_project
    _worker_rules = rules_for(codes)
    _worker_fix = fix
    _worker_project = Project()  # one per process: each module's facts are built once


def _check_chunk(paths: Sequence[str], incoming: Incoming) -> list[FileResult]:
    from looplint.checking.checker import check_file

    return [
        check_file(path, _worker_rules, fix=_worker_fix, project=_worker_project,
                   incoming=incoming.get(path, ()))
        for path in paths
    ]  # fmt: skip


def _chunks(items: Sequence[str], jobs: int) -> list[Sequence[str]]:
    """Guided chunks: large while much is left (little overhead per file), shrinking to
    single files at the end, so that no worker is left with a long chunk while the others
    idle (one chunk of big model files can take seconds)."""
    chunks: list[Sequence[str]] = []
    start = 0
    while start < len(items):
        size = max(1, min(64, (len(items) - start) // (jobs * 4)))
        chunks.append(items[start : start + size])
        start += size
    return chunks


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def run(
    paths: Sequence[str],
    codes: Iterable[str],
    jobs: int | None = None,
    cache: ResultCache | None = None,
    fix: bool = False,
) -> RunResult:
    """Check `paths` with the rules `codes` in `jobs` processes, reusing cached results.

    With `fix`, results carry the fixed text of each file a fix applies to (nothing is
    written here) and the cache is neither read nor written.
    """

    if fix:
        cache = None
    code_tuple = tuple(sorted(codes))
    jobs = jobs or default_jobs()
    outcome = RunResult(files=len(paths))
    results: dict[str, FileResult] = {}
    fresh: set[str] = set()
    todo: list[str] = []
    for path in paths:
        cached = cache.lookup(path) if cache is not None else None
        if cached is None:
            todo.append(path)
        else:
            results[path] = cached
            outcome.cached += 1
    done = check_paths(todo, code_tuple, jobs, fix)
    results.update((result.path, result) for result in done)
    fresh.update(result.path for result in done)
    # Link: what each file passes to another file's functions is that file's context.
    # A file whose context differs from the one it was checked with is checked again;
    # a few rounds carry an object along a chain of modules.
    for _ in range(_LINK_ROUNDS):
        incoming = _incoming(results.values(), set(results))
        redo = [path for path in paths if incoming.get(path, ()) != results[path].incoming]
        if not redo:
            break
        again = check_paths(redo, code_tuple, jobs, fix, incoming)
        results.update((result.path, result) for result in again)
        fresh.update(redo)
    for path in paths:
        result = results[path]
        outcome.findings.extend(result.findings)
        if result.fixed_source is not None:
            outcome.fixed.append((result.path, result.fixed_source))
            outcome.fixes += result.fixes
        outcome.tracebacks.extend((result.path, tb) for tb in result.tracebacks)
        outcome.notices.extend((result.path, notice) for notice in result.notices)
        if (
            cache is not None
            and path in fresh
            and result.stamp is not None
            and not result.tracebacks
        ):
            cache.store(result)
    if cache is not None:
        cache.save()
    outcome.findings.sort(key=Finding.sort_key)
    return outcome


def _incoming(results: Iterable[FileResult], checked: set[str]) -> Incoming:
    """Group every file's outgoing bindings by the checked file that receives them."""
    import os

    by_absolute = {os.path.abspath(path): path for path in checked}
    grouped: dict[str, set[Binding]] = {}
    for result in results:
        for binding in result.bindings:
            receiver = by_absolute.get(os.path.abspath(binding.path))
            if receiver is not None:
                grouped.setdefault(receiver, set()).add(binding)
    return {
        path: tuple(sorted(found, key=lambda b: (b.function, b.param, b.kind, b.qualified)))
        for path, found in grouped.items()
    }


def check_paths(
    paths: Sequence[str],
    codes: tuple[str, ...],
    jobs: int,
    fix: bool = False,
    incoming: Incoming | None = None,
) -> list[FileResult]:
    """Check files in this process (few files or `--jobs 1`) or in a process pool."""
    if not paths:
        return []  # a warm run: nothing here imports LibCST
    from looplint.analysis.project import Project
    from looplint.checking.checker import check_file

    incoming = incoming or {}
    if jobs <= 1 or len(paths) <= _SMALL_RUN:
        _fewer_collections()
        rules = rules_for(codes)
        project = Project()
        return [
            check_file(path, rules, fix=fix, project=project, incoming=incoming.get(path, ()))
            for path in paths
        ]
    # Imported here: a warm run checks nothing and never starts a pool.
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    chunks = _chunks(paths, jobs)
    done: dict[int, list[FileResult]] = {}
    try:
        with _pool(jobs, codes, fix) as pool:
            futures = {
                pool.submit(
                    _check_chunk, chunk, {p: incoming[p] for p in chunk if p in incoming}
                ): i
                for i, chunk in enumerate(chunks)
            }
            for future in as_completed(futures):
                done[futures[future]] = future.result()
    except BrokenProcessPool:
        # A worker died (a parser crash kills the process, not just the call):
        # re-check the unfinished files one by one to name the culprit, and go on.
        for index, chunk in enumerate(chunks):
            if index not in done:
                done[index] = [
                    _check_isolated(path, codes, fix, incoming.get(path, ())) for path in chunk
                ]
    return [result for index in range(len(chunks)) for result in done[index]]


def _pool(jobs: int, codes: tuple[str, ...], fix: bool = False) -> ProcessPoolExecutor:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(
        jobs, mp_context=context, initializer=_init_worker, initargs=(codes, fix)
    )


def _check_isolated(
    path: str, codes: tuple[str, ...], fix: bool, incoming: tuple[Binding, ...] = ()
) -> FileResult:
    """Check one file in a process of its own; a crash becomes that file's `LL000`."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        with _pool(1, codes, fix) as pool:
            return pool.submit(_check_chunk, [path], {path: incoming}).result()[0]
    except BrokenProcessPool:
        from looplint.checking.result import FileResult, error_finding

        message = "the parser crashed on this file; it was not checked"
        return FileResult(path, [error_finding(path, message)])
