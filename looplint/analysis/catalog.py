"""What the training-loop objects are called in the libraries people use.

The analysis decides what a call constructs from its qualified name alone, so this
is the one place that knows library spellings.
"""

from __future__ import annotations

import enum


class ObjectKind(enum.Enum):
    """The stateful objects of a training loop whose misuse the rules detect."""

    OPTIMIZER = "optimizer"
    SCHEDULER = "scheduler"
    SCALER = "scaler"


_OPTIMIZER_MODULES = (
    "torch.optim.",
    "bitsandbytes.optim.",
    "apex.optimizers.",
    "torch_optimizer.",
)
_OPTIMIZER_NAMES = frozenset(
    {
        "transformers.AdamW",
        "transformers.Adafactor",
        "transformers.optimization.AdamW",
        "transformers.optimization.Adafactor",
        "lion_pytorch.Lion",
        "torch.distributed.optim.ZeroRedundancyOptimizer",
        "torch.distributed.optim.zero_redundancy_optimizer.ZeroRedundancyOptimizer",
        "torch.distributed.optim.PostLocalSGDOptimizer",
    }
)
_OPTIMIZER_FACTORIES = frozenset(
    {
        "timm.optim.create_optimizer_v2",
        "timm.optim.create_optimizer",
        "timm.optim.optim_factory.create_optimizer_v2",
        "timm.optim.optim_factory.create_optimizer",
    }
)
_NOT_OPTIMIZERS = frozenset({"Optimizer", "LRScheduler", "lr_scheduler", "swa_utils"})
_SCHEDULER_MODULES = ("torch.optim.lr_scheduler.", "torch.optim.swa_utils.SWALR")
_SCHEDULER_FACTORIES = frozenset(
    {
        "diffusers.optimization.get_scheduler",
        "transformers.get_scheduler",
        "transformers.optimization.get_scheduler",
    }
)
_NOT_SCHEDULERS = frozenset({"LRScheduler", "_LRScheduler"})
_SCALERS = frozenset(
    {
        "torch.amp.GradScaler",
        "torch.cuda.amp.GradScaler",
        "torch.cpu.amp.GradScaler",
        "torch.amp.grad_scaler.GradScaler",
        "torch.cuda.amp.grad_scaler.GradScaler",
    }
)
_OPTIMIZER_BASES = frozenset({"torch.optim.Optimizer", "torch.optim.optimizer.Optimizer"})
_SCHEDULER_BASES = frozenset(
    {
        "torch.optim.lr_scheduler.LRScheduler",
        "torch.optim.lr_scheduler._LRScheduler",
        "torch.optim.lr_scheduler.ReduceLROnPlateau",
    }
)

PLATEAU_SCHEDULERS = frozenset({"torch.optim.lr_scheduler.ReduceLROnPlateau"})
PER_BATCH_SCHEDULERS = frozenset(
    {"torch.optim.lr_scheduler.OneCycleLR", "torch.optim.lr_scheduler.CyclicLR"}
)
TORCH_PARAMETERLESS_MODULES = frozenset(
    {
        "ReLU", "ReLU6", "GELU", "SiLU", "Mish", "Tanh", "Sigmoid", "Softmax", "LogSoftmax",
        "Softplus", "LeakyReLU", "ELU", "SELU", "CELU", "Hardswish", "Hardsigmoid", "Hardtanh",
        "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout", "Identity", "Flatten",
        "Unflatten", "MaxPool1d", "MaxPool2d", "MaxPool3d", "AvgPool1d", "AvgPool2d", "AvgPool3d",
        "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AdaptiveAvgPool3d", "AdaptiveMaxPool1d",
        "AdaptiveMaxPool2d", "AdaptiveMaxPool3d", "Upsample", "PixelShuffle", "PixelUnshuffle",
        "CrossEntropyLoss", "MSELoss", "L1Loss", "BCELoss", "BCEWithLogitsLoss", "NLLLoss",
        "SmoothL1Loss", "HuberLoss", "KLDivLoss", "CosineSimilarity", "ZeroPad2d",
    }
)  # fmt: skip


def constructed_kind(qualified: str) -> ObjectKind | None:
    """The kind of object a call of `qualified` builds, if it is one looplint tracks."""
    if qualified in _SCALERS:
        return ObjectKind.SCALER
    if qualified.startswith(_SCHEDULER_MODULES) or qualified in _SCHEDULER_FACTORIES:
        if qualified.rsplit(".", 1)[-1] in _NOT_SCHEDULERS:
            return None
        return ObjectKind.SCHEDULER
    if qualified.startswith(("transformers.get_", "transformers.optimization.get_")):
        return ObjectKind.SCHEDULER if "schedule" in qualified else None
    if qualified in _OPTIMIZER_NAMES or qualified in _OPTIMIZER_FACTORIES:
        return ObjectKind.OPTIMIZER
    if qualified.startswith(_OPTIMIZER_MODULES):
        last = qualified.rsplit(".", 1)[-1]
        if last in _NOT_OPTIMIZERS or not last[:1].isupper():
            return None
        if qualified.count(".") > 2 and qualified.startswith("torch.optim."):
            # torch.optim.adam.Adam is fine; torch.optim.lr_scheduler.X was handled above.
            return ObjectKind.OPTIMIZER if "swa_utils" not in qualified else None
        return ObjectKind.OPTIMIZER
    return None


def takes_model_not_parameters(qualified: str) -> bool:
    """Factories such as timm's `create_optimizer_v2(model, ...)` take the whole model."""
    return qualified in _OPTIMIZER_FACTORIES


def annotated_kind(qualified: str) -> ObjectKind | None:
    """The kind a parameter annotated with `qualified` holds."""
    if qualified in _OPTIMIZER_BASES:
        return ObjectKind.OPTIMIZER
    if qualified in _SCHEDULER_BASES:
        return ObjectKind.SCHEDULER
    if qualified in _SCALERS:
        return ObjectKind.SCALER
    return None
