"""Clipping with no effect (LL016): a clip call that no step will ever see.

`clip_grad_norm_` / `clip_grad_value_` change the gradients the *next* optimizer
step consumes. Called after `optimizer.step()` and before the next backward
pass, they clip gradients the step already used (and that are about to be
cleared or overwritten); called before the backward pass, they clip nothing.
The gradient records already say, per parameter, whether a backward pass landed
since the last step (`Phase`), so the check reads no tensor values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from looplint.identity import CLIPPING_WITHOUT_EFFECT

from .following import Following
from .records import ParamRecord, Phase
from .report import IssueLog


class ClipChecks:
    """Judges each clip call against the gradients' phase."""

    def __init__(self, following: Following, issues: IssueLog) -> None:
        self._following = following
        self._issues = issues

    def on_clip(self, parameters: Iterable[torch.Tensor], limit: float | None) -> None:
        """A clip call is about to run on `parameters` (`limit`: its max norm or value)."""
        if limit is not None and math.isinf(limit):
            return  # `max_norm=inf`: a norm read for logging, not a clip
        records: list[ParamRecord] = []
        any_gradient = False
        for param in parameters:
            record = self._following.known_record(param)
            if record is None or not record.hooked:
                continue
            if record.last_stepper is None:
                return  # nothing known yet
            if record.quiet:
                # No hook marks the phase: a gradient other than the one the last step
                # consumed, or that one changed since (a backward pass accumulated into
                # it), came after the step.
                grad = param.grad
                known = record.grad_ref
                if grad is not None and (
                    known is None or known() is not grad or grad._version != record.version
                ):
                    return
            elif record.phase is not Phase.STEPPED:
                return  # a backward pass landed since the last step
            records.append(record)
            any_gradient = any_gradient or param.grad is not None
        if not records:
            return
        stepper = records[0].last_stepper
        if stepper is not None and stepper.depth:
            return  # inside that optimizer's own step (one that clips), not after it
        label = stepper.label if stepper is not None else None
        when = (
            "after the optimizer step and before the next backward pass: the step already "
            "used the unclipped gradients"
            if any_gradient
            else "before the backward pass, on cleared gradients: the backward pass that "
            "follows brings unclipped ones"
        )
        self._issues.note(
            CLIPPING_WITHOUT_EFFECT,
            "clipping-without-effect",
            f"gradients of {len(records)} parameter(s) are clipped {when}, so no step ever "
            "sees clipped gradients. Clip between `loss.backward()` and `optimizer.step()` "
            "(after `scaler.unscale_(optimizer)` with a GradScaler).",
            optimizer=label,
            step=stepper.steps if stepper is not None else None,
        )
