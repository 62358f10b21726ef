"""How a module feeds data to distributed training: DDP, data loaders and their samplers.

`DistributedDataParallel` only averages gradients; which examples each process sees is
the `DataLoader`'s business (a `DistributedSampler` gives each rank its share, and its
`set_epoch(epoch)` reshuffles them each epoch). These facts are the loaders the module
builds, the samplers it gives them, and whether anything it cannot see (another
module's helper, Accelerate's `prepare`) receives them and may do that work instead.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import libcst as cst

from looplint.analysis.operations import condition_of
from looplint.analysis.program import (
    AssignEvent,
    BranchEvent,
    CallEvent,
    Event,
    FunctionInfo,
    LoopEvent,
    ModuleProgram,
    WithEvent,
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
_LOADERS = frozenset(
    {
        "torch.utils.data.DataLoader",
        "torch.utils.data.dataloader.DataLoader",
        "torch_geometric.loader.DataLoader",
        "torch_geometric.loader.dataloader.DataLoader",
        "torch_geometric.data.DataLoader",
    }
)
"""torch's `DataLoader` and PyG's subclass of it (it takes the same `sampler=`)."""
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
_DISTRIBUTED_FLAG = re.compile(r"distributed|multi_gpu|ddp", re.I)
"""The last name of a flag that says the run is distributed (`if args.distributed:`)."""


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
    distributed_arm: bool = False
    """Built where a distributed flag holds (`if multi_gpu:`, `if args.distributed:`)."""


@dataclass(frozen=True, slots=True)
class SamplerBuild:
    """A `DistributedSampler(...)` construction, bound to `identity` unless built inline."""

    call: cst.Call
    identity: str | None
    shuffles: bool


class Sampling:
    """The distributed-data facts of one module (see the module docstring)."""

    def __init__(
        self,
        program: ModuleProgram,
        scopes: Scopes,
        foreign_loader: Callable[[cst.BaseExpression], bool] = lambda func: False,
    ) -> None:
        self.program = program
        self.scopes = scopes
        self._foreign_loader = foreign_loader
        """Whether a callee is another module's `DataLoader` subclass (`Linker`)."""
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
        self._returned: dict[str, set[str]] = {}
        self._returned_calls: dict[str, list[cst.BaseExpression]] = {}
        self._receivers: dict[str, list[FunctionInfo]] = {}
        for function in program.functions:
            self._visit(function.events, Frame(function, {}), False)

    def _visit(self, events: tuple[Event, ...], frame: Frame, flagged: bool) -> None:
        """Record the calls and assignments of `events`; `flagged` while a distributed
        flag holds (`if args.distributed:` arm)."""
        for event in events:
            if isinstance(event, CallEvent):
                self._call(event.node, frame)
            elif isinstance(event, AssignEvent):
                self._returns(event, frame)
                if len(event.targets) == 1:
                    self._assign(event, frame, flagged)
            elif isinstance(event, (LoopEvent, WithEvent)):
                self._visit(event.body, frame, flagged)
            elif isinstance(event, BranchEvent):
                for index, arm in enumerate(event.arms):
                    self._visit(arm, frame, flagged or _distributed_arm(event, index))

    def _returns(self, event: AssignEvent, frame: Frame) -> None:
        """`train_loader, val_loader = build_loaders()`: what a same-module helper returns in
        each place becomes what the caller's names hold."""
        value = event.value
        if not isinstance(value, cst.Call):
            return
        callee = self.scopes.callee(value, frame)
        if callee is None:
            return
        helper = callee[0]
        inner = Frame(helper, {})
        for returned in helper.returns:
            places: tuple[cst.BaseExpression, ...] = (returned,)
            if len(event.targets) > 1:
                if not isinstance(returned, cst.Tuple):
                    continue
                places = tuple(element.value for element in returned.elements)
                if len(places) != len(event.targets):
                    continue
            for target, place in zip(event.targets, places, strict=False):
                receiver = self.scopes.identity(target, frame)
                if receiver is None:
                    continue
                source = self.scopes.identity(place, inner)
                if source is not None:
                    self._returned.setdefault(receiver, set()).add(source)
                    self._receivers.setdefault(source, []).append(frame.function)
                else:
                    self._returned_calls.setdefault(receiver, []).append(place)

    def _call(self, call: cst.Call, frame: Frame) -> None:
        qualified = self.program.imports.qualify(call.func)
        if qualified in _DDP and frame.function not in self.ddp_functions:
            self.ddp_functions.append(frame.function)
        if call_name(call) == "set_epoch":
            self.sets_epoch = True
        if qualified in _SAMPLERS and not any(s.call is call for s in self.samplers):
            self.samplers.append(SamplerBuild(call, None, _shuffles(call)))
        if qualified in _LOADERS or qualified in _SAMPLERS or self._loader_subclass(call.func):
            return
        if self.scopes.callee(call, frame) is not None or call_name(call) in _READERS:
            return
        for arg in call.args:
            identity = self.scopes.identity(arg.value, frame)
            if identity is not None:
                self._handed.setdefault(identity, []).append(call)

    def _assign(self, event: AssignEvent, frame: Frame, flagged: bool) -> None:
        value = event.value
        identity = self.scopes.identity(event.targets[0], frame)
        if identity is None or value is None:
            return
        self._assigned.setdefault(identity, []).append(value)
        if isinstance(value, cst.IfExp):  # `DistributedSampler(ds) if world > 1 else None`
            for chosen in (value.body, value.orelse):
                if isinstance(chosen, cst.Call) and (
                    self.program.imports.qualify(chosen.func) in _SAMPLERS
                ):
                    self._bind_sampler(chosen, identity)
            return
        if not isinstance(value, cst.Call):
            return
        qualified = self.program.imports.qualify(value.func)
        if qualified in _SAMPLERS:
            self._bind_sampler(value, identity)
        elif qualified in _LOADERS or self._loader_subclass(value.func):
            sampler = keyword_arg(value, "sampler") or keyword_arg(value, "batch_sampler")
            positional = [a for a in value.args if a.keyword is None]
            open_ended = any(a.star for a in value.args) or len(positional) > _SAMPLER_POSITION
            self.loaders.append(
                LoaderBuild(value, identity, frame.function, sampler, open_ended, flagged)
            )

    def _bind_sampler(self, call: cst.Call, identity: str) -> None:
        """`identity = DistributedSampler(...)`: the sampler built inline becomes named."""
        self.samplers = [s for s in self.samplers if s.call is not call]
        self.samplers.append(SamplerBuild(call, identity, _shuffles(call)))

    def _loader_subclass(self, func: cst.BaseExpression) -> bool:
        """`DataLoader(...)` imported from another module of the codebase that subclasses
        torch's (only names ending in `Loader` are looked up: a look-up reads a file)."""
        name = func.attr.value if isinstance(func, cst.Attribute) else getattr(func, "value", "")
        return isinstance(name, str) and name.endswith("Loader") and self._foreign_loader(func)

    # -- queries ------------------------------------------------------------------------------
    def distributed(self, loader: LoaderBuild) -> bool:
        """Whether the function that builds `loader`, or one a helper returns it to, wraps
        a model in DDP (for a method: any method of its class does)."""
        return any(self._distributed_function(f) for f in self._holders(loader))

    def _holders(self, loader: LoaderBuild) -> list[FunctionInfo]:
        """The function that builds `loader` and those its helper returns it to."""
        holders = [loader.function]
        for alias in self.aliases(loader.identity):
            holders += self._receivers.get(alias, [])
        return holders

    def _distributed_function(self, function: FunctionInfo) -> bool:
        owner = function.owner
        if any(
            f is function or (owner is not None and f.owner is owner) for f in self.ddp_functions
        ):
            return True
        # DDP set up elsewhere in the module, and this function works per process
        return bool(self.ddp_functions) and _per_process(function)

    def aliases(self, identity: str) -> set[str]:
        """`identity` and the caller names a helper returns it to, transitively
        (`build_loaders:loader` → `main:train_loader`)."""
        found = {identity}
        pending = [identity]
        while pending:
            current = pending.pop()
            for receiver, sources in self._returned.items():
                if current in sources and receiver not in found:
                    found.add(receiver)
                    pending.append(receiver)
        return found

    def returned(self) -> dict[str, set[str]]:
        """For each name assigned a same-module helper's result, the helper's identities
        returned in that place: flows for `scopes.origins`."""
        return self._returned

    def handed_away(self, identity: str) -> bool:
        """Whether `identity`, or a name a helper returns it to, is given to a call this
        module cannot see into (another module's helper, `accelerator.prepare`), which may
        shard or reshuffle it."""
        return any(self._handed.get(alias) for alias in self.aliases(identity))

    def dataset_sharded(self, loader: LoaderBuild) -> bool:
        """Whether the loader's dataset may already be split per process: its construction,
        or that of the indices it is taken at, mentions ranks or shards (`Subset(ds,
        range(rank, n, world))`, `dataset[idx]` after `idx = idx.split(n)[rank]`,
        `split_dataset_by_node`), or the module defines an `IterableDataset`. Other names
        it is built from are not followed: `device` is computed from the rank too."""
        if self.iterable_datasets:
            return True
        dataset = argument(loader.call, 0, "dataset")
        if dataset is None:
            return True
        frame = Frame(loader.function, {})
        pending: list[cst.BaseExpression] = [dataset]
        seen: set[str] = set()
        for _ in range(_CONSTRUCTION_DEPTH):
            if any(_SHARDING.search(_text(value)) for value in pending):
                return True
            if any(self._drawn_at_random(value, frame) for value in pending):
                return True
            following: list[cst.BaseExpression] = []
            for value in pending:
                for name in (value, *_indices(value)):
                    identity = self.scopes.identity(name, frame)
                    if identity is not None and identity not in seen:
                        seen.add(identity)
                        following += self._assigned.get(identity, [])
            pending = following
        return False

    def _drawn_at_random(self, value: cst.BaseExpression, frame: Frame) -> bool:
        """Whether `value` is synthetic data drawn in each process (`torch.randn(n, d)`,
        or what a same-module helper builds its returned dataset from): every rank then
        holds different samples, so none is seen twice and no sampler is missing."""
        if _draws(value):
            return True
        callee = self.scopes.callee(value, frame) if isinstance(value, cst.Call) else None
        return callee is not None and bool(callee[0].returns) and _draws(callee[0].node)

    def sampler_of(self, loader: LoaderBuild) -> SamplerBuild | None:
        """The `DistributedSampler` the loader is given, if it is one built here."""
        if loader.sampler is None:
            return None
        frame = Frame(loader.function, {})
        identity = self.scopes.identity(loader.sampler, frame)
        built: list[cst.BaseExpression] = [loader.sampler]
        names = {identity} if identity is not None else set()
        if identity is not None:  # `sampler = make_sampler(ds)`: what the helper returns
            names |= self._returned.get(identity, set())
            built += self._returned_calls.get(identity, [])
        if isinstance(loader.sampler, cst.Call):  # `sampler=make_sampler(ds)`
            callee = self.scopes.callee(loader.sampler, frame)
            if callee is not None:
                built += callee[0].returns
                inner = Frame(callee[0], {})
                for returned in callee[0].returns:
                    name = self.scopes.identity(returned, inner)
                    if name is not None:
                        names.add(name)
        for sampler in self.samplers:
            if any(sampler.call is b for b in built) or (
                sampler.identity is not None and sampler.identity in names
            ):
                return sampler
        return None


