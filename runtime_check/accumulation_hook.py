"""The per-parameter gradient hook of a block's first steps (LL001, LL005).

`register_post_accumulate_grad_hook` calls it right after autograd has
accumulated into a parameter's `.grad`: whether that landed on a new tensor or
on one a step already consumed (and how many passes accumulated since the last
clear) is what `gradients.take_census` then judges at the step. Once the loop is
known to clear its gradients by setting them to `None`, the hooks are removed
and the census judges alone (`gradients.go_quiet`).
"""

from __future__ import annotations

import sys
import weakref
from collections.abc import Callable

import torch

from .compile_guard import call_eagerly, frame_callback, self_gated
from .records import ParamRecord, Phase


def _in_compiled_autograd() -> bool:
    compiled_autograd = sys.modules.get("torch._dynamo.compiled_autograd")
    return bool(getattr(compiled_autograd, "in_compiled_autograd_region", False))


class AccumulationHook:
    """The `register_post_accumulate_grad_hook` body for one parameter.

    A bound method rather than a closure: its function is marked for dynamo once,
    on the first `self_gated` (which, for a method, marks its function), so hooking
    a parameter on entering a block builds one small object instead of a function
    with its cells and markers. It holds its record directly, so the hot path does no
    dictionary look-up. Gradients that are views (DDP `gradient_as_bucket_view=True`)
    share one version counter per bucket, so they are marked received but not judged.
    Landing on a consumed gradient only *taints* it (`stale`): it is a bug only if a
    step consumes it before it is cleared (a GAN's generator pass legitimately
    accumulates into discriminator gradients that are cleared before their step).
    Under compiled autograd each backward moves the version by more than one, so there
    the gradient is left unjudged (`Phase.UNKNOWN`) and `on_compiled` is told (checked
    only on that rare path: a fresh gradient tensor needs no version).
    """

    __slots__ = ("on_compiled", "record")

    def __init__(self, record: ParamRecord, on_compiled: Callable[[], None]) -> None:
        self.record = record
        self.on_compiled = on_compiled

    def after_accumulate(self, param: torch.Tensor) -> None:
        """A backward pass has accumulated into `param.grad` (its own gate, see
        `compile_guard`)."""
        if frame_callback() is not None:
            call_eagerly(AccumulationHook.after_accumulate, self, param)
            return
        grad = param.grad
        if grad is None:
            return
        record = self.record
        record.received = True
        if grad._base is not None:
            record.run = 0
            record.phase = _ACCUMULATED
            return
        version = grad._version
        known = record.grad_ref
        if known is not None and known() is grad:
            bump = 1 if type(grad) is _PLAIN_TENSOR else accumulation_bump(grad)
            if version == record.version + bump:
                if record.phase is _STEPPED:
                    record.stale = True
                if record.run > 0:
                    record.run += 1
                record.version = version
                record.phase = _ACCUMULATED
                return
            record.run = 1
            if _in_compiled_autograd():
                record.run = 0
                record.stale = False
                record.version = version
                record.phase = _UNKNOWN
                self.on_compiled()
                return
        else:
            record.grad_ref = _new_ref(grad)
            record.run = 1
        record.stale = False
        record.version = version
        record.phase = _ACCUMULATED


_ACCUMULATED = Phase.ACCUMULATED
_STEPPED = Phase.STEPPED
_UNKNOWN = Phase.UNKNOWN
_PLAIN_TENSOR = torch.Tensor
_new_ref = weakref.ref


def make_accumulate_hook(
    record: ParamRecord, on_compiled: Callable[[], None]
) -> Callable[[torch.Tensor], None]:
    """The gradient hook to register on `record`'s parameter (see `AccumulationHook`)."""
    return self_gated(AccumulationHook(record, on_compiled).after_accumulate)


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
