"""The layers stay layers: no import circle in `looplint/`, the analysis never reaches up
into the engine, and no analysis class grows past what a newcomer can read alone."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "looplint"
ANALYSIS_MAY_IMPORT = (
    "looplint.analysis",
    "looplint.errors",
    "looplint.identity",
    "looplint.notebook",
    "looplint.parse_guard",
    "looplint.source",
)
MAX_CLASS_LINES = 300


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every `looplint` module `path` imports, at any depth (local and typing-only too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("looplint"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("looplint")}
    return found


def _graph() -> dict[str, set[str]]:
    return {_module_name(path): _imports(path) for path in PACKAGE.rglob("*.py")}


def test_no_import_circle_in_looplint() -> None:
    graph = _graph()
    cycles = []
    for start in graph:
        pending, seen = list(graph[start]), set()
        while pending:
            module = pending.pop()
            if module == start:
                cycles.append(start)
                break
            if module not in seen:
                seen.add(module)
                pending.extend(graph.get(module, ()))
    assert cycles == []


def test_the_analysis_imports_nothing_from_the_engine() -> None:
    offending = {
        module: sorted(i for i in imports if not i.startswith(ANALYSIS_MAY_IMPORT))
        for module, imports in _graph().items()
        if module.startswith("looplint.analysis")
    }
    assert {module: bad for module, bad in offending.items() if bad} == {}


def test_no_analysis_class_is_too_long_to_read_alone() -> None:
    long = [
        (path.name, node.name, node.end_lineno - node.lineno + 1)
        for path in (PACKAGE / "analysis").glob("*.py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.ClassDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES
    ]
    assert long == []