def _distributed_arm(branch: BranchEvent, index: int) -> bool:
    """Whether arm `index` of an `if`/`else` runs when a distributed flag holds."""
    condition = condition_of(branch.test) if len(branch.arms) <= 2 else None
    if condition is None:
        return False
    name, holds = condition
    last = name.rsplit(".", 1)[-1]
    return (holds if index == 0 else not holds) and (
        last.isidentifier() and _DISTRIBUTED_FLAG.search(last) is not None
    )


_RANDOM_DRAWS = frozenset({"randn", "rand", "randint", "randn_like", "rand_like", "random_"})
"""Tensor factories and methods drawing fresh random values."""


def _draws(node: cst.CSTNode) -> bool:
    """Whether `node` calls one of `_RANDOM_DRAWS` (`torch.randn(...)`, `t.random_(n)`)."""
    return any(
        isinstance(n, cst.Call)
        and isinstance(n.func, (cst.Name, cst.Attribute))
        and (n.func.value if isinstance(n.func, cst.Name) else n.func.attr.value) in _RANDOM_DRAWS
        for n in (node, *descendants(node))
    )


_CONSTRUCTION_DEPTH = 3
"""How many assignments back a dataset's construction is read for sharding words."""
_PROCESS_WORDS = re.compile(r"rank|world_size|distributed", re.I)


