"""Output formats: what each tool that reads looplint's output expects."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence

from looplint import __version__
from looplint.finding import Finding
from looplint.identity import BY_CODE
from looplint.registry import rule_classes

DOCS_URL = "https://github.com/looplint/looplint/blob/main/docs/rules.md"
FORMATS = ("text", "json", "sarif", "github")


def text_report(findings: Sequence[Finding]) -> str:
    """`path:line:col: CODE message`, one per line, then a count."""
    lines = [f"{f.location()}: {f.code} {f.message}" for f in findings]
    if findings:
        noun = "finding" if len(findings) == 1 else "findings"
        lines.append(f"Found {len(findings)} {noun}.")
    return "\n".join(lines) + ("\n" if lines else "")


def json_report(findings: Sequence[Finding]) -> str:
    """A JSON array of finding objects."""
    return json.dumps([f.to_json() for f in findings], indent=2) + "\n"


def _escape_github(value: str, property_value: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if property_value:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def github_report(findings: Sequence[Finding]) -> str:
    """GitHub Actions workflow commands, shown as annotations on the pull request."""
    lines = []
    for f in findings:
        where = f"cell {f.cell}, line {f.line}: " if f.cell is not None else ""
        line = 1 if f.cell is not None else f.line
        end_line = 1 if f.cell is not None else f.end_line
        lines.append(
            f"::error file={_escape_github(f.path, True)},line={line},col={f.column},"
            f"endLine={end_line},endColumn={f.end_column},"
            f"title={_escape_github(f.code, True)}::"
            f"{_escape_github(where + f.code + ' ' + f.message)}"
        )
    return "\n".join(lines) + ("\n" if lines else "")


def sarif_report(findings: Sequence[Finding]) -> str:
    """SARIF 2.1.0, as GitHub code scanning uploads it."""
    rules = [
        {
            "id": rule.identity.code,
            "name": rule.identity.name,
            "shortDescription": {"text": rule.identity.summary},
            "fullDescription": {"text": rule.documentation()},
            "help": {"text": rule.documentation(), "markdown": rule.documentation()},
            "helpUri": f"{DOCS_URL}#{rule.identity.code.lower()}",
            "defaultConfiguration": {"level": "error"},
        }
        for rule in rule_classes()
    ]
    parse_error = BY_CODE["LL000"]
    rules.insert(
        0,
        {
            "id": parse_error.code,
            "name": parse_error.name,
            "shortDescription": {"text": parse_error.summary},
            "fullDescription": {"text": parse_error.summary},
            "help": {"text": parse_error.summary},
            "helpUri": f"{DOCS_URL}#ll000",
            "defaultConfiguration": {"level": "error"},
        },
    )
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    results = []
    for f in findings:
        region: dict[str, int] = {
            "startLine": f.line,
            "startColumn": f.column,
            "endLine": max(f.end_line, f.line),
            "endColumn": f.end_column,
        }
        result: dict[str, object] = {
            "ruleId": f.code,
            "ruleIndex": index.get(f.code, 0),
            "level": "error",
            "message": {"text": f.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {
                            "uri": f.path.replace("\\", "/"),
                            "uriBaseId": "%SRCROOT%",
                        },
                        "region": region,
                    }
                }
            ],
        }
        if f.cell is not None:
            result["properties"] = {"cell": f.cell}
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
                "results": results,
            }
        ],
    }
    return json.dumps(document, indent=2) + "\n"


def statistics_report(findings: Sequence[Finding]) -> str:
    """Counts per rule, most frequent first (`--statistics`)."""
    counts = Counter(f.code for f in findings)
    names = {f.code: f.name for f in findings}
    rows = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return "".join(f"{count:>5}  {code}  {names[code]}\n" for code, count in rows)


REPORTERS: dict[str, Callable[[Sequence[Finding]], str]] = {
    "text": text_report,
    "json": json_report,
    "sarif": sarif_report,
    "github": github_report,
}
