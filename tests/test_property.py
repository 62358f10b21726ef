"""Property tests: any valid Python, generated from the grammar, is analysed without error."""

from __future__ import annotations

from pathlib import Path

import hypothesmith
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from looplint.checker import check_source
from looplint.registry import rule_classes
from looplint.runner import run
from looplint.source import SourceFile

RULES = [rule() for rule in rule_classes()]
# Generated code rarely mentions optimizers; prepend imports so the analysis always runs.
PRELUDE = "import torch\nfrom torch import optim\nopt = optim.SGD(model.parameters())\n"
SETTINGS = settings(
    max_examples=40,
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
@given(st.lists(hypothesmith.from_node(), min_size=3, max_size=6))
def test_output_does_not_depend_on_jobs(
    tmp_path_factory: pytest.TempPathFactory, sources: list[str]
) -> None:
    folder = tmp_path_factory.mktemp("generated")
    paths = []
    for index, source in enumerate(sources * 3):  # enough files to use the process pool
        path = Path(folder) / f"m{index}.py"
        path.write_text(PRELUDE + source, encoding="utf-8")
        paths.append(str(path))
    codes = {rule.code for rule in RULES} | {"LL000"}
    one = run(paths, codes, jobs=1)
    two = run(paths, codes, jobs=2)
    assert one.findings == two.findings and not one.tracebacks and not two.tracebacks