def _per_process(function: FunctionInfo) -> bool:
    """Whether a function reads its process's place (`args.local_rank`, `world_size`)."""
    return any(
        isinstance(node, cst.Name) and _PROCESS_WORDS.search(node.value) is not None
        for node in descendants(function.node)
    )


def _indices(value: cst.BaseExpression) -> list[cst.BaseExpression]:
    """The names and attribute chains inside the subscripts of `value`: `train_idx` and
    `subset_idx` in `dataset[train_idx[subset_idx]]` (a name given as the value itself is
    followed by the caller)."""
    found: list[cst.BaseExpression] = []
    for node in (value, *descendants(value)):
        if not isinstance(node, cst.Subscript):
            continue
        for element in node.slice:
            index = element.slice
            if isinstance(index, cst.Index):
                found += [
                    part
                    for part in (index.value, *descendants(index.value))
                    if isinstance(part, (cst.Name, cst.Attribute))
                ]
    return found


def _shuffles(call: cst.Call) -> bool:
    value = argument(call, _SHUFFLE_POSITION, "shuffle")
    return not (isinstance(value, cst.Name) and value.value == "False")


def _text(node: cst.CSTNode) -> str:
    return " ".join(
        n.value for n in (node, *descendants(node)) if isinstance(n, (cst.Name, cst.SimpleString))
    )
