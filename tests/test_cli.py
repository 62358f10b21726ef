"""The console script as users run it: exit codes, formats, selection, config, suppression."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from looplint.registry import RULES
from tests.conftest import FIXTURES, RunLooplint

BUGGY = textwrap.dedent(
    """\
    import torch

    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for x, y in loader:
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
    """
)
FIXED = BUGGY.replace("    loss = torch", "    optimizer.zero_grad()\n    loss = torch")
STEP_LINE = 8
# One bug (LL006) with a safe fix: `total += loss` → `total += loss.item()`.
LEAKY = textwrap.dedent(
    """\
    import torch

    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    total = 0.0
    for x, y in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
        total += loss
    """
)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "train.py").write_text(BUGGY)
    (tmp_path / "clean.py").write_text(FIXED)
    return tmp_path


def test_exit_codes(run_looplint: RunLooplint, project: Path) -> None:
    assert run_looplint("check", "clean.py", cwd=project).returncode == 0
    buggy = run_looplint("check", "train.py", cwd=project)
    assert buggy.returncode == 1
    assert buggy.stdout.startswith(f"train.py:{STEP_LINE}:5: LL001 `optimizer.step()`")
    assert run_looplint("check", "train.py", "--exit-zero", cwd=project).returncode == 0
    usage = run_looplint("check", "--select", "LL999", cwd=project)
    assert usage.returncode == 2 and "LL999" in usage.stderr and "Traceback" not in usage.stderr


def test_default_path_is_current_folder(run_looplint: RunLooplint, project: Path) -> None:
    result = run_looplint("check", cwd=project)
    assert (
        result.returncode == 1 and "train.py" in result.stdout and "clean.py" not in result.stdout
    )


def test_json_format(run_looplint: RunLooplint, project: Path) -> None:
    result = run_looplint("check", ".", "--format", "json", cwd=project)
    findings = json.loads(result.stdout)
    assert len(findings) == 1
    finding = findings[0]
    assert finding["code"] == "LL001" and finding["name"] == "missing-zero-grad"
    assert finding["path"].endswith("train.py")
    assert (finding["line"], finding["column"], finding["end_line"]) == (STEP_LINE, 5, STEP_LINE)
    assert finding["end_column"] > finding["column"]
    assert "optimizer.zero_grad()" in finding["message"] and "cell" not in finding


def test_sarif_format(run_looplint: RunLooplint, project: Path) -> None:
    document = json.loads(
        run_looplint("check", "train.py", "--format", "sarif", cwd=project).stdout
    )
    assert document["version"] == "2.1.0" and "sarif-2.1.0" in document["$schema"]
    run = document["runs"][0]
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert {"LL000", "LL001", "LL002", "LL003", "LL004"} <= set(rules)
    for rule in rules.values():
        assert rule["name"] and rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["helpUri"].startswith("https://")
    (result,) = run["results"]
    assert result["ruleId"] == "LL001"
    assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "LL001"
    region = result["locations"][0]["physicalLocation"]["region"]
    assert region["startLine"] == STEP_LINE and region["startColumn"] == 5
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "train.py"


def test_github_format(run_looplint: RunLooplint, project: Path) -> None:
    out = run_looplint("check", "train.py", "--format", "github", cwd=project).stdout
    assert out.startswith(f"::error file=train.py,line={STEP_LINE},endLine={STEP_LINE},col=5,")
    assert "title=LL001 missing-zero-grad::LL001 `optimizer.step()`" in out


def test_output_file_and_statistics(
    run_looplint: RunLooplint, project: Path, tmp_path: Path
) -> None:
    target = tmp_path / "report.json"
    result = run_looplint(
        "check", "train.py", "--format", "json", "--output-file", str(target), cwd=project
    )
    assert result.returncode == 1 and result.stdout == ""
    assert json.loads(target.read_text())[0]["code"] == "LL001"
    stats = run_looplint("check", str(FIXTURES), "--statistics")
    *lines, footer = stats.stdout.splitlines()
    rows = [line.split() for line in lines]
    assert ["LL001", "missing-zero-grad"] in [row[1:] for row in rows]
    assert ["LL006", "[*]", "loss-keeps-graph"] in [row[1:] for row in rows]
    assert all(row[0].isdigit() for row in rows)
    total = sum(int(row[0]) for row in rows)
    assert footer.startswith(f"Found {total} findings (") and "fixable with `--fix`" in footer
    assert stats.returncode == 1


def test_select_and_ignore(run_looplint: RunLooplint) -> None:
    def codes(*args: str) -> set[str]:
        out = run_looplint("check", str(FIXTURES), "--format", "json", "--exit-zero", *args).stdout
        # One notebook fixture has a broken cell: its LL000 is not one of the rules here.
        return {f["code"] for f in json.loads(out)} - {"LL000"}

    shipped = {entry.identity.code for entry in RULES}
    assert codes() == shipped  # every rule has fixtures that it flags
    assert codes("--select", "LL001") == {"LL001"}
    assert codes("--select", "scheduler-order,LL002") == {"LL002", "LL004"}
    assert codes("--ignore", "LL00") == {c for c in shipped if not c.startswith("LL00")}
    assert codes("--select", "LL001", "--extend-select", "LL003") == {"LL001", "LL003"}
    assert codes("--select", "ALL", "--ignore", "missing-zero-grad") == shipped - {"LL001"}


def test_config_discovery_and_override(run_looplint: RunLooplint, project: Path) -> None:
    (project / "pyproject.toml").write_text('[tool.looplint]\nignore = ["LL001"]\n')
    sub = project / "pkg"
    sub.mkdir()
    (sub / "train.py").write_text(BUGGY)
    assert run_looplint("check", ".", cwd=sub).returncode == 0  # found upward
    other = project / "other.toml"
    other.write_text("[tool.looplint]\nselect = ['LL001']\n")
    assert run_looplint("check", ".", "--config", str(other), cwd=sub).returncode == 1
    # command-line flags override the file
    assert (
        run_looplint("check", ".", "--config", str(other), "--ignore", "LL001", cwd=sub).returncode
        == 0
    )


def test_per_file_ignores_and_exclude(run_looplint: RunLooplint, project: Path) -> None:
    (project / "pyproject.toml").write_text(
        '[tool.looplint]\nextend-exclude = ["vendored/"]\n'
        '[tool.looplint.per-file-ignores]\n"train.py" = ["LL001"]\n'
    )
    (project / "vendored").mkdir()
    (project / "vendored" / "x.py").write_text(BUGGY)
    assert run_looplint("check", ".", cwd=project).returncode == 0
    # An explicitly named file is checked anyway, unless --force-exclude.
    assert run_looplint("check", "vendored/x.py", cwd=project).returncode == 1
    assert run_looplint("check", "vendored/x.py", "--force-exclude", cwd=project).returncode == 0


@pytest.mark.parametrize(
    ("config", "needle"),
    [
        ('[tool.looplint]\nselekt = ["LL001"]\n', "unknown key `selekt`"),
        ('[tool.looplint]\nselect = ["LL042"]\n', "LL042"),
        ('[tool.looplint]\nselect = "LL001\n', "line 2"),
        ("[tool.looplint]\nignore = 3\n", "`ignore` must be a list of strings"),
    ],
)
def test_bad_config_is_one_line_error(
    run_looplint: RunLooplint, project: Path, config: str, needle: str
) -> None:
    (project / "pyproject.toml").write_text(config)
    result = run_looplint("check", ".", cwd=project)
    assert result.returncode == 2
    assert needle in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_noqa(run_looplint: RunLooplint, tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text(
        BUGGY.replace("optimizer.step()", "optimizer.step()  # noqa: E501, LL001")
    )
    assert run_looplint("check", "a.py", cwd=tmp_path).returncode == 0
    (tmp_path / "a.py").write_text(BUGGY.replace("optimizer.step()", "optimizer.step()  # noqa"))
    assert run_looplint("check", "a.py", cwd=tmp_path).returncode == 1
    (tmp_path / "a.py").write_text(
        BUGGY.replace("optimizer.step()", "optimizer.step()  # noqa: LL002")
    )
    assert run_looplint("check", "a.py", cwd=tmp_path).returncode == 1


def test_bad_files_are_reported_and_the_run_goes_on(
    run_looplint: RunLooplint, project: Path
) -> None:
    (project / "broken.py").write_text("import torch.optim\ndef f(:\n    pass\n")
    (project / "binary.py").write_bytes(b"\x00\x01\x02optim")
    (project / "latin.py").write_bytes(b"\xff\xfe not utf-8 optim\n")
    (project / "bad.ipynb").write_text("{not json")
    result = run_looplint("check", ".", "--format", "json", cwd=project)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    by_path = {os.path.basename(f["path"]): f for f in json.loads(result.stdout)}
    assert (
        by_path["broken.py"]["code"] == "LL000"
        and "syntax error" in by_path["broken.py"]["message"]
    )
    assert by_path["broken.py"]["line"] == 2
    assert "binary" in by_path["binary.py"]["message"]
    assert "decode" in by_path["latin.py"]["message"]
    assert "invalid notebook JSON" in by_path["bad.ipynb"]["message"]
    assert by_path["train.py"]["code"] == "LL001"


def test_missing_path_is_usage_error(run_looplint: RunLooplint, tmp_path: Path) -> None:
    result = run_looplint("check", "nope.py", cwd=tmp_path)
    assert (
        result.returncode == 2 and "nope.py" in result.stderr and "Traceback" not in result.stderr
    )


def test_jobs_do_not_change_output(run_looplint: RunLooplint) -> None:
    one = run_looplint("check", str(FIXTURES), "--format", "json", "--jobs", "1")
    two = run_looplint("check", str(FIXTURES), "--format", "json", "--jobs", "2")
    assert one.returncode == two.returncode == 1
    assert one.stdout == two.stdout
    keys = [(f["path"], f.get("cell", 0), f["line"]) for f in json.loads(one.stdout)]
    assert keys == sorted(keys)


def test_stdin(run_looplint: RunLooplint, tmp_path: Path) -> None:
    result = run_looplint("check", "--stdin-filename", "snippet.py", cwd=tmp_path, stdin=BUGGY)
    assert result.returncode == 1 and result.stdout.startswith(f"snippet.py:{STEP_LINE}:5: LL001")


def test_rules_and_explain(run_looplint: RunLooplint) -> None:
    listing = run_looplint("rules").stdout.splitlines()
    codes = [line.split()[0] for line in listing]
    assert codes == ["LL000", *(entry.identity.code for entry in RULES)]
    assert listing[1].split()[:2] == ["LL001", "missing-zero-grad"]
    doc = run_looplint("explain", "LL002").stdout
    assert doc.startswith("# optimizer-in-loop (LL002)") and "## Why is this bad?" in doc
    assert run_looplint("explain", "missing-zero-grad").stdout.startswith("# missing-zero-grad")
    unknown = run_looplint("explain", "LL999")
    assert unknown.returncode == 2 and "LL999" in unknown.stderr



def test_rule_and_rules_code_print_the_doc_as_ruff_rule_does(run_looplint: RunLooplint) -> None:
    explained = run_looplint("explain", "LL001").stdout
    for args in (("rule", "LL001"), ("rules", "LL001"), ("rule", "missing-zero-grad")):
        result = run_looplint(*args)
        assert (result.returncode, result.stdout) == (0, explained), args
    as_json = json.loads(run_looplint("rule", "LL006", "--output-format", "json").stdout)
    assert as_json["code"] == "LL006" and as_json["fixable"] is True
    assert as_json["explanation"] == run_looplint("explain", "LL006").stdout
    unknown = run_looplint("rule", "LL999")
    assert unknown.returncode == 2 and "`looplint rules` lists them" in unknown.stderr


def test_clean_removes_every_cache_and_nothing_else(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.looplint]\ncache-dir = "build/lint"\n')
    (tmp_path / "train.py").write_text(BUGGY)
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "looplint.toml").write_text("ignore = []\n")
    (sub / "train.py").write_text(BUGGY)
    assert run_looplint("check", ".", cwd=tmp_path).returncode == 1
    caches = [tmp_path / "build" / "lint", sub / ".looplint_cache"]
    assert all(any(cache.glob("results-*.json")) for cache in caches)
    # a folder that only shares the name is someone else's
    foreign = tmp_path / "other" / ".looplint_cache"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    result = run_looplint("clean", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == [
        f"Removed {Path('build/lint')}", f"Removed {Path('sub/.looplint_cache')}"
    ]  # fmt: skip
    assert not any(cache.exists() for cache in caches)
    assert (foreign / "notes.txt").read_text() == "mine"
    assert (tmp_path / "build").is_dir()  # only the cache inside it went
    again = run_looplint("clean", cwd=tmp_path)
    assert (again.returncode, again.stdout) == (0, "No looplint cache found.\n")

def test_python_dash_m(tmp_path: Path) -> None:
    (tmp_path / "t.py").write_text(BUGGY)
    result = subprocess.run(
        [sys.executable, "-m", "looplint", "check", "t.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "LL001" in result.stdout


def test_objects_shows_what_each_object_is_taken_for_and_why(run_looplint: RunLooplint) -> None:
    result = run_looplint("objects", str(FIXTURES / "recognition"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(
        "`optimizer` (main): a call of `optimizer_cls`, the class `bitsandbytes.optim.AdamW8bit`"
        in line
        for line in lines
    )
    assert any(
        "`self.policy.optimizer` (PPO instances): named like an optimizer and stepped after a "
        "backward pass" in line
        for line in lines
    )
    # A diffusion sampler stepped with three arguments is never taken for a scheduler.
    assert not any("noise_scheduler" in line for line in lines)


def test_objects_reports_an_unparsable_file_and_goes_on(
    run_looplint: RunLooplint, tmp_path: Path
) -> None:
    (tmp_path / "broken.py").write_text("def f(:\n")
    (tmp_path / "train.py").write_text("import torch\nopt = torch.optim.SGD(m.parameters())\n")
    result = run_looplint("objects", ".", cwd=tmp_path)
    assert result.returncode == 2
    assert "broken.py: error: syntax error" in result.stderr
    assert "`opt` (module): built by `torch.optim.SGD`" in result.stdout
