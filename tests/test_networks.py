"""The network-definition and distributed-data facts, tested directly: which classes are
modules, what their `__init__` stores, which code runs only in training mode, which
identities hold a pretrained model, and which loaders a DDP script builds."""

from __future__ import annotations

import textwrap

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.networks import runs_only_in_training
from looplint.analysis.program import CallEvent, all_events, compile_module


def facts_of(source: str) -> ModuleFacts:
    return ModuleFacts(compile_module(cst.parse_module(textwrap.dedent(source))))


def test_module_classes_through_aliases_and_same_module_bases() -> None:
    facts = facts_of(
        """
        from torch import nn
        import pytorch_lightning as pl
        from ...modeling_utils import PreTrainedModel

        class Base(nn.Module):
            pass

        class Child(Base):
            def __init__(self):
                super().__init__()
                self.a, self.b = nn.Linear(1, 1), nn.ReLU()
                self.pair = [nn.Linear(1, 1) for _ in range(2)]

        class Lit(pl.LightningModule):
            pass

        class Bert(PreTrainedModel):
            pass

        class Config:
            def __init__(self):
                self.layers = [1, 2]
        """
    )
    networks = facts.networks
    assert set(networks.classes) == {"Base", "Child", "Lit", "Bert"}
    stores = {s.attribute: s.value for s in networks.classes["Child"].stores_in("__init__")}
    assert set(stores) == {"a", "b", "pair"}
    assert networks.layer_built(stores["a"]) == "nn.Linear"
    assert networks.layer_built(stores["b"]) is None  # no parameters


def test_dropout_guarded_by_the_mode_or_after_an_early_return() -> None:
    facts = facts_of(
        """
        import torch.nn.functional as F

        def guarded(self, x):
            if self.training and self.p:
                x = F.dropout(x, self.p)
            return x

        def early(self, x):
            if not self.training:
                return x
            return F.dropout(x, 0.1)

        def plain(self, x):
            return F.dropout(x, 0.1)
        """
    )
    expected = {"guarded": True, "early": True, "plain": False}
    for function in facts.program.functions[1:]:
        (call,) = [
            e.node
            for e in all_events(function.events)
            if isinstance(e, CallEvent)
            and getattr(e.node.func, "attr", None) is not None
            and e.node.func.attr.value == "dropout"
        ]
        assert runs_only_in_training(function, call) is expected[function.name]


def test_pretrained_models_follow_aliases_and_helper_parameters() -> None:
    facts = facts_of(
        """
        from transformers import AutoModel, AutoTokenizer

        def fit(net, loader):
            pass

        def main():
            model = AutoModel.from_pretrained("bert").to("cuda")
            alias = model
            fit(alias, None)
            other = Net()
        """
    )
    assert {"main:model", "main:alias", "fit:net"} <= set(facts.pretrained)
    assert "main:other" not in facts.pretrained


def test_loaders_samplers_and_ddp_per_function() -> None:
    facts = facts_of(
        """
        from torch.nn.parallel import DistributedDataParallel as DDP
        from torch.utils.data import DataLoader, DistributedSampler

        def distributed(net, ds, rank):
            model = DDP(net)
            sampler = DistributedSampler(ds, shuffle=False)
            train = DataLoader(ds, sampler=sampler)
            plain = DataLoader(ds, batch_size=4)
            accelerator.prepare(plain)

        def single(ds):
            loader = DataLoader(ds)
        """
    )
    sampling = facts.sampling
    loaders = {loader.identity: loader for loader in sampling.loaders}
    assert sampling.distributed(loaders["distributed:train"])
    assert not sampling.distributed(loaders["single:loader"])
    sampler = sampling.sampler_of(loaders["distributed:train"])
    assert sampler is not None and not sampler.shuffles
    assert sampling.handed_away("distributed:plain")
    assert not sampling.handed_away("distributed:train")
    assert not sampling.sets_epoch
