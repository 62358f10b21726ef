"""Optimizer coverage (LL003): trained parameters nobody updates, and orphaned optimizers.

Judged once, when the block ends, over the union of all optimizers seen (GANs,
actor-critic and per-layer optimizers split the parameters between them).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from .records import OptimizerTracker, ParamRecord


@dataclass(frozen=True, slots=True)
class CoverageGaps:
    """The two coverage failures: uncovered model parameters, orphaned optimizers.

    `copied` names the model parameters judged to be trained through copies
    (fp32 master weights whose gradients are assigned from them), matched by
    shape rather than identity, so the report can say so.
    """

    uncovered: tuple[str, ...]
    orphaned: tuple[str, ...]
    copied: tuple[str, ...] = ()


def find_gaps(
    model_records: Sequence[ParamRecord], trackers: Sequence[OptimizerTracker]
) -> CoverageGaps:
    """Compare who received gradients with who is optimized.

    A model parameter that received a gradient but is in no optimizer's param
    groups is never trained. An optimizer none of whose tensors ever received a
    gradient, while the model's parameters did, updates orphans (typically the
    model was re-created after the optimizer was built). Frozen parameters and
    parameters without gradients are fine; so are optimized non-parameters (an
    input image) that do receive gradients. Optimizers over fp32 *master copies*
    (fairseq's / Megatron's FP16Optimizer pattern: gradients copied by assignment,
    weights copied back) cover the model parameters whose shapes they mirror.
    """
    stepping = [tracker for tracker in trackers if tracker.attempts > 0]
    if not stepping:
        return CoverageGaps((), ())
    covered: set[int] = set()
    for tracker in trackers:
        covered.update(id(record) for record in tracker.records)
    received = [record for record in model_records if _received(record)]
    missing = [record for record in received if id(record) not in covered]
    copied = _mirrored_by_copies(missing, stepping)
    uncovered = tuple(record.name for record in missing if record.name not in copied)
    orphaned: tuple[str, ...] = ()
    if received:
        orphaned = tuple(
            tracker.label
            for tracker in stepping
            if tracker.records and not any(_received(record) for record in tracker.records)
        )
    return CoverageGaps(uncovered, orphaned, copied)


def _mirrored_by_copies(
    missing: Sequence[ParamRecord], trackers: Sequence[OptimizerTracker]
) -> tuple[str, ...]:
    """The missing model parameters that optimized copies with assigned gradients mirror."""
    if not missing:
        return ()
    copies: Counter[tuple[int, ...]] = Counter()
    for tracker in trackers:
        for record in tracker.records:
            if not record.is_model and record.assigned:
                copies[_shape(record)] += 1
    if not copies:
        return ()
    wanted = Counter(_shape(record) for record in missing)
    if any(copies[shape] < count for shape, count in wanted.items()):
        return ()
    return tuple(record.name for record in missing)


def _shape(record: ParamRecord) -> tuple[int, ...]:
    param = record.param_ref()
    return tuple(param.shape) if param is not None else ()


def _received(record: ParamRecord) -> bool:
    if record.received or record.assigned:
        return True
    param = record.param_ref()
    return param is not None and param.requires_grad and param.grad is not None
