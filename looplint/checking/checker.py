"""Checking one file: read, screen, parse once, compute facts, run rules, locate."""

from __future__ import annotations

import ast
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from looplint.analysis.binding import Binding
from looplint.analysis.explanation import FindingExplainer
from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import display_name
from looplint.analysis.program import compile_module
from looplint.checking.result import FileResult, error_finding
from looplint.errors import SourceError
from looplint.files.cst_parse import parse_module
from looplint.files.notebook import NotebookProgram, UnmappableFix, fixed_notebook
from looplint.files.parse_guard import refusal
from looplint.files.screening import passing, screening_enabled
from looplint.files.source import (
    FileStamp,
    SourceFile,
    content_digest,
    read_bytes,
    source_from_bytes,
)
from looplint.finding import Finding, ObjectEvidence
from looplint.rule import Rule, Violation
from looplint.settings.suppression import NO_DIRECTIVES, FileDirectives, Notice, is_suppressed, scan

if TYPE_CHECKING:
    from looplint.analysis.project import Project


def _syntax_error_message(error: cst.ParserSyntaxError) -> str:
    reason = str(error.message).strip().splitlines()[0] if error.message else "invalid syntax"
    return f"syntax error: {reason}"


def check_file(
    path: str,
    rules: Sequence[Rule],
    use_prefilter: bool = True,
    fix: bool = False,
    project: Project | None = None,
    incoming: Sequence[Binding] = (),
) -> FileResult:
    """Check the file at `path` with `rules`; never raises for bad input.

    With a `project`, calls into other modules of the codebase are followed, and
    `incoming` says what other files pass to this one's functions.
    """
    try:
        data, info = read_bytes(path)
    except SourceError as error:
        return FileResult(path, [error_finding(path, str(error))])
    stamp = FileStamp(info.st_size, info.st_mtime_ns, content_digest(data))
    try:
        source = source_from_bytes(path, data)
    except SourceError as error:
        return FileResult(path, [error_finding(path, str(error))], stamp=stamp)
    result = check_source(source, rules, use_prefilter, fix, project, incoming, stamp)
    result.stamp = stamp
    return result


MAX_FIX_ROUNDS = 20


def check_source(
    source: SourceFile,
    rules: Sequence[Rule],
    use_prefilter: bool = True,
    fix: bool = False,
    project: Project | None = None,
    incoming: Sequence[Binding] = (),
    stamp: FileStamp | None = None,
) -> FileResult:
    """Check already-read source text (and fix it, with `fix`); never raises for bad input.

    With a `stamp` (the text is a file's, as read), the module's facts are lent to the
    `project` for other files' calls into it. `# looplint: noqa` comments silence
    findings file-wide, `LL000` included; misfiring suppression comments become notices.
    """
    directives, notices = scan(source.text)
    result = _check_text(source, rules, use_prefilter, fix, project, incoming, stamp, directives)
    # Notices of the check itself (a fix that could not be applied) follow the comments'.
    result.notices = [_notice_in_cell(source, notice) for notice in (*notices, *result.notices)]
    if directives.everything or directives.codes:
        result.findings = [f for f in result.findings if not directives.silences(f.code)]
    return result


def _notice_in_cell(source: SourceFile, notice: Notice) -> Notice:
    if source.notebook is None:
        return notice
    cell, line = source.notebook.locate(notice.line)
    return Notice(line, notice.message, cell)


