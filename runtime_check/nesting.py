"""Nested blocks: an outer block leaves to an inner one the bugs the inner one reported.

The pytest plugin's session-wide block (`defer_to_inner=True`) wraps every test;
a test that opens its own `watch` and expects looplint's error (inside
`pytest.raises`) must not be failed a second time by the outer block for the
same bug. The inner block tells the outer ones `(code, check, optimizer)` for
each finding; the outer block turns the optimizer into its own label.
"""

from __future__ import annotations

from collections.abc import Sequence

from .finding import Finding
from .following import Following
from .records import OptimizerTracker

Reported = tuple[str, str, object]
"""`(code, check, optimizer object or None)` of one finding an inner block reported."""


def as_reported(
    findings: Sequence[Finding], trackers: Sequence[OptimizerTracker]
) -> list[Reported]:
    """The findings of a block, with the optimizer object instead of its block-local label."""
    optimizers = {tracker.label: tracker.opt_ref() for tracker in trackers}
    return [
        (finding.code, finding.check, optimizers.get(finding.optimizer or ""))
        for finding in findings
    ]


def keys_of(reported: Sequence[Reported], following: Following) -> set[tuple[str, str, str | None]]:
    """The `(code, check, label)` keys, in the outer block's own labels, of reported bugs."""
    keys: set[tuple[str, str, str | None]] = set()
    for code, check, optimizer in reported:
        label: str | None = None
        if optimizer is not None:
            tracker = following.stepping_tracker(optimizer)
            if tracker is None:
                continue
            label = tracker.label
        keys.add((code, check, label))
    return keys
