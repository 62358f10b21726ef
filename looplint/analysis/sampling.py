"""How a module feeds data to distributed training: DDP, data loaders and their samplers.

`DistributedDataParallel` only averages gradients; which examples each process sees is
the `DataLoader`'s business (a `DistributedSampler` gives each rank its share, and its
`set_epoch(epoch)` reshuffles them each epoch). These facts are the loaders the module
builds, the samplers it gives them, and whether anything it cannot see (another
module's helper, Accelerate's `prepare`) receives them and may do that work instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import libcst as cst

from looplint.analysis.program import (
    AssignEvent,
    CallEvent,
    FunctionInfo,
    ModuleProgram,
    all_events,
)
from looplint.analysis.scopes import Frame, Scopes
from looplint.analysis.syntax import argument, call_name, descendants, keyword_arg

_DDP = frozenset(
    {
        "torch.nn.parallel.DistributedDataParallel",
        "torch.nn.parallel.distributed.DistributedDataParallel",
        "apex.parallel.DistributedDataParallel",
        "deepscale.distributed_apex.DistributedDataParallel",
        "deepspeed.initialize",
    }
)
"""Data-parallel wrappers that leave splitting the data to the loader (DeepSpeed's engine
does too, unless given `training_data`: then the loader it returns is the one iterated)."""
_LOADERS = frozenset({"torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader"})
_SAMPLERS = frozenset(
    {
        "torch.utils.data.DistributedSampler",
        "torch.utils.data.distributed.DistributedSampler",
    }
)
_ITERABLE_BASES = frozenset(
    {"torch.utils.data.IterableDataset", "torch.utils.data.dataset.IterableDataset"}
)
_SHARDING = re.compile(r"rank|world|shard|node|replica|iterable|stream|wds|webdataset", re.I)
"""Words in a dataset's construction that say it is split per process already."""
_READERS = frozenset({"len", "enumerate", "tqdm", "iter", "zip", "print", "next", "isinstance"})
"""Calls given a loader or sampler that only read it."""
_SAMPLER_POSITION = 3
_SHUFFLE_POSITION = 3


@dataclass(frozen=True, slots=True)
class LoaderBuild:
    """`identity = DataLoader(dataset, ...)` in `function`."""

    call: cst.Call
    identity: str
    function: FunctionInfo
    sampler: cst.BaseExpression | None
    """The `sampler=` or `batch_sampler=` argument, if any."""
    open_ended: bool
    """`**kwargs` or positional arguments past `shuffle`: a sampler may be among them."""


@dataclass(frozen=True, slots=True)
class SamplerBuild:
    """A `DistributedSampler(...)` construction, bound to `identity` unless built inline."""

    call: cst.Call
    identity: str | None
    shuffles: bool


