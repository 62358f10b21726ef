"""Every rule looplint ships, in code order: the single list the CLI, docs and reports read.

Each entry pairs a rule's identity with where its implementation lives, so choosing
rules (`--select`) and reading cached results never import LibCST; the classes are
loaded on first use. The identity is the same constant object the class carries
(`tests/test_rule_examples.py` checks that they agree).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING

from looplint.identity import (
    ACCUMULATED_LOSS_NOT_SCALED,
    ACCUMULATION_CLEARED_EARLY,
    ACTIVATION_BEFORE_LOSS,
    CHECKPOINT_WITHOUT_OPTIMIZER_STATE,
    CLIPPING_WITHOUT_EFFECT,
    CONSUMED_PARAMETER_GENERATOR,
    DISTRIBUTED_SAMPLING,
    EVAL_MODE_NOT_RESTORED,
    EVALUATION_WITH_AUTOGRAD,
    FUNCTIONAL_DROPOUT_ALWAYS_ON,
    GRAD_SCALER_MISUSE,
    GRADIENTS_CLEARED_BEFORE_STEP,
    LOSS_KEEPS_GRAPH,
    MISSING_ZERO_GRAD,
    OPTIMIZER_IN_LOOP,
    PARAMETER_UNREGISTERED_BY_MOVE,
    PARTIAL_PARAMETERS,
    PRETRAINED_MODEL_IN_EVAL_MODE,
    REQUIRES_GRAD_TYPO,
    SCHEDULER_ORDER,
    UNREGISTERED_SUBMODULES,
    RuleIdentity,
)

if TYPE_CHECKING:
    from looplint.rule import Rule


@dataclass(frozen=True, slots=True)
class RuleEntry:
    """A shipped rule: its identity, and the `module:Class` that implements it."""

    identity: RuleIdentity
    implementation: str

    def load(self) -> type[Rule]:
        """The rule class (imports its module on first use)."""
        module, _, name = self.implementation.partition(":")
        rule: type[Rule] = getattr(importlib.import_module(module), name)
        return rule


RULES: tuple[RuleEntry, ...] = (
    RuleEntry(MISSING_ZERO_GRAD, "looplint.rules.missing_zero_grad:MissingZeroGrad"),
    RuleEntry(OPTIMIZER_IN_LOOP, "looplint.rules.optimizer_in_loop:OptimizerInLoop"),
    RuleEntry(PARTIAL_PARAMETERS, "looplint.rules.partial_parameters:PartialParameters"),
    RuleEntry(SCHEDULER_ORDER, "looplint.rules.scheduler_order:SchedulerOrder"),
    RuleEntry(
        GRADIENTS_CLEARED_BEFORE_STEP,
        "looplint.rules.gradients_cleared_before_step:GradientsClearedBeforeStep",
    ),
    RuleEntry(LOSS_KEEPS_GRAPH, "looplint.rules.loss_keeps_graph:LossKeepsGraph"),
    RuleEntry(GRAD_SCALER_MISUSE, "looplint.rules.grad_scaler_misuse:GradScalerMisuse"),
    RuleEntry(
        CHECKPOINT_WITHOUT_OPTIMIZER_STATE,
        "looplint.rules.checkpoint_without_optimizer_state:CheckpointWithoutOptimizerState",
    ),
    RuleEntry(
        CONSUMED_PARAMETER_GENERATOR,
        "looplint.rules.consumed_parameter_generator:ConsumedParameterGenerator",
    ),
    RuleEntry(
        ACCUMULATION_CLEARED_EARLY,
        "looplint.rules.accumulation_cleared_early:AccumulationClearedEarly",
    ),
    RuleEntry(EVAL_MODE_NOT_RESTORED, "looplint.rules.eval_mode_not_restored:EvalModeNotRestored"),
    RuleEntry(ACTIVATION_BEFORE_LOSS, "looplint.rules.activation_before_loss:ActivationBeforeLoss"),
    RuleEntry(
        ACCUMULATED_LOSS_NOT_SCALED,
        "looplint.rules.accumulated_loss_not_scaled:AccumulatedLossNotScaled",
    ),
    RuleEntry(
        EVALUATION_WITH_AUTOGRAD, "looplint.rules.evaluation_with_autograd:EvaluationWithAutograd"
    ),
    RuleEntry(DISTRIBUTED_SAMPLING, "looplint.rules.distributed_sampling:DistributedSampling"),
    RuleEntry(
        CLIPPING_WITHOUT_EFFECT, "looplint.rules.clipping_without_effect:ClippingWithoutEffect"
    ),
    RuleEntry(
        UNREGISTERED_SUBMODULES, "looplint.rules.unregistered_submodules:UnregisteredSubmodules"
    ),
    RuleEntry(
        PARAMETER_UNREGISTERED_BY_MOVE,
        "looplint.rules.parameter_unregistered_by_move:ParameterUnregisteredByMove",
    ),
    RuleEntry(
        FUNCTIONAL_DROPOUT_ALWAYS_ON,
        "looplint.rules.functional_dropout_always_on:FunctionalDropoutAlwaysOn",
    ),
    RuleEntry(REQUIRES_GRAD_TYPO, "looplint.rules.requires_grad_typo:RequiresGradTypo"),
    RuleEntry(
        PRETRAINED_MODEL_IN_EVAL_MODE,
        "looplint.rules.pretrained_model_in_eval_mode:PretrainedModelInEvalMode",
    ),
)


@cache
def rule_classes() -> tuple[type[Rule], ...]:
    """Every rule class, in code order."""
    return tuple(entry.load() for entry in RULES)
