"""What the training-loop objects are called in the libraries people use.

The analysis decides what a call constructs from its qualified name alone, so this
is the one place that knows library spellings.
"""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import libcst as cst


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


UNTRACKED = frozenset(
    {
        "torch.distributed.optim.DistributedOptimizer",
        "torch.distributed.optim.optimizer.DistributedOptimizer",
    }
)
"""Optimizers whose gradients live elsewhere (RPC distributed autograd contexts): no
rule applies to them, whatever their name suggests."""


LAYERS_WITH_BIAS = frozenset(
    {
        "Linear", "Bilinear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
        "ConvTranspose2d", "ConvTranspose3d", "LayerNorm", "GroupNorm", "BatchNorm1d",
        "BatchNorm2d", "BatchNorm3d", "LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConv3d",
    }
)  # fmt: skip
"""torch.nn layers that have a `.bias` unless built with `bias=False`."""


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


# -- spellings recognised wherever they are imported from -----------------------------
# Real code vendors optimizers (`from callback.optimizater.adamw import AdamW`), wraps
# them (`AnalogSGD`, `OpenAIAdam`) or copies `get_linear_schedule_with_warmup` into
# its own package, so well-known *names* count too — but only with the call shape
# that goes with them (parameters passed in, or an optimizer passed to a scheduler).
_OPTIMIZER_CLASS_NAME = re.compile(
    r"^(?:[A-Z]\w*?)?(?:Adam|AdamW|SGD|Lamb|LAMB|Lion|Adafactor|RMSprop|RMSProp|Adagrad|Adadelta"
    r"|Adamax|NAdam|RAdam|LBFGS|Rprop|Ranger|AdaBelief|NovoGrad|Novograd|Shampoo|Muon|Sophia"
    r"|SophiaG|Prodigy|Lookahead|LARS|Lars|AdaBound|AdaMod|Yogi|Apollo|Adan|AdamP|SGDP|QHAdam"
    r"|Optimizer)(?:8bit|32bit|Optimizer|V\d|W)?$"
)
_NOT_OPTIMIZER_CLASS = re.compile(r"Config|Args|Arguments|Params|Wrapper|State|Mixin|^Optimizer$")
_SCHEDULER_CLASS_NAME = re.compile(r"^[A-Z]\w*(?:LR|Scheduler|Schedule|Warmup\w*)$")
_SCHEDULER_FUNCTION_NAME = re.compile(r"^get_\w*schedule\w*$|^create_scheduler\w*$")
OPTIMIZER_NAME = re.compile(r"^(?:\w+_)?(?:optimizer|optim|opt)(?:_\w+)?$|^\w*optimizer\w*$", re.I)
"""A receiver named like an optimizer (`optimizer`, `opt_d`, `g_optim`, `self.policy.optimizer`)."""
SCHEDULER_NAME = re.compile(
    r"^(?:\w+_)?(?:scheduler|sched|lr_sched)(?:_\w+)?$|^\w*_scheduler$", re.I
)
"""A receiver named like an LR scheduler (`scheduler`, `lr_scheduler`, `sched_g`)."""
_NOT_LR_SCHEDULER = re.compile(r"noise|diffusion|ddpm|ddim|sampler|beta|sigma|timestep", re.I)


def named_class_kind(name: str) -> ObjectKind | None:
    """The kind a class of this bare name builds, judged by the name alone (`AdamW`,
    `FusedLAMB`, `WarmupLinearSchedule`); callers also check the call's shape."""
    if _OPTIMIZER_CLASS_NAME.match(name) and not _NOT_OPTIMIZER_CLASS.search(name):
        return ObjectKind.OPTIMIZER
    if (
        _SCHEDULER_CLASS_NAME.match(name) or _SCHEDULER_FUNCTION_NAME.match(name)
    ) and not _NOT_LR_SCHEDULER.search(name):
        return ObjectKind.SCHEDULER
    return None


_OPTIMIZER_MAKER_NAME = re.compile(
    r"^(?!(?:get|create|make|build|is|has|load)_)(?:\w+_)?(?:optimizer|optim|opt)"
    r"_(?:fn|func|constructor)$"
)


def named_optimizer_maker(name: str) -> bool:
    """Whether a callable's name says that calling it builds an optimizer: a function held
    in a variable or config (`config.optimizer_fn(params)`, `actor_opt_fn(...)`); not a
    getter of one (`get_optimizer_fn(name)`). A class-valued `optimizer_cls` is left to
    what it was bound to: transformers' Trainer binds it from a getter, and by name alone
    its optimizer would seem built over parameters other than the model it clears."""
    return _OPTIMIZER_MAKER_NAME.match(name) is not None


_FACTORY_NAME = re.compile(
    r"^_?(?:build|create|make|setup|configure|init|construct|instantiate)_(?:\w+_)?"
    r"(?P<what>optimi[sz]ers?|optim|opt|lr_schedulers?|schedulers?|sched)$"
)


