"""The peer comparison's judging: which findings count as true, and which name the same bug.

Why: the side-by-side table in RESULTS.md is only fair if a peer finding is credited where it
points at an expected bug and not where it fires on the correct twin beside it, if every
hand-written verdict is read as the kind it says, and if a bug two tools both report is not
counted as found by one of them only. The peer itself is not run here (it needs PyPI).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import peers


def _peer(path: str, line: int, code: str) -> peers.Finding:
    return peers.Finding(peers.PEER_NAME, path, line, code, "")


def test_peer_finding_is_true_only_in_the_function_with_the_expected_bug() -> None:
    # helper_loops.py holds a function missing its clear (LL001 expected on line 13) and,
    # below it, one whose helper clears too early (LL005): the peer's TG003 on the second
    # one's backward is no LL001 bug, even though the file expects LL001 elsewhere.
    verdicts = peers.Verdicts({}, {})
    wrong_twin = peers.fixture_verdict(
        _peer("fixtures/crossmodule/helper_loops.py", 21, "TG003"), verdicts
    )
    buggy = peers.fixture_verdict(_peer("fixtures/crossmodule/trainer.py", 14, "TG003"), verdicts)
    assert wrong_twin[0] == "false alarm"
    assert buggy[0] == "real bug"


def test_hand_verdict_overrides_the_fixture_expectations() -> None:
    finding = _peer("fixtures/suppression/noqa.py", 17, "TG003")
    override = peers.Verdicts({finding.key: "real bug: silenced by noqa on purpose"}, {})
    assert peers.fixture_verdict(finding, peers.Verdicts({}, {}))[0] == "false alarm"
    assert peers.fixture_verdict(finding, override)[0] == "real bug"


def test_every_committed_verdict_reads_as_a_known_kind() -> None:
    verdicts = peers.Verdicts.load()
    assert verdicts.text, "benchmarks/peer_verdicts.toml is missing or empty"
    for key, text in verdicts.text.items():
        tool, _, rest = key.partition(":")
        code = rest.rsplit(":", 1)[-1]
        finding = peers.Finding(tool, "", 0, code, "")
        assert tool in (peers.LOOPLINT, peers.PEER_NAME), key
        assert finding.shared is not None, f"{key}: not a shared-rule code"
        assert any(text.startswith(kind + ":") for kind in peers.VERDICT_KINDS), key


def test_one_bug_reported_by_both_tools_is_paired_across_codes_and_lines() -> None:
    ours = peers.Finding(peers.LOOPLINT, "r/train.py", 40, "LL001", "")
    theirs = peers.Finding(peers.PEER_NAME, "r/train.py", 38, "TG003", "")
    far = peers.Finding(peers.PEER_NAME, "r/train.py", 400, "TG003", "")
    other_class = peers.Finding(peers.PEER_NAME, "r/train.py", 41, "TG014", "")
    kinds = {f.key: "real bug" for f in (ours, theirs, far, other_class)}

    assert peers.pair_real_bugs([ours], [theirs], kinds, {}) == {ours.key}
    assert peers.pair_real_bugs([ours], [far, other_class], kinds, {}) == set()
    assert peers.pair_real_bugs([ours], [far], kinds, {far.key: ours.key}) == {ours.key}
    kinds[theirs.key] = "false alarm"
    assert peers.pair_real_bugs([ours], [theirs], kinds, {}) == set()
