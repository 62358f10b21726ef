"""Optimizer state persistence (LL002): re-created optimizers, cleared or mismatched state.

Momentum buffers and Adam moments are what an optimizer learns over steps; an
optimizer rebuilt every epoch, or whose `state` is cleared, silently starts over.
These checks read only Python containers and tensor *metadata* (shapes), never
tensor values, so they cost nothing on the device.
"""

from __future__ import annotations

from torch import Tensor
from torch.optim import Optimizer

from .records import OptimizerTracker

_ELEMENTWISE_STATE = frozenset(
    {
        "exp_avg",
        "exp_avg_sq",
        "max_exp_avg_sq",
        "momentum_buffer",
        "square_avg",
        "acc_delta",
        "grad_avg",
        "sum",
        "ax",
        "prev",
        "step_size",
    }
)
"""State entries that torch's element-wise optimizers keep with the parameter's shape.

Factored (Adafactor) or flattened (LBFGS) state is left alone: its shape differs
from the parameter's by design.
"""


def holds_state(optimizer: Optimizer) -> bool:
    """Whether any parameter has non-empty state (plain SGD keeps empty dicts)."""
    return any(bool(entry) for entry in optimizer.state.values())


def earlier_stepper(tracker: OptimizerTracker) -> tuple[OptimizerTracker | None, list[str]]:
    """The stateful optimizer that stepped these parameters before `tracker` was built.

    Parameters whose weights were overwritten since that step (a checkpoint or
    `load_state_dict` restore) do not count. Returns the optimizer with the
    names of the shared parameters, or `(None, [])`.
    """
    earlier: OptimizerTracker | None = None
    names: list[str] = []
    left: dict[OptimizerTracker, dict[int, int]] = {}
    for record in tracker.records:
        previous = record.last_stepper
        if previous is None or previous is tracker or not previous.had_state:
            continue
        versions = left.get(previous)
        if versions is None:
            # `previous.versions` is aligned with its records: the version its last
            # step left on each parameter, by record.
            versions = dict(zip(map(id, previous.records), previous.versions, strict=False))
            left[previous] = versions
        param = record.param_ref()
        if param is not None and param._version != versions.get(id(record), -1):
            continue  # overwritten since (weights restored): a fresh start is right
        if earlier is None:
            earlier = previous
        names.append(record.name)
    return earlier, names


def mismatched_state(optimizer: Optimizer, tracker: OptimizerTracker) -> list[str]:
    """Parameters whose loaded state tensors do not have the parameter's shape.

    `load_state_dict` maps saved state to parameters by position, so state saved
    from a model with a different parameter order lands on the wrong tensors;
    torch only checks the number of parameters per group. The state is read as it
    is stored (looking each parameter up would hash every tensor through Python);
    names are looked up only for a mismatch.
    """
    wrong: set[int] = set()
    for param, entry in optimizer.state.items():
        for key, value in entry.items():
            if key in _ELEMENTWISE_STATE and isinstance(value, Tensor) and value.dim() > 0:
                # One entry tells: all of a parameter's element-wise state was saved
                # with the shape of the one parameter it belonged to.
                if value.shape != getattr(param, "shape", None):
                    wrong.add(id(param))
                break
    if not wrong:
        return []
    names: list[str] = []
    records = tracker.records
    index = 0
    for group in optimizer.param_groups:
        for param in group["params"]:
            if id(param) in wrong:
                names.append(records[index].name if index < len(records) else f"#{index}")
            index += 1
    return names


_PLAIN = (bool, int, float, str, type(None))


def _plain(value: object) -> object:
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    return type(value).__name__


def setup_of(optimizer: Optimizer, tracker: OptimizerTracker) -> tuple[object, ...]:
    """What defines an optimizer as built: its class, its parameters and its settings.

    Two optimizers with the same setup are the same optimizer built twice (the
    LL002 bug); a new setup (other parameters, another learning rate) is a
    deliberate change such as the second phase of a fine-tuning. The constructor
    settings are read from `defaults`, which LR schedulers do not modify.
    """
    settings = tuple(sorted((str(key), _plain(value)) for key, value in optimizer.defaults.items()))
    parameters = frozenset(id(record) for record in tracker.records)
    return (type(optimizer), parameters, settings)
