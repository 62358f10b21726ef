"""What a `watch` block judges when it ends: coverage (LL003) and what went unjudged.

Coverage needs the whole run (an optimizer may be built late, a parameter may
receive its first gradient in the last epoch), so it is judged once, over the
union of all optimizers seen. The finding names the optimizers and the line
that built each (when the block saw it built), since that is the line to fix.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from looplint.identity import PARTIAL_PARAMETERS

from .call_site import CallSite
from .coverage import find_gaps
from .finding import Finding, describe_names
from .records import OptimizerTracker, ParamRecord
from .report import IssueLog, Report

NO_MODEL = (
    "LL003 coverage (parameters no optimizer updates) is not checked: no model was given "
    "(`watch(model)`, `looplint_watch(model)`) and none was found next to an optimizer "
    "built while the block was open."
)


def _described(tracker: OptimizerTracker, built_at: CallSite | None) -> str:
    where = f"built at {built_at}" if built_at is not None else "built before the block opened"
    return f"`{tracker.label}` ({where})"


def coverage_findings(
    model_records: Sequence[ParamRecord],
    trackers: Sequence[OptimizerTracker],
    note_unchecked: Callable[[str], None],
) -> list[Finding]:
    """LL003: model parameters no optimizer updates, and optimizers over orphans."""
    gaps = find_gaps(model_records, trackers)
    if gaps.copied:
        note_unchecked(
            f"LL003: {len(gaps.copied)} model parameter(s) are taken as trained through "
            "optimized copies with assigned gradients (fp32 master weights), matched by "
            "shape, not by identity."
        )
    log = IssueLog()
    stepping = [tracker for tracker in trackers if tracker.attempts > 0]
    if gaps.uncovered:
        sites = [tracker.built_at for tracker in stepping]
        optimizers = ", ".join(
            _described(tracker, site) for tracker, site in zip(stepping, sites, strict=True)
        )
        noun = "the optimizer" if len(stepping) == 1 else "the optimizers"
        log.note(
            PARTIAL_PARAMETERS,
            "uncovered-parameters",
            f"{len(gaps.uncovered)} parameter(s) of the model received gradients but are "
            f"in no param group of {noun} {optimizers}, so they never train: "
            f"{describe_names(gaps.uncovered)}. Give the optimizer `model.parameters()` "
            "(or add the missing ones with `add_param_group`).",
            parameters=gaps.uncovered,
            site=sites[0] if len(sites) == 1 and sites[0] is not None else None,
        )
    for tracker in stepping:
        if tracker.label not in gaps.orphaned:
            continue
        built_at = tracker.built_at
        log.note(
            PARTIAL_PARAMETERS,
            "orphaned-optimizer",
            f"none of the tensors {_described(tracker, built_at)} updates ever received a "
            "gradient while the model's parameters did: it optimizes orphans (was the model "
            "re-created after the optimizer was built?).",
            optimizer=tracker.label,
            site=built_at,
        )
    return log.freeze()


def note_nothing_stepped(
    report: Report, model_records: Sequence[ParamRecord], trackers: Sequence[OptimizerTracker]
) -> None:
    """Say so when the model trained but no optimizer looplint follows ever stepped."""
    if report.steps or any(tracker.attempts for tracker in trackers):
        return
    if not any(record.received for record in model_records):
        return
    reason = (
        "no torch.optim optimizer stepped while the model's parameters received "
        "gradients: parameters updated another way (a manual `p.data.add_(...)` update, "
        "an optimizer looplint cannot follow) are not checked."
    )
    if reason not in report.inactive:
        report.inactive.append(reason)


def bucket_view_count(trackers: Sequence[OptimizerTracker]) -> int:
    """How many followed gradients are views into a shared bucket (DDP)."""
    count = 0
    for tracker in trackers:
        for record in tracker.records:
            param = record.param_ref()
            grad = param.grad if param is not None else None
            count += grad is not None and grad._base is not None
    return count
