"""The layers stay layers: the engine's folders are its stages, every import points down the
stack (never up, never in a circle), the analysis never reaches into the engine, and no
analysis class grows past what a newcomer can read alone."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "looplint"
RULES = REPO / "rules"
# Bottom to top. A module may import from its own layer and the layers below it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("vocabulary", ("looplint.errors", "looplint.identity", "looplint.finding",
                    "looplint.text_edit")),
    ("files", ("looplint.files",)),
    ("analysis", ("looplint.analysis",)),
    ("rules", ("looplint.rule", "looplint.registry", "looplint.rules")),
    ("settings", ("looplint.settings",)),
    ("checking", ("looplint.checking",)),
    ("reporting", ("looplint.reporting",)),
    ("commands", ("looplint.commands", "looplint.__main__")),
)
ANALYSIS_MAY_IMPORT = (
    "looplint.analysis",
    "looplint.errors",
    "looplint.identity",
    "looplint.files.cst_parse",
    "looplint.files.notebook",
    "looplint.files.parse_guard",
    "looplint.files.screening",
    "looplint.files.source",
)
MAX_CLASS_LINES = 300


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    if parts[0] == "rules":
        parts = ("looplint", *parts)
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
    paths = [*PACKAGE.rglob("*.py"), *RULES.glob("*.py")]
    return {_module_name(path): _imports(path) for path in paths}


def _layer(module: str) -> int | None:
    """The index of `module`'s layer (`looplint` itself, for `__version__`, is the bottom)."""
    if module == "looplint":
        return 0
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or module.startswith(prefix + "."):
                if best is None or len(prefix) > best[1]:
                    best = (index, len(prefix))
    return None if best is None else best[0]


def test_every_engine_module_belongs_to_a_layer() -> None:
    unplaced = sorted(m for m in _graph() if _layer(m) is None and m != "looplint")
    assert unplaced == []


def test_the_engine_folders_are_its_stages() -> None:
    folders = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert folders == ["analysis", "checking", "commands", "files", "reporting", "settings"]


def test_imports_point_down_the_layers() -> None:
    upward = []
    for module, imports in _graph().items():
        own = _layer(module)
        for target in imports:
            if target.startswith("looplint.runtime_check") or target.startswith(
                "looplint.integrations"
            ):
                continue
            layer = _layer(target)
            if own is not None and layer is not None and layer > own:
                upward.append(f"{module} ({LAYERS[own][0]}) -> {target} ({LAYERS[layer][0]})")
    assert upward == []


def test_only_commands_reach_the_runtime_checker() -> None:
    """The static linter must run without torch: only a command may (lazily) start a run."""
    reaching = sorted(
        module
        for module, imports in _graph().items()
        if any(i.startswith(("looplint.runtime_check", "looplint.integrations")) for i in imports)
        and not module.startswith("looplint.commands")
    )
    assert reaching == []


def _modules_in_a_circle(graph: dict[str, set[str]]) -> list[str]:
    """Every module that reaches itself through its imports."""
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
    return cycles


def test_no_import_circle_in_looplint() -> None:
    graph = _graph()
    assert _modules_in_a_circle(graph) == []


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


RUNTIME = REPO / "runtime_check"
MAX_RUNTIME_MODULE_LINES = 400


def _runtime_module(path: Path) -> str:
    """The installed name of a runtime checker module (`pyproject.toml`'s package-dir)."""
    parts = path.relative_to(RUNTIME).with_suffix("").parts
    prefix = ("looplint",) if parts[0] == "integrations" else ("looplint", "runtime_check")
    parts = (*prefix, *parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_imports(path: Path) -> set[str]:
    """What a runtime module imports, relative imports resolved; `from package import name`
    counts as importing `package.name`, which is the module when there is one."""
    module = _runtime_module(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0]
                base = f"{anchor}.{base}" if base else anchor
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return found


def _runtime_graph() -> dict[str, set[str]]:
    """Who imports whom in the runtime checker; a module's enclosing packages are left out
    (Python imports them first whatever the module does: no arrow the code chose)."""
    modules = {_runtime_module(path): _runtime_imports(path) for path in RUNTIME.rglob("*.py")}
    return {
        name: {i for i in imports if i in modules and i != name and not name.startswith(f"{i}.")}
        for name, imports in modules.items()
    }


def test_no_import_circle_in_the_runtime_checker() -> None:
    graph = _runtime_graph()
    assert "looplint.runtime_check.finding" in graph["looplint.runtime_check.errors"]
    assert _modules_in_a_circle(graph) == []


def test_no_runtime_module_grows_past_what_a_newcomer_can_read_alone() -> None:
    long = [
        (path.name, lines)
        for path in RUNTIME.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_RUNTIME_MODULE_LINES
    ]
    assert long == []
