"""Optimizer coverage (LL003): trained parameters nobody updates, and orphaned optimizers.

Judged once, when the block ends, over the union of all optimizers seen (GANs,
actor-critic and per-layer optimizers split the parameters between them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .records import OptimizerTracker, ParamRecord


@dataclass(frozen=True, slots=True)
class CoverageGaps:
    """The two coverage failures: uncovered model parameters, orphaned optimizers."""

    uncovered: tuple[str, ...]
    orphaned: tuple[str, ...]


def find_gaps(
    model_records: Sequence[ParamRecord], trackers: Sequence[OptimizerTracker]
) -> CoverageGaps:
    """Compare who received gradients with who is optimized.

    A model parameter that received a gradient but is in no optimizer's param
    groups is never trained. An optimizer none of whose tensors ever received a
    gradient, while the model's parameters did, updates orphans (typically the
    model was re-created after the optimizer was built). Frozen parameters and
    parameters without gradients are fine; so are optimized non-parameters (an
    input image) that do receive gradients.
    """
    stepping = [tracker for tracker in trackers if tracker.attempts > 0]
    if not stepping:
        return CoverageGaps((), ())
    covered: set[int] = set()
    for tracker in trackers:
        covered.update(id(record) for record in tracker.records)
    received = [record for record in model_records if _received(record)]
    uncovered = tuple(record.name for record in received if id(record) not in covered)
    orphaned: tuple[str, ...] = ()
    if received:
        orphaned = tuple(
            tracker.label
            for tracker in stepping
            if tracker.records and not any(_received(record) for record in tracker.records)
        )
    return CoverageGaps(uncovered, orphaned)


def _received(record: ParamRecord) -> bool:
    if record.received:
        return True
    param = record.param_ref()
    return param is not None and param.requires_grad and param.grad is not None
