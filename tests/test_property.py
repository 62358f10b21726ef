"""Property tests: any valid Python, generated from the grammar, is analysed without error."""

from __future__ import annotations

from pathlib import Path

import hypothesmith
import pytest
from hypothesis import HealthCheck, given, settings

from looplint.checking.checker import check_source
from looplint.checking.runner import run
from looplint.files.source import SourceFile
from looplint.registry import rule_classes

RULES = [rule() for rule in rule_classes()]
# Generated code rarely mentions optimizers; prepend imports so the analysis always runs.
PRELUDE = "import torch\nfrom torch import optim\nopt = optim.SGD(model.parameters())\n"
BUGGY_LOOP = PRELUDE + "for x in loader:\n    model(x).sum().backward()\n    opt.step()\n"
SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def _assert_clean(source: str) -> None:
    result = check_source(SourceFile("generated.py", PRELUDE + source), RULES, use_prefilter=False)
    assert not result.tracebacks, result.tracebacks[0]
    assert all("internal error" not in finding.message for finding in result.findings), (
        result.findings
    )


@SETTINGS
@given(hypothesmith.from_grammar())
def test_grammar_generated_code_never_breaks_the_analysis(source: str) -> None:
    _assert_clean(source)


@SETTINGS
@given(hypothesmith.from_node())
def test_cst_generated_code_never_breaks_the_analysis(source: str) -> None:
    _assert_clean(source)


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(hypothesmith.from_node())
def test_output_does_not_depend_on_jobs(
    tmp_path_factory: pytest.TempPathFactory, source: str
) -> None:
    folder = tmp_path_factory.mktemp("generated")
    bodies = [BUGGY_LOOP, source, PRELUDE + source, source + "\n" + BUGGY_LOOP]
    paths = []
    for index in range(16):  # enough files for the process pool to be used
        path = Path(folder) / f"m{index}.py"
        path.write_text(bodies[index % len(bodies)], encoding="utf-8")
        paths.append(str(path))
    codes = {rule.code for rule in RULES} | {"LL000"}
    one = run(paths, codes, jobs=1)
    two = run(paths, codes, jobs=2)
    assert one.findings == two.findings and not one.tracebacks and not two.tracebacks
    assert any(f.code == "LL001" for f in one.findings)
