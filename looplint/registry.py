"""Every rule looplint ships, in code order: the single list docs and the CLI read."""

from __future__ import annotations

from looplint.rule import Rule
from looplint.rules.missing_zero_grad import MissingZeroGrad
from looplint.rules.optimizer_in_loop import OptimizerInLoop
from looplint.rules.partial_parameters import PartialParameters
from looplint.rules.scheduler_order import SchedulerOrder

ALL_RULES: tuple[type[Rule], ...] = (
    MissingZeroGrad,
    OptimizerInLoop,
    PartialParameters,
    SchedulerOrder,
)
