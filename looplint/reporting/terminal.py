"""What a person reads in a terminal: `concise` one-liners and `full` source excerpts.

Shaped like ruff's output, which users already read without thinking: `[*]` marks a
finding `--fix` can fix, `full` shows the line with a caret span, a `help:` line with the
remedy and a `note:` line for each object taken for an optimizer (scheduler, scaler) on
weaker evidence than its construction, and the run ends with
"Found N findings (M fixable with `--fix`)." or "All checks passed!". Colour is the
caller's decision (`ReportContext.color`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

import click

from looplint.finding import Finding
from looplint.reporting.report_context import ReportContext

TAB_WIDTH = 4


def _styler(context: ReportContext) -> Callable[..., str]:
    def style(text: str, **styles: object) -> str:
        return click.style(text, **styles) if context.color else text  # type: ignore[arg-type]

    return style


def split_message(message: str) -> tuple[str, str | None]:
    """(what is wrong, what to do): a message's remedy follows its last `; ` outside code."""
    in_code = False
    cut = -1
    for index, char in enumerate(message):
        if char == "`":
            in_code = not in_code
        elif char == ";" and not in_code and message.startswith("; ", index):
            cut = index
    if cut < 0:
        return message, None
    remedy = message[cut + 2 :].strip()
    if remedy and remedy[0].islower():
        remedy = remedy[0].upper() + remedy[1:]
    return message[:cut], remedy or None


def _header(finding: Finding, context: ReportContext, message: str) -> str:
    style = _styler(context)
    colon = style(":", fg="cyan")
    parts = [style(finding.path, bold=True)]
    if finding.cell is not None:
        parts.append(f"cell {finding.cell}")
    parts += [str(finding.line), str(finding.column)]
    marker = " " + style("[*]", fg="cyan") if finding.fixable else ""
    code = style(finding.code, fg="red", bold=True)
    return f"{colon.join(parts)}{colon} {code}{marker} {message}"


def concise_report(findings: Sequence[Finding], context: ReportContext) -> str:
    """`path:line:col: CODE [*] message`, one per line, then the summary."""
    lines = [_header(f, context, f.message) for f in findings]
    return _joined([*lines, summary(findings, context)])


def _joined(lines: Sequence[str]) -> str:
    kept = [line for line in lines if line]
    return "\n".join(kept) + "\n" if kept else ""


def _excerpt(finding: Finding, context: ReportContext) -> list[str]:
    style = _styler(context)
    line = context.source_line(finding)
    if line is None:
        return []
    gutter = " " * len(str(finding.line))
    bar = style("|", fg="blue", bold=True)
    shown = line.rstrip("\r\n").expandtabs(TAB_WIDTH)
    start = len(line[: finding.column - 1].expandtabs(TAB_WIDTH))
    if finding.end_line == finding.line and finding.end_column > finding.column:
        end = len(line[: finding.end_column - 1].expandtabs(TAB_WIDTH))
    else:
        end = len(shown.rstrip())
    carets = style("^" * max(end - start, 1) + " " + finding.code, fg="red", bold=True)
    number = style(str(finding.line), fg="blue", bold=True)
    return [
        f"{gutter} {bar}",
        f"{number} {bar} {shown}",
        f"{gutter} {bar} {' ' * start}{carets}",
        f"{gutter} {bar}",
    ]


def full_report(findings: Sequence[Finding], context: ReportContext) -> str:
    """Each finding with its source line, a caret span and a `help:` line, then the summary."""
    style = _styler(context)
    blocks = []
    for finding in findings:
        headline, remedy = split_message(finding.message)
        block = [_header(finding, context, headline), *_excerpt(finding, context)]
        gutter = " " * len(str(finding.line))
        equals = style("=", fg="blue", bold=True)
        if remedy is not None:
            block.append(f"{gutter} {equals} {style('help', bold=True)}: {remedy}")
        for note in evidence_notes(finding):
            block.append(f"{gutter} {equals} {style('note', bold=True)}: {note}")
        blocks.append("\n".join(block))
    return "".join(block + "\n\n" for block in blocks) + _joined([summary(findings, context)])


def evidence_notes(finding: Finding) -> list[str]:
    """A note for each object the finding involves that was recognised by weaker evidence
    than its construction (its name, the methods called on it, its role in torch's APIs),
    so a reader can see why `x` is taken for an optimizer, and disagree:
    "`opt` is taken for an optimizer (by name): named like an optimizer and ..."."""
    notes = []
    for item in finding.evidence:
        if item.inferred:
            article = "an" if item.kind[:1] in ("a", "e", "i", "o", "u") else "a"
            notes.append(
                f"`{item.name}` is taken for {article} {item.kind} (by {item.basis}): "
                f"{item.evidence}"
            )
    return notes


def summary(findings: Sequence[Finding], context: ReportContext) -> str:
    """ "All checks passed!" or "Found N findings (M fixable with `--fix`)." (empty with `-q`)"""
    style = _styler(context)
    if not context.show_summary:
        return ""
    if not findings:
        return style("All checks passed!", fg="green", bold=True)
    noun = "finding" if len(findings) == 1 else "findings"
    fixable = sum(1 for f in findings if f.fixable)
    extra = f" ({fixable} fixable with `--fix`)" if fixable else ""
    return f"Found {len(findings)} {noun}{extra}."


def statistics_rows(findings: Sequence[Finding]) -> list[tuple[str, str, int, int]]:
    """(code, name, count, fixable count) per rule, most frequent first."""
    counts = Counter(f.code for f in findings)
    fixable = Counter(f.code for f in findings if f.fixable)
    names = {f.code: f.name for f in findings}
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return [(code, names[code], count, fixable[code]) for code, count in ordered]


def statistics_report(findings: Sequence[Finding], context: ReportContext) -> str:
    """Counts per rule (`--statistics`), `[*]` where `--fix` can fix them, then the summary."""
    rows = [
        f"{count:>5}  {code}  {'[*] ' if fixed else ''}{name}"
        for code, name, count, fixed in statistics_rows(findings)
    ]
    return _joined([*rows, summary(findings, context)])
