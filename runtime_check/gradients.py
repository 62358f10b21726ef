"""Gradient bookkeeping: stale gradients (LL001) and gradients cleared before use (LL005).

The signal needs no device synchronisation. Each parameter's gradient tensor is
remembered (weakly) with its version counter after every accumulation and every
optimizer step. Autograd accumulates in place (`grad += new`, version + 1);
`zero_grad(set_to_none=False)` and `model.zero_grad()` call `zero_()` (version +
1 again); `zero_grad()` and `p.grad = None` replace the tensor. So when a backward
pass lands on the very tensor a step consumed, with the version exactly one
higher, nothing cleared it in between: the gradient is stale. Stock optimizers
(for-loop, foreach and fused) never modify `.grad` in `step()`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch.optim import Optimizer

from .compile_guard import outside_compile
from .records import OptimizerTracker, ParamRecord, Phase


def make_accumulate_hook(record: ParamRecord) -> Callable[[torch.Tensor], None]:
    """Build the `register_post_accumulate_grad_hook` body for one parameter.

    The closure holds its record directly, so the hot path does no dictionary
    look-up. Gradients that are views (DDP `gradient_as_bucket_view=True`) share
    one version counter per bucket, so they are marked received but not judged.
    Landing on a consumed gradient only *taints* it (`stale`): it is a bug only if
    a step consumes it before it is cleared (a GAN's generator pass legitimately
    accumulates into discriminator gradients that are cleared before their step).
    """
    new_ref = weakref.ref
    accumulated = Phase.ACCUMULATED
    stepped = Phase.STEPPED
    plain = torch.Tensor

    def after_accumulate(param: torch.Tensor) -> None:
        grad = param.grad
        if grad is None:
            return
        record.received = True
        if grad._base is not None:
            record.run = 0
            record.phase = accumulated
            return
        version = grad._version
        known = record.grad_ref
        if known is not None and known() is grad:
            bump = 1 if type(grad) is plain else accumulation_bump(grad)
            if version == record.version + bump:
                if record.phase is stepped:
                    record.stale = True
                if record.run > 0:
                    record.run += 1
            else:
                record.run = 1
                record.stale = False
        else:
            record.grad_ref = new_ref(grad)
            record.run = 1
            record.stale = False
        record.version = version
        record.phase = accumulated

    return outside_compile(after_accumulate)


def accumulation_bump(grad: torch.Tensor) -> int:
    """How much one accumulation into `grad` raises its version counter.

    Autograd's in-place `grad += new` raises it by one. FSDP2 (`fully_shard`)
    accumulates a sharded DTensor gradient through its local shard
    (`grad._local_tensor += shard`), which leaves the DTensor's own counter
    unchanged while `zero_()` on the DTensor still raises it; FSDP2's shards are
    views of its reduce-scatter buffer, which is how its gradients are told
    apart from DTensors that autograd accumulates (tensor parallelism).
    """
    local = getattr(grad, "_local_tensor", None)
    if isinstance(local, torch.Tensor) and local._base is not None:
        return 0
    return 1


class GradientCensus(NamedTuple):
    """How an optimizer's gradients look just before a step, counted per tensor.

    `fresh`: accumulated since the last step. `missing`: `.grad is None`.
    `reused`: the very tensor the previous step consumed, unchanged (stepping
    twice on one gradient). `cleared`: not accumulated since the last step but
    changed in place (zeroed). `unknown`: first seen mid-iteration, not judged.
    `longest_run`: the most backward passes accumulated into one gradient since
    it was last cleared (0 when unknown). `stale_names`: fresh gradients that
    were accumulated on top of a gradient an earlier step consumed. (A named
    tuple rather than a dataclass: it is built on every step, and cheaply.)
    """

    fresh: int
    missing: int
    reused: int
    cleared: int
    unknown: int
    longest_run: int
    reused_names: tuple[str, ...]
    stale_names: tuple[str, ...]


def take_census(
    optimizer: Optimizer,
    tracker: OptimizerTracker,
    ensure_hooked: Callable[[torch.Tensor, ParamRecord], None],
) -> GradientCensus:
    """Classify every trainable gradient of `optimizer` before its step (no sync)."""
    fresh = missing = reused = cleared = unknown = longest = 0
    reused_names: list[str] = []
    stale_names: list[str] = []
    records = iter(tracker.records)
    accumulated = Phase.ACCUMULATED
    unknown_phase = Phase.UNKNOWN
    for group in optimizer.param_groups:
        for param in group["params"]:
            record = next(records)
            grad = param.grad
            if grad is None:
                if param.requires_grad:
                    missing += 1
                    if not record.hooked:
                        ensure_hooked(param, record)
                continue
            if not record.hooked:
                if not param.requires_grad:
                    continue
                ensure_hooked(param, record)
            phase = record.phase
            if phase is accumulated:
                fresh += 1
                if record.stale:
                    stale_names.append(record.name)
                if record.run > longest:
                    longest = record.run
            elif phase is unknown_phase:
                unknown += 1
            else:
                known = record.grad_ref
                current: torch.Tensor = grad
                if (
                    known is not None
                    and known() is current
                    and (current._version == record.version)
                ):
                    reused += 1
                    reused_names.append(record.name)
                else:
                    cleared += 1
    return GradientCensus(
        fresh, missing, reused, cleared, unknown, longest, tuple(reused_names), tuple(stale_names)
    )


def remember_after_step(optimizer: Optimizer, tracker: OptimizerTracker) -> None:
    """Remember each gradient the step consumed, weakly, with its version counter."""
    records = tracker.records
    index = 0
    stepped = Phase.STEPPED
    new_ref = weakref.ref
    for group in optimizer.param_groups:
        for param in group["params"]:
            record = records[index]
            index += 1
            grad = param.grad
            if grad is None:
                record.grad_ref = None
            else:
                known = record.grad_ref
                if known is None or known() is not grad:
                    record.grad_ref = new_ref(grad)
                record.version = grad._version
            record.phase = stepped
            record.stale = False
            record.last_stepper = tracker
