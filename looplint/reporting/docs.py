"""Rule documentation rendered from the rule classes: terminal, docs/rules.md, README table."""

from __future__ import annotations

import re
from pathlib import Path

from looplint.registry import RULES, rule_classes
from looplint.rule import Rule

README_TABLE_START = "<!-- rules-table:start -->"
README_TABLE_END = "<!-- rules-table:end -->"


def rule_table() -> str:
    """The Markdown rule table of the README."""
    rows = ["| Code | Name | What it catches |", "| --- | --- | --- |"]
    for rule in RULES:
        rows.append(
            f"| [{rule.identity.code}](docs/rules.md#{rule.identity.code.lower()}) "
            f"| `{rule.identity.name}` | {rule.identity.summary} |"
        )
    return "\n".join(rows) + "\n"


def documented_classes() -> tuple[type[Rule], ...]:
    """Every code with documentation: `LL000` (the engine's), then the rules."""
    from looplint.checking.unreadable import UnreadableFile

    return (UnreadableFile, *rule_classes())


def rules_markdown() -> str:
    """`docs/rules.md`: every rule's full documentation."""
    parts = [
        "# looplint rules",
        "",
        "Generated from the rule classes by `looplint rules --markdown`; do not edit.",
        "",
    ]
    for rule in documented_classes():
        doc = rule.documentation()
        doc = re.sub(r"^# ", f'<a id="{rule.identity.code.lower()}"></a>\n## ', doc, count=1)
        doc = re.sub(
            r"^## (What|Why|Example|Use|References|Fix|Options)", r"### \1", doc, flags=re.M
        )
        parts.append(doc)
    return "\n".join(parts)


def find_rule(selector: str) -> type[Rule] | None:
    """A rule by code (`LL001`) or name (`missing-zero-grad`); `LL000` included."""
    for rule in documented_classes():
        if selector.upper() == rule.identity.code or selector.lower() == rule.identity.name:
            return rule
    return None


def replace_table(readme: str) -> str:
    """The README with its generated rule table brought up to date."""
    start = readme.index(README_TABLE_START) + len(README_TABLE_START)
    end = readme.index(README_TABLE_END)
    return readme[:start] + "\n" + rule_table() + readme[end:]


def regenerate(root: Path) -> None:
    """Rewrite `docs/rules.md` and the README's rule table from the rule classes."""
    (root / "docs").mkdir(exist_ok=True)
    (root / "docs" / "rules.md").write_text(rules_markdown(), encoding="utf-8")
    readme = root / "README.md"
    readme.write_text(replace_table(readme.read_text(encoding="utf-8")), encoding="utf-8")


if __name__ == "__main__":
    regenerate(Path.cwd())