def _check_text(
    source: SourceFile,
    rules: Sequence[Rule],
    use_prefilter: bool,
    fix: bool,
    project: Project | None,
    incoming: Sequence[Binding],
    stamp: FileStamp | None,
    directives: FileDirectives,
) -> FileResult:
    result = FileResult(source.path, incoming=tuple(incoming))
    # What other modules pass in can make any file relevant; otherwise the rules' screens decide.
    if use_prefilter and not incoming:
        rules = _rules_worth_running(source, rules)
    if not rules:
        return result
    # Facts built with bindings from elsewhere are not what the module says by itself.
    lend = stamp if not incoming and source.notebook is None else None
    context = _Context(project, tuple(incoming), lend)
    analysis = _analyse(source, rules, result, context)
    if analysis is None:
        return result
    located = _locate_violations(source, *analysis, directives=directives)
    if fix and source.fixable:
        notebook = source.notebook
        for _ in range(MAX_FIX_ROUNDS):
            fixed_text = _apply_first_fix(analysis[0], located)
            if fixed_text is None or fixed_text == source.text:
                break
            candidate = SourceFile(source.path, fixed_text)
            if notebook is not None:
                refused = _unmappable(notebook, fixed_text)
                if refused is not None:
                    result.notices.append(Notice(refused.line, f"fix not applied: {refused}"))
                    break
                # Fixes keep every line in its cell: the same map locates the fixed program.
                mapped = replace(notebook, source=fixed_text)
                candidate = replace(source, text=fixed_text, notebook=mapped)
            probe = FileResult(source.path)
            fixed_analysis = _analyse(candidate, rules, probe, replace(context, lend=None))
            if fixed_analysis is None or probe.findings:
                break  # a fix that breaks the file is never kept
            source, analysis, result.fixes = candidate, fixed_analysis, result.fixes + 1
            located = _locate_violations(source, *analysis, directives=directives)
        if result.fixes:
            result.fixed_source = (
                source.text if notebook is None else fixed_notebook(notebook, source.text)
            )
    result.findings.extend(finding for _, finding in located if finding is not None)
    return result


def _rules_worth_running(source: SourceFile, rules: Sequence[Rule]) -> Sequence[Rule]:
    """The rules whose screens let the file through (all of them, with screening turned
    off): a rule whose screen refuses a file cannot fire on it, so running it is waste."""
    if not screening_enabled():
        return rules
    through = passing(source.text, dict.fromkeys(rule.screen for rule in rules))
    return [rule for rule in rules if rule.screen in through]


def _unmappable(notebook: NotebookProgram, fixed_text: str) -> UnmappableFix | None:
    """Why a fix of a notebook's program cannot go back into its cells (None: it can)."""
    try:
        fixed_notebook(notebook, fixed_text)
    except UnmappableFix as error:
        return error
    return None


def _apply_first_fix(
    module: cst.Module, located: list[tuple[Violation, Finding | None]]
) -> str | None:
    """The module's code after the first available fix of an unsuppressed finding."""
    for violation, finding in located:
        if finding is None or violation.fix is None:
            continue
        try:
            fix = violation.fix()
            if fix is not None:
                return fix.apply(module).code
        except Exception:  # a failing fix is skipped; the finding stays reported
            continue
    return None


@dataclass(frozen=True, slots=True)
class _Context:
    project: Project | None
    incoming: tuple[Binding, ...]
    lend: FileStamp | None = None


