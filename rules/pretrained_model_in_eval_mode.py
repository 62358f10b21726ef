"""LL021: a `from_pretrained` model (in eval mode) trained without `.train()`."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.networks import passed_bare
from looplint.analysis.operations import Backward, ModeSwitch, Step, display_name
from looplint.analysis.syntax import call_name, source_of
from looplint.identity import PRETRAINED_MODEL_IN_EVAL_MODE
from looplint.rule import Rule, Violation

_KEEPS_MODE = frozenset(
    {
        "prepare",
        "prepare_model",
        "DistributedDataParallel",
        "DataParallel",
        "DDP",
        "FSDP",
        "FullyShardedDataParallel",
        "compile",
        "get_peft_model",
        "accumulate",
        "no_sync",
        "unwrap_model",
        "get_state_dict",
        "save_model",
        "print",
        "len",
        "isinstance",
        "hasattr",
        "type",
        "id",
        "str",
        "repr",
    }
)
"""Calls given the model itself that never switch it to train mode (wrappers keep the
wrapped modules' mode; Accelerate's `prepare`, `accumulate`, `no_sync`, `unwrap_model`,
`get_state_dict` and `save_model` and PEFT's `get_peft_model` do not call `.train()`). Any
other call given the model may, so the rule stays silent."""


def _parameter_base(source: str) -> str:
    for accessor in (".parameters", ".named_parameters"):
        source = source.removesuffix(accessor)
    return source


def _related(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


class PretrainedModelInEvalMode(Rule):
    """
    ## What it does
    Reports the optimizer step of a hand-written training loop (a loop with a
    backward pass and the step) whose optimizer was built over a model loaded
    with `from_pretrained(...)`, when nothing in the module ever calls
    `.train()` on that model — directly, or in a function of the module it is
    passed to. A model handed to code looplint cannot see (Hugging Face's
    `Trainer`, a trainer of another module) is not reported: that code may
    switch it.

    ## Why is this bad?
    Hugging Face's `from_pretrained` returns the model in **eval mode**. A
    hand-written loop that never calls `model.train()` fine-tunes it with
    dropout disabled (and batch-norm frozen, where the model has it): no error,
    but a different, usually worse, model than the paper's recipe or `Trainer`
    would produce.

    ## References
    - [`PreTrainedModel.from_pretrained`](https://huggingface.co/docs/transformers/main_classes/model#transformers.PreTrainedModel.from_pretrained)
    - [Fine-tuning in native PyTorch](https://huggingface.co/docs/transformers/training#train-in-native-pytorch)
    """

    identity = PRETRAINED_MODEL_IN_EVAL_MODE
    INVALID = (
        """
        import torch
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
        for epoch in range(3):
            for batch in train_loader:
                loss = model(**batch).loss
                loss.backward()
                optimizer.step()  # expect: LL021
                optimizer.zero_grad()
        """,
    )
    VALID = (
        """
        import torch
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5)
        model.train()
        for epoch in range(3):
            for batch in train_loader:
                loss = model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
        """,
        """
        from transformers import AutoModelForSequenceClassification, Trainer

        model = AutoModelForSequenceClassification.from_pretrained("bert-base-uncased")
        Trainer(model=model, args=training_args, train_dataset=train_set).train()
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        pretrained = facts.pretrained
        if not pretrained:
            return
        switched = [
            site.op.module
            for _, sites in facts.all_sites()
            for site in sites
            if isinstance(site.op, ModeSwitch) and site.op.training
        ]
        reported: set[tuple[int, int]] = set()
        for _, step, view in facts.in_loops(Step):
            if not any(isinstance(s.op, Backward) for s in view.sites):
                continue
            bases = {_parameter_base(s) for s in facts.table.updates(step.optimizer)}
            for identity, loading in pretrained.items():
                if identity not in bases:
                    continue
                group = {i for i, call in pretrained.items() if call is loading}
                if any(_related(m, i) for m in switched for i in group):
                    continue
                if self._escapes(facts, group):
                    continue
                key = (id(step.node), id(loading))
                if key in reported:
                    continue
                reported.add(key)
                name = display_name(identity)
                yield Violation(
                    step.node,
                    f"`{name}` comes from `{_loader(loading)}(...)`, which returns it in "
                    f"eval mode, and nothing calls `{name}.train()` before this loop trains it, "
                    "so it is fine-tuned with dropout off; call `"
                    f"{name}.train()` before the loop",
                )

    @staticmethod
    def _escapes(facts: ModuleFacts, group: set[str]) -> bool:
        for identity in group:
            for call in passed_bare(facts.program, facts.scopes, identity):
                if call_name(call) not in _KEEPS_MODE and not _is_optimizer_call(facts, call):
                    return True
        return False


def _loader(call: cst.Call) -> str:
    """`AutoModel.from_pretrained` for `AutoModel.from_pretrained(name).to(device)`."""
    current: cst.BaseExpression = call
    while isinstance(current, cst.Call) and isinstance(current.func, cst.Attribute):
        if current.func.attr.value == "from_pretrained":
            return source_of(current.func)
        current = current.func.value
    return source_of(call.func)


def _is_optimizer_call(facts: ModuleFacts, call: cst.Call) -> bool:
    """`create_optimizer_v2(model, ...)` builds an optimizer from a model: no mode change."""
    qualified = facts.imports.qualify(call.func)
    return qualified is not None and qualified.startswith(("timm.optim.", "torch.optim."))