def named_factory_kind(name: str) -> ObjectKind | None:
    """The kind a function named like a factory builds: `build_optimizer`,
    `configure_optimizers`, `_setup_lr_scheduler`, `make_optim`."""
    found = _FACTORY_NAME.match(name)
    if found is None:
        return None
    return ObjectKind.SCHEDULER if "sched" in found.group("what") else ObjectKind.OPTIMIZER


def lr_scheduler_name_ok(name: str) -> bool:
    """Whether a receiver's name is compatible with an LR scheduler (not a noise scheduler)."""
    return _NOT_LR_SCHEDULER.search(name) is None


TUPLE_FACTORIES: dict[str, tuple[ObjectKind | None, ...]] = {
    "deepspeed.initialize": (None, ObjectKind.OPTIMIZER, None, ObjectKind.SCHEDULER),
    "timm.scheduler.create_scheduler": (ObjectKind.SCHEDULER, None),
    "timm.scheduler.create_scheduler_v2": (ObjectKind.SCHEDULER, None),
    "timm.scheduler.scheduler_factory.create_scheduler": (ObjectKind.SCHEDULER, None),
    "timm.scheduler.scheduler_factory.create_scheduler_v2": (ObjectKind.SCHEDULER, None),
}
"""Library functions returning a tuple with tracked objects at fixed positions."""
ENGINE_FACTORIES: dict[str, tuple[int, str]] = {"deepspeed.initialize": (1, "model")}
"""Library functions whose first result is a training engine that steps its own optimizer
(`engine.backward(loss); engine.step()`), with where the model it wraps is passed."""

CONFIG_INSTANTIATORS = frozenset(
    {"hydra.utils.instantiate", "hydra.utils.call", "instantiate", "config.instantiate"}
)
"""Functions building an object from a config node (`instantiate(cfg.optimizer, params)`)."""
PASS_THROUGH_METHODS = frozenset({"prepare", "setup", "setup_optimizers", "prepare_optimizer"})
"""`accelerator.prepare(model, opt, loader, sched)`, Fabric's `setup(model, opt)` and
`setup_optimizers(opt)`: their arguments come back, wrapped, in order."""
OTHER_FRAMEWORKS = frozenset(
    {"mxnet", "tensorflow", "keras", "jax", "flax", "optax", "paddle", "mindspore", "oneflow"}
)
"""Deep-learning frameworks whose optimizers are not torch's: a module that imports one of
them and not torch is never judged by names alone (`trainer.step(batch_size)` in MXNet)."""
PER_BATCH_METHODS = frozenset(
    {
        "training_step", "train_step", "_train_step", "run_batch", "_run_batch",
        "train_batch", "_train_batch", "train_on_batch", "fit_batch", "update", "_update",
        "optimize_model", "update_parameters",
    }
)  # fmt: skip
"""Methods that frameworks and trainer base classes call once per batch."""
LIGHTNING_ACCESSORS = {"optimizers": ObjectKind.OPTIMIZER, "lr_schedulers": ObjectKind.SCHEDULER}
"""`self.optimizers()` / `self.lr_schedulers()` in a LightningModule."""


_STATELESS_OPTIMIZERS = frozenset({"SGD"})


def optimizer_keeps_state(qualified: str, call: cst.Call) -> bool:
    """Whether the optimizer `call` builds keeps state across steps (momentum buffers, Adam's
    moments): all do but plain SGD without momentum (or with a literal `momentum=0`), given
    by keyword or as the third positional argument (`SGD(params, 0.1, 0.9)`)."""
    # Imported here: the catalog is read by warm runs (cached bindings), which never parse.
    import libcst as cst

    from looplint.analysis.syntax import argument, dotted_name

    written = dotted_name(call.func) or ""
    if qualified.rsplit(".", 1)[-1] not in _STATELESS_OPTIMIZERS or not written.endswith("SGD"):
        return True  # a factory's call site does not show the arguments
    momentum = argument(call, 2, "momentum")
    return momentum is not None and not (
        isinstance(momentum, (cst.Integer, cst.Float)) and float(momentum.value) == 0
    )


_GRAD_MODE_SWITCHES = ("no_grad", "inference_mode", "set_grad_enabled")


def switches_grad_mode(context: str) -> bool:
    """Whether a `with` context or decorator (qualified) can turn autograd off:
    `torch.no_grad`, `torch.inference_mode`, `torch.set_grad_enabled(flag)` (whatever
    the flag: what it holds at run time is not known here), and project wrappers named
    after them (YOLO's `smart_inference_mode()`)."""
    last = context.rsplit(".", 1)[-1]
    return any(switch in last for switch in _GRAD_MODE_SWITCHES)