def _analyse(
    source: SourceFile, rules: Sequence[Rule], result: FileResult, context: _Context
) -> tuple[cst.Module, list[Reported]] | None:
    """Parse and run the rules; failures become `LL000` findings on `result`."""
    refused = refusal(source.text)
    if refused is not None:
        where = (refused.line, refused.column)
        result.findings.append(_located_error(source, refused.message, *where))
        return None
    try:
        module = parse_module(source.text)
    except cst.ParserSyntaxError as error:
        message, line, column = _explain_syntax_error(source.text, error)
        result.findings.append(_located_error(source, message, line, column))
        recovered = _without_broken_cells(source)
        if recovered is None:
            return None
        source = recovered
        try:
            module = parse_module(source.text)
        except cst.ParserSyntaxError:
            return None
    except RecursionError:
        result.findings.append(error_finding(source.path, "too deeply nested to parse"))
        return None
    except Exception as error:
        result.findings.append(error_finding(source.path, f"cannot parse: {_describe(error)}"))
        return None
    try:
        facts = ModuleFacts(compile_module(module), context.project, source.path, context.incoming)
    except RecursionError:
        result.findings.append(error_finding(source.path, "too deeply nested to analyse"))
        return None
    except Exception as error:
        result.tracebacks.append(traceback.format_exc())
        result.findings.append(
            error_finding(source.path, f"internal error while analysing: {_describe(error)}")
        )
        return None
    reported: list[tuple[Rule, Violation]] = []
    for rule in rules:
        seen: set[int] = set()
        try:
            for violation in rule.check(facts):
                if id(violation.node) not in seen:
                    seen.add(id(violation.node))
                    reported.append((rule, violation))
        except RecursionError:
            result.findings.append(
                error_finding(source.path, f"{rule.code}: too deeply nested to analyse")
            )
        except Exception as error:
            result.tracebacks.append(traceback.format_exc())
            result.findings.append(
                error_finding(
                    source.path, f"internal error in {rule.code} ({rule.name}): {_describe(error)}"
                )
            )
    explained = _explained(facts, reported, result)
    if context.project is not None:
        try:
            result.bindings = facts.bindings()
        except RecursionError:
            result.bindings = []
        except Exception as error:
            result.tracebacks.append(traceback.format_exc())
            result.findings.append(
                error_finding(source.path, f"internal error while linking: {_describe(error)}")
            )
        result.dependencies = context.project.dependencies(facts.consulted)
        if context.lend is not None:
            context.project.adopt(source.path, context.lend, facts, len(source.text))
    return module, explained


Reported = tuple[Rule, Violation, tuple[ObjectEvidence, ...]]
"""A rule's violation with the evidence of the objects it involves."""


def _explained(
    facts: ModuleFacts, reported: list[tuple[Rule, Violation]], result: FileResult
) -> list[Reported]:
    """Each violation with what the objects it involves were recognised by. Explaining
    is a courtesy: if it fails, the finding is reported without it."""
    if not reported:
        return []
    try:
        explainer = FindingExplainer(facts, (violation.node for _, violation in reported))
        return [
            (rule, violation, _evidence(explainer, violation)) for rule, violation in reported
        ]
    except RecursionError:
        return [(rule, violation, ()) for rule, violation in reported]
    except Exception:
        result.tracebacks.append(traceback.format_exc())
        return [(rule, violation, ()) for rule, violation in reported]


def _evidence(explainer: FindingExplainer, violation: Violation) -> tuple[ObjectEvidence, ...]:
    return tuple(
        ObjectEvidence(display_name(identity), info.kind.value, info.basis.value, info.evidence)
        for identity, info in explainer.involved(violation.node, violation.message)
        if info.evidence
    )


def _describe(error: BaseException) -> str:
    """`KeyError: 'x'` on one line, however long or multi-line the original message."""
    text = " ".join(str(error).split())
    if len(text) > 200:
        text = text[:199] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _explain_syntax_error(text: str, error: cst.ParserSyntaxError) -> tuple[str, int, int]:
    """Message and position of a parse failure, as Python itself would report it.

    LibCST's messages name parser internals and can point past the real error, so
    Python's own parser is asked; if *it* accepts the file, LibCST is the limit.
    """
    try:
        ast.parse(text)
    except SyntaxError as python_error:
        line = python_error.lineno or error.raw_line
        column = python_error.offset or 1
        return f"syntax error: {python_error.msg}", line, max(column, 1)
    except (ValueError, RecursionError, MemoryError):
        pass
    else:
        return (
            f"valid Python that LibCST cannot parse yet: {_syntax_error_message(error)}",
            error.raw_line,
            error.raw_column + 1,
        )
    return _syntax_error_message(error), error.raw_line, error.raw_column + 1


