"""LL015: DDP training data not split across ranks, or never reshuffled per epoch."""

from __future__ import annotations

from collections.abc import Iterator

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import Backward, Step, display_name
from looplint.analysis.sampling import LoaderBuild
from looplint.analysis.scopes import argument_flows, origins
from looplint.analysis.syntax import source_of
from looplint.identity import DISTRIBUTED_SAMPLING
from looplint.rule import Rule, Violation


def _training_loaders(facts: ModuleFacts) -> dict[str, bool]:
    """Identities iterated by a loop that runs a backward pass and an optimizer step, each
    with whether such a loop sits inside another (an epoch loop); a helper's parameter
    (`train_one_epoch(loader)`) stands for what its callers pass."""
    flows = argument_flows(facts.program, facts.scopes)
    for receiver, sources in facts.sampling.returned().items():
        flows.setdefault(receiver, set()).update(sources)
    found: dict[str, bool] = {}
    for site, _, view in facts.in_loops(Step):
        if not any(isinstance(s.op, Backward) for s in view.sites):
            continue
        for depth, loop in enumerate(site.loops):
            if loop.iterates is None:
                continue
            for identity in origins(loop.iterates, flows):
                found[identity] = found.get(identity, False) or depth > 0
    return found


class DistributedSampling(Rule):
    """
    ## What it does
    In a module that wraps a model in `DistributedDataParallel`, reports a
    `DataLoader` built without a `sampler` (or `batch_sampler`) whose batches a
    training loop (a loop with a backward pass and an optimizer step) iterates.
    And anywhere, reports a shuffling `DistributedSampler` given to the loader
    of a training loop that runs inside an epoch loop, when nothing in the
    module calls `set_epoch`. Loops in helpers and trainer methods of the module
    count (`train_one_epoch(model, loader)`), and so do loaders and samplers a
    helper builds and returns (`train_loader, val_loader = build_loaders()`);
    PyG's `DataLoader` counts as a `DataLoader`. Not reported: a dataset that is
    already split per process (its construction mentions a rank, shard or
    split, or the module defines an `IterableDataset`), and a loader or sampler
    handed to code looplint cannot see (Accelerate's `prepare`, another
    module's helper), which may do the splitting or call `set_epoch` itself.

    ## Why is this bad?
    DDP averages gradients but does not split data. Without a
    `DistributedSampler`, every process iterates the whole dataset: with
    `shuffle=False` all ranks compute the same batches (N GPUs doing one GPU's
    work), with `shuffle=True` each "epoch" is N epochs of duplicated data.
    A `DistributedSampler` whose `set_epoch(epoch)` is never called seeds its
    shuffle with the same epoch every time, so every epoch visits the data in
    exactly the same order.

    ## References
    - [`DistributedSampler`](https://pytorch.org/docs/stable/data.html#torch.utils.data.distributed.DistributedSampler)
    - [DDP tutorial](https://pytorch.org/tutorials/intermediate/ddp_tutorial.html)
    """

    identity = DISTRIBUTED_SAMPLING
    INVALID = (
        """
        import torch
        from torch.nn.parallel import DistributedDataParallel as DDP
        from torch.utils.data import DataLoader

        model = DDP(Net().cuda(rank), device_ids=[rank])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        loader = DataLoader(train_set, batch_size=64, shuffle=True)  # expect: LL015
        for epoch in range(10):
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """,
        """
        import torch
        from torch.utils.data import DataLoader, DistributedSampler

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        sampler = DistributedSampler(train_set)  # expect: LL015
        loader = DataLoader(train_set, batch_size=64, sampler=sampler)
        for epoch in range(10):
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """,
    )
    VALID = (
        """
        import torch
        from torch.nn.parallel import DistributedDataParallel as DDP
        from torch.utils.data import DataLoader, DistributedSampler

        model = DDP(Net().cuda(rank), device_ids=[rank])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        sampler = DistributedSampler(train_set)
        loader = DataLoader(train_set, batch_size=64, sampler=sampler)
        for epoch in range(10):
            sampler.set_epoch(epoch)
            for x, y in loader:
                optimizer.zero_grad()
                loss_fn(model(x), y).backward()
                optimizer.step()
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        sampling = facts.sampling
        if not sampling.loaders:
            return
        trained = _training_loaders(facts)
        for loader in sampling.loaders:
            if loader.identity not in trained or sampling.handed_away(loader.identity):
                continue
            if loader.sampler is None:
                if self._unsplit(facts, loader):
                    yield Violation(
                        loader.call,
                        f"`{display_name(loader.identity)}` feeds a training loop of a "
                        "`DistributedDataParallel` model without a `DistributedSampler`, so "
                        "every rank iterates the whole dataset (the same batches, or N "
                        "copies of each epoch); pass `sampler=DistributedSampler(dataset)`",
                    )
                continue
            sampler = sampling.sampler_of(loader)
            if (
                sampler is None
                or not sampler.shuffles
                or sampling.sets_epoch
                or not trained[loader.identity]
                or (sampler.identity is not None and sampling.handed_away(sampler.identity))
            ):
                continue
            name = display_name(sampler.identity or f"{loader.identity}.sampler")
            yield Violation(
                sampler.call,
                f"`{source_of(sampler.call)}` shuffles the data of "
                f"`{display_name(loader.identity)}`, but nothing calls "
                f"`{name}.set_epoch(epoch)`, so every epoch sees the same order; call it at "
                "the start of each epoch",
            )

    @staticmethod
    def _unsplit(facts: ModuleFacts, loader: LoaderBuild) -> bool:
        sampling = facts.sampling
        if (
            not sampling.distributed(loader)
            or loader.open_ended
            or sampling.dataset_sharded(loader)
        ):
            return False
        if loader.distributed_arm:
            return True  # `if multi_gpu:` picks this build: other builds serve other runs
        return not any(
            other.identity == loader.identity and other.sampler is not None
            for other in sampling.loaders
        )