class Sampling:
    """The distributed-data facts of one module (see the module docstring)."""

    def __init__(self, program: ModuleProgram, scopes: Scopes) -> None:
        self.program = program
        self.scopes = scopes
        imports = program.imports
        self.ddp_functions: list[FunctionInfo] = []
        self.sets_epoch = False
        self.loaders: list[LoaderBuild] = []
        self.samplers: list[SamplerBuild] = []
        self._handed: dict[str, list[cst.Call]] = {}
        self._assigned: dict[str, list[cst.BaseExpression]] = {}
        self.iterable_datasets = any(
            (imports.qualify_name(base) or base) in _ITERABLE_BASES or "Iterable" in base
            for info in program.classes.values()
            for base in info.bases
        )
        for function in program.functions:
            frame = Frame(function, {})
            for event in all_events(function.events):
                if isinstance(event, CallEvent):
                    self._call(event.node, frame)
                elif isinstance(event, AssignEvent) and len(event.targets) == 1:
                    self._assign(event, frame)

    def _call(self, call: cst.Call, frame: Frame) -> None:
        qualified = self.program.imports.qualify(call.func)
        if qualified in _DDP and frame.function not in self.ddp_functions:
            self.ddp_functions.append(frame.function)
        if call_name(call) == "set_epoch":
            self.sets_epoch = True
        if qualified in _SAMPLERS and not any(s.call is call for s in self.samplers):
            self.samplers.append(SamplerBuild(call, None, _shuffles(call)))
        if qualified in _LOADERS or qualified in _SAMPLERS:
            return
        if self.scopes.callee(call, frame) is not None or call_name(call) in _READERS:
            return
        for arg in call.args:
            identity = self.scopes.identity(arg.value, frame)
            if identity is not None:
                self._handed.setdefault(identity, []).append(call)

    def _assign(self, event: AssignEvent, frame: Frame) -> None:
        value = event.value
        identity = self.scopes.identity(event.targets[0], frame)
        if identity is None or value is None:
            return
        self._assigned.setdefault(identity, []).append(value)
        if not isinstance(value, cst.Call):
            return
        qualified = self.program.imports.qualify(value.func)
        if qualified in _SAMPLERS:
            self.samplers = [s for s in self.samplers if s.call is not value]
            self.samplers.append(SamplerBuild(value, identity, _shuffles(value)))
        elif qualified in _LOADERS:
            sampler = keyword_arg(value, "sampler") or keyword_arg(value, "batch_sampler")
            positional = [a for a in value.args if a.keyword is None]
            open_ended = any(a.star for a in value.args) or len(positional) > _SAMPLER_POSITION
            self.loaders.append(LoaderBuild(value, identity, frame.function, sampler, open_ended))

    # -- queries ------------------------------------------------------------------------------
    def distributed(self, loader: LoaderBuild) -> bool:
        """Whether the function that builds `loader` wraps a model in DDP (for a method: any
        method of its class does)."""
        owner = loader.function.owner
        if any(
            f is loader.function or (owner is not None and f.owner is owner)
            for f in self.ddp_functions
        ):
            return True
        # DDP set up elsewhere in the module, and this function works per process
        return bool(self.ddp_functions) and _per_process(loader.function)

    def handed_away(self, identity: str) -> bool:
        """Whether `identity` is given to a call this module cannot see into (another
        module's helper, `accelerator.prepare`), which may shard or reshuffle it."""
        return bool(self._handed.get(identity))

    def dataset_sharded(self, loader: LoaderBuild) -> bool:
        """Whether the loader's dataset may already be split per process: its construction
        mentions ranks or shards (`Subset(ds, range(rank, n, world))`,
        `split_dataset_by_node`), or the module defines an `IterableDataset`."""
        if self.iterable_datasets:
            return True
        dataset = argument(loader.call, 0, "dataset")
        if dataset is None:
            return True
        frame = Frame(loader.function, {})
        values: list[cst.BaseExpression] = [dataset]
        identity = self.scopes.identity(dataset, frame)
        if identity is not None:
            values += self._assigned.get(identity, [])
        return any(_SHARDING.search(_text(value)) for value in values)

    def sampler_of(self, loader: LoaderBuild) -> SamplerBuild | None:
        """The `DistributedSampler` the loader is given, if it is one built here."""
        if loader.sampler is None:
            return None
        identity = self.scopes.identity(loader.sampler, Frame(loader.function, {}))
        for sampler in self.samplers:
            if sampler.call is loader.sampler or (
                identity is not None and sampler.identity == identity
            ):
                return sampler
        return None


_PROCESS_WORDS = re.compile(r"rank|world_size|distributed", re.I)


def _per_process(function: FunctionInfo) -> bool:
    """Whether a function reads its process's place (`args.local_rank`, `world_size`)."""
    return any(
        isinstance(node, cst.Name) and _PROCESS_WORDS.search(node.value) is not None
        for node in descendants(function.node)
    )


def _shuffles(call: cst.Call) -> bool:
    value = argument(call, _SHUFFLE_POSITION, "shuffle")
    return not (isinstance(value, cst.Name) and value.value == "False")


def _text(node: cst.CSTNode) -> str:
    return " ".join(
        n.value for n in (node, *descendants(node)) if isinstance(n, (cst.Name, cst.SimpleString))
    )