def _without_broken_cells(source: SourceFile) -> SourceFile | None:
    """A notebook with the cells that do not parse on their own commented out, so one
    broken cell does not hide the others (each broken cell is reported by itself)."""
    notebook = source.notebook
    if notebook is None:
        return None
    broken = set()
    for number, text in notebook.cell_sources(source.text).items():
        try:
            ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            broken.add(number)
    if not broken or len(broken) == len(set(notebook.cells)):
        return None
    return replace(source, text=notebook.without_cells(source.text, broken))


def _located_error(source: SourceFile, message: str, line: int, column: int) -> Finding:
    if source.notebook is not None:
        cell, cell_line = source.notebook.locate(line)
        finding = error_finding(source.path, message, cell_line, column)
        return Finding(
            finding.path, cell, cell_line, column, finding.code, finding.name,
            finding.message, cell_line, column,
        )  # fmt: skip
    return error_finding(source.path, message, line, column)


def _has_fix(violation: Violation) -> bool:
    """Whether the violation's fix can be built (what `[*]` promises)."""
    if violation.fix is None:
        return False
    try:
        return violation.fix() is not None
    except Exception:  # a failing fix is never applied, so it is not offered
        return False


def _locate_violations(
    source: SourceFile,
    module: cst.Module,
    reported: list[Reported],
    directives: FileDirectives = NO_DIRECTIVES,
) -> list[tuple[Violation, Finding | None]]:
    """Each violation with its finding, or None where a `# noqa` suppresses it."""
    if not reported:
        return []
    positions = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    findings: list[tuple[Violation, Finding | None]] = []
    lines = source.text.splitlines()
    for rule, violation, evidence in reported:
        where = positions[violation.node]
        start, end = where.start, where.end
        text = lines[start.line - 1] if 0 < start.line <= len(lines) else ""
        if directives.silences(rule.code) or is_suppressed(text, rule.code):
            findings.append((violation, None))
            continue
        cell = None
        line, end_line = start.line, end.line
        if source.notebook is not None:
            cell, line = source.notebook.locate(start.line)
            end_cell, end_line = source.notebook.locate(end.line)
            if end_cell != cell:
                end_line = line
        findings.append(
            (
                violation,
                Finding(
                    path=source.path,
                    cell=cell,
                    line=line,
                    column=start.column + 1,
                    code=rule.code,
                    name=rule.name,
                    message=violation.message,
                    end_line=end_line,
                    end_column=end.column + 1,
                    fixable=source.fixable and _has_fix(violation),
                    evidence=evidence,
                ),
            )
        )
    return findings


@dataclass(frozen=True, slots=True)
class SingleFix:
    """One finding's own fix: the whole text after applying only that fix (what an
    editor offers as a quick fix next to the finding)."""

    finding: Finding
    fixed_text: str


def single_fixes(
    source: SourceFile,
    rules: Sequence[Rule],
    project: Project | None = None,
    wanted: Callable[[Finding], bool] | None = None,
) -> list[SingleFix]:
    """Each unsuppressed finding that has a fix (and that `wanted` accepts), with the
    text after that fix alone.

    The same fixes `--fix` applies, each applied to the unchanged source; like there,
    a fix whose result no longer parses is never offered. Each fix offered costs one
    more analysis, hence `wanted`: an editor asks for the findings under the cursor.
    """
    if not source.fixable or not rules:
        return []
    context = _Context(project, ())
    analysis = _analyse(source, rules, FileResult(source.path), context)
    if analysis is None:
        return []
    module, _ = analysis
    offered: list[SingleFix] = []
    for violation, finding in _locate_violations(source, *analysis):
        if finding is None or violation.fix is None or (wanted and not wanted(finding)):
            continue
        try:
            fix = violation.fix()
            fixed_text = fix.apply(module).code if fix is not None else None
        except Exception:  # a failing fix is not offered; the finding stays reported
            continue
        if fixed_text is None or fixed_text == source.text:
            continue
        probe = FileResult(source.path)
        if _analyse(SourceFile(source.path, fixed_text), rules, probe, context) is None:
            continue
        if not probe.findings:
            offered.append(SingleFix(finding, fixed_text))
    return offered
