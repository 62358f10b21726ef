"""Output formats: what each tool that reads looplint's output expects.

CI formats name files relative to the repository root (`ReportContext.base`) and
put notebook results on the lines of the raw `.ipynb` file, which is what GitHub,
GitLab and code scanning display.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from xml.etree import ElementTree

from looplint import __version__
from looplint.finding import Finding
from looplint.reporting.report_context import ReportContext
from looplint.reporting.terminal import concise_report, full_report, statistics_rows

DOCS_URL = "https://github.com/looplint/looplint/blob/main/docs/rules.md"
TERMINAL_FORMATS = ("full", "concise")
FORMATS = ("full", "concise", "text", "json", "github", "sarif", "gitlab", "junit")
"""`text` is the old name of `concise`."""


def json_report(findings: Sequence[Finding], context: ReportContext) -> str:
    """A JSON array of finding objects, each with the evidence of the objects it involves."""
    return json.dumps([f.to_json() for f in findings], indent=2) + "\n"


def _escape_github(value: str, property_value: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def github_report(findings: Sequence[Finding], context: ReportContext) -> str:
    """GitHub Actions workflow commands, shown as annotations on the pull request."""
    lines = []
    for f in findings:
        start, end = context.raw_lines(f)
        where = f"cell {f.cell}, line {f.line}: " if f.cell is not None else ""
        columns = "" if f.cell is not None else f",col={f.column},endColumn={f.end_column}"
        if f.cell is None and end != start:
            columns = f",col={f.column}"  # GitHub takes an end column on one line only
        lines.append(
            f"::error file={_escape_github(context.relative(f.path), True)},"
            f"line={start},endLine={end}{columns},"
            f"title={_escape_github(f'{f.code} {f.name}', True)}::"
            f"{_escape_github(where + f.code + ' ' + f.message)}"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def _sarif_rules() -> list[dict[str, object]]:
    from looplint.reporting.docs import documented_classes

    return [
        {
            "id": rule.identity.code,
            "name": rule.identity.name,
            "shortDescription": {"text": rule.identity.summary},
            "fullDescription": {"text": rule.identity.summary},
            "help": {"text": rule.documentation(), "markdown": rule.documentation()},
            "helpUri": f"{DOCS_URL}#{rule.identity.code.lower()}",
            "defaultConfiguration": {"level": "error"},
        }
        for rule in documented_classes()
    ]


def sarif_report(findings: Sequence[Finding], context: ReportContext) -> str:
    """SARIF 2.1.0, as GitHub code scanning uploads it; URIs relative to `%SRCROOT%`."""
    rules = _sarif_rules()
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    results = []
    for f in findings:
        start, end = context.raw_lines(f)
        region: dict[str, int] = {"startLine": start, "endLine": end}
        if f.cell is None:
            region["startColumn"] = f.column
            if f.end_line > f.line or f.end_column > f.column:
                region["endColumn"] = f.end_column
        location: dict[str, object] = {"uri": context.uri(f.path)}
        if not location["uri"].startswith("file:"):  # type: ignore[attr-defined]
            location["uriBaseId"] = "%SRCROOT%"
        result: dict[str, object] = {
            "ruleId": f.code,
            "ruleIndex": index.get(f.code, 0),
            "level": "error",
            "message": {"text": f.message},
            "locations": [{"physicalLocation": {"artifactLocation": location, "region": region}}],
            "partialFingerprints": {"looplint/v1": _fingerprint(f, context)},
        }
        properties: dict[str, object] = {}
        if f.cell is not None:
            properties = {"cell": f.cell, "cellLine": f.line, "cellColumn": f.column}
        if f.evidence:
            properties["evidence"] = [item.to_json() for item in f.evidence]
        if properties:
            result["properties"] = properties
        results.append(result)
    document = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "looplint",
                        "version": __version__,
                        "informationUri": "https://github.com/looplint/looplint",
                        "rules": rules,
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": context.base.as_uri() + "/"}},
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def _fingerprint(finding: Finding, context: ReportContext) -> str:
    """Stable across runs and unrelated edits: the file, the code and the message."""
    key = "\0".join((context.relative(finding.path), finding.code, finding.message))
    return hashlib.blake2b(key.encode(), digest_size=16).hexdigest()


def gitlab_report(findings: Sequence[Finding], context: ReportContext) -> str:
    """GitLab Code Quality: a JSON array GitLab shows in merge requests."""
    seen: dict[str, int] = {}
    issues = []
    for f in findings:
        base = _fingerprint(f, context)
        seen[base] = seen.get(base, 0) + 1
        fingerprint = base if seen[base] == 1 else f"{base}-{seen[base]}"
        start, end = context.raw_lines(f)
        issues.append(
            {
                "type": "issue",
                "check_name": f.code,
                "description": f"{f.code} {f.message}",
                "categories": ["Bug Risk"],
                "severity": "major",
                "fingerprint": fingerprint,
                "location": {
                    "path": context.relative(f.path),
                    "lines": {"begin": start, "end": end},
                },
            }
        )
    return json.dumps(issues, indent=2) + "\n"


def junit_report(findings: Sequence[Finding], context: ReportContext) -> str:
    """JUnit XML: one failed test case per finding, grouped by file."""
    suites = ElementTree.Element(
        "testsuites", name="looplint", tests=str(max(len(findings), 1)),
        failures=str(len(findings)), errors="0",
    )  # fmt: skip
    by_file: dict[str, list[Finding]] = {}
    for f in findings:
        by_file.setdefault(context.relative(f.path), []).append(f)
    for path, group in by_file.items():
        suite = ElementTree.SubElement(
            suites, "testsuite", name=path, tests=str(len(group)),
            failures=str(len(group)), errors="0",
        )  # fmt: skip
        for f in group:
            where = f"cell {f.cell}, line {f.line}" if f.cell is not None else f"line {f.line}"
            case = ElementTree.SubElement(
                suite, "testcase", classname=path, name=f"{f.code} {f.name} ({where})",
                file=path, line=str(context.raw_lines(f)[0]),
            )  # fmt: skip
            failure = ElementTree.SubElement(case, "failure", message=f.message, type=f.code)
            cell = f"cell {f.cell}:" if f.cell is not None else ""
            failure.text = f"{path}:{cell}{f.line}:{f.column}: {f.code} {f.message}"
    if not findings:
        suite = ElementTree.SubElement(
            suites, "testsuite", name="looplint", tests="1", failures="0", errors="0"
        )
        ElementTree.SubElement(suite, "testcase", classname="looplint", name="No findings")
    ElementTree.indent(suites)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        + ElementTree.tostring(suites, encoding="unicode")
        + "\n"
    )


def statistics_json(findings: Sequence[Finding], context: ReportContext) -> str:
    """`--statistics --output-format json`: counts per rule as JSON. `fixable` is a
    boolean as in each finding (some of them `--fix` can fix); `fixable_count` says how many."""
    rows = [
        {"code": code, "name": name, "count": count, "fixable": fixed > 0, "fixable_count": fixed}
        for code, name, count, fixed in statistics_rows(findings)
    ]
    return json.dumps(rows, indent=2) + "\n"


Reporter = Callable[[Sequence[Finding], ReportContext], str]

REPORTERS: dict[str, Reporter] = {
    "full": full_report,
    "concise": concise_report,
    "text": concise_report,
    "json": json_report,
    "sarif": sarif_report,
    "github": github_report,
    "gitlab": gitlab_report,
    "junit": junit_report,
}
