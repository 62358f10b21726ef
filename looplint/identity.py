"""The vocabulary shared by the static rules and the runtime checker.

A user should read one set of codes whether a bug was found in source or while
training ran, so both halves take their codes and names from here and nowhere
else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuleIdentity:
    """A bug class as users name it: `LL001` / `missing-zero-grad`."""

    code: str
    name: str
    summary: str


PARSE_ERROR = RuleIdentity(
    "LL000", "unreadable-file", "The file could not be read or parsed, so it was not checked."
)
MISSING_ZERO_GRAD = RuleIdentity(
    "LL001",
    "missing-zero-grad",
    "Gradients are never cleared between optimizer steps, so they pile up across batches.",
)
OPTIMIZER_IN_LOOP = RuleIdentity(
    "LL002",
    "optimizer-in-loop",
    "An optimizer, LR scheduler or GradScaler is re-created inside the training loop, "
    "resetting its state.",
)
PARTIAL_PARAMETERS = RuleIdentity(
    "LL003",
    "partial-parameters",
    "The optimizer is given only some of the trained model's parameters.",
)
SCHEDULER_ORDER = RuleIdentity(
    "LL004",
    "scheduler-order",
    "The LR scheduler steps before its optimizer, without its metric, or at the wrong cadence.",
)
GRADIENTS_CLEARED_BEFORE_STEP = RuleIdentity(
    "LL005",
    "gradients-cleared-before-step",
    "Gradients are cleared between the backward pass and the step that should use them.",
)

LOSS_KEEPS_GRAPH = RuleIdentity(
    "LL006",
    "loss-keeps-graph",
    "A loss tensor is accumulated across iterations with its autograd graph, leaking memory.",
)
GRAD_SCALER_MISUSE = RuleIdentity(
    "LL007",
    "grad-scaler-misuse",
    "GradScaler is used out of order: clipping scaled gradients, no update(), unscaled backward, "
    "or a second step.",
)
CHECKPOINT_WITHOUT_OPTIMIZER_STATE = RuleIdentity(
    "LL008",
    "checkpoint-without-optimizer-state",
    "A training checkpoint saves or restores the model but not the optimizer's state.",
)
CONSUMED_PARAMETER_GENERATOR = RuleIdentity(
    "LL009",
    "consumed-parameter-generator",
    "A stored `model.parameters()` generator is used twice; the second use sees nothing.",
)
ACCUMULATION_CLEARED_EARLY = RuleIdentity(
    "LL010",
    "accumulation-cleared-early",
    "Gradients are cleared more often than the optimizer steps, so accumulation keeps only "
    "the last micro-batch.",
)
EVAL_MODE_NOT_RESTORED = RuleIdentity(
    "LL011",
    "eval-mode-not-restored",
    "The model is switched to eval() for validation and never back to train().",
)
ACTIVATION_BEFORE_LOSS = RuleIdentity(
    "LL012",
    "activation-before-loss",
    "A softmax or sigmoid output is fed to a loss that applies its own activation, or "
    "probabilities to `NLLLoss`.",
)
ACCUMULATED_LOSS_NOT_SCALED = RuleIdentity(
    "LL013",
    "accumulated-loss-not-scaled",
    "Gradients are accumulated over N micro-batches but the loss is never divided by N.",
)
EVALUATION_WITH_AUTOGRAD = RuleIdentity(
    "LL014",
    "evaluation-with-autograd",
    "An evaluation loop runs the model in eval mode with autograd on, building a graph "
    "every batch.",
)
CLIPPING_WITHOUT_EFFECT = RuleIdentity(
    "LL016",
    "clipping-without-effect",
    "Gradients are clipped where the clip cannot reach the step: after it, before the "
    "backward pass, or right before a clear.",
)
DISTRIBUTED_SAMPLING = RuleIdentity(
    "LL015",
    "distributed-sampling",
    "A DDP training loader has no DistributedSampler, or its sampler's `set_epoch` is never "
    "called, so ranks see the same data or every epoch the same order.",
)
UNREGISTERED_SUBMODULES = RuleIdentity(
    "LL017",
    "unregistered-submodules",
    "An nn.Module keeps layers in a plain list, dict or tuple: their parameters are never "
    "trained, moved or saved.",
)
PARAMETER_UNREGISTERED_BY_MOVE = RuleIdentity(
    "LL018",
    "parameter-unregistered-by-move",
    "`nn.Parameter(t).cuda()` / `.to(...)` / `.double()` stores a plain tensor, not a parameter.",
)
FUNCTIONAL_DROPOUT_ALWAYS_ON = RuleIdentity(
    "LL019",
    "functional-dropout-always-on",
    "`F.dropout` in a module without `training=self.training` drops activations at evaluation too.",
)
REQUIRES_GRAD_TYPO = RuleIdentity(
    "LL020",
    "requires-grad-typo",
    "A misspelt `requires_grad` is assigned: a new attribute is created and nothing is frozen.",
)
PRETRAINED_MODEL_IN_EVAL_MODE = RuleIdentity(
    "LL021",
    "pretrained-model-in-eval-mode",
    "A `from_pretrained` model (returned in eval mode) is trained by a hand-written loop that "
    "never calls `.train()`.",
)

ALL_IDENTITIES: tuple[RuleIdentity, ...] = (
    PARSE_ERROR,
    MISSING_ZERO_GRAD,
    OPTIMIZER_IN_LOOP,
    PARTIAL_PARAMETERS,
    SCHEDULER_ORDER,
    GRADIENTS_CLEARED_BEFORE_STEP,
    LOSS_KEEPS_GRAPH,
    GRAD_SCALER_MISUSE,
    CHECKPOINT_WITHOUT_OPTIMIZER_STATE,
    CONSUMED_PARAMETER_GENERATOR,
    ACCUMULATION_CLEARED_EARLY,
    EVAL_MODE_NOT_RESTORED,
    ACTIVATION_BEFORE_LOSS,
    ACCUMULATED_LOSS_NOT_SCALED,
    EVALUATION_WITH_AUTOGRAD,
    DISTRIBUTED_SAMPLING,
    CLIPPING_WITHOUT_EFFECT,
    UNREGISTERED_SUBMODULES,
    PARAMETER_UNREGISTERED_BY_MOVE,
    FUNCTIONAL_DROPOUT_ALWAYS_ON,
    REQUIRES_GRAD_TYPO,
    PRETRAINED_MODEL_IN_EVAL_MODE,
)
