"""LL020: `p.require_grad = False` creates an attribute; the parameter stays trainable."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.networks import parameter_element, parameter_lists, tensor_names
from looplint.analysis.program import AssignEvent, all_events
from looplint.analysis.syntax import dotted_name, source_of
from looplint.files.screening import Screen
from looplint.identity import REQUIRES_GRAD_TYPO
from looplint.rule import Fix, Rule, Violation

TYPOS = frozenset(
    {
        "require_grad",
        "require_grads",
        "requires_grads",
        "required_grad",
        "required_grads",
        "requires_gradient",
        "requires_gradients",
        "require_gradient",
        "requries_grad",
        "reqires_grad",
        "requres_grad",
        "requieres_grad",
        "requires_gard",
        "requires_grd",
    }
)
"""Misspellings of `requires_grad` seen in real code and issue trackers."""

_TENSOR_ATTRIBUTES = ("weight", "bias")


def _rename_fix(target: cst.Attribute) -> Callable[[], Fix | None]:
    def build() -> Fix | None:
        return Fix(((target.attr, cst.Name("requires_grad")),))

    return build


class RequiresGradTypo(Rule):
    """
    ## What it does
    Reports an assignment to a misspelt `requires_grad` — `require_grad`,
    `requires_grads`, `required_grad`, … — on a tensor or parameter: a loop
    variable over `model.parameters()` / `named_parameters()` (or over a
    collection named for parameters, `for p in params:`, `for p in
    group["params"]:`), one element of such a collection (`params[i]`,
    `module._parameters[name]`), a layer's `.weight` / `.bias`, an argument
    annotated `Tensor` / `nn.Parameter`, or a name bound to `nn.Parameter(...)`,
    a `torch` tensor or `model.get_parameter(name)` in the same function. The
    same spelling on other objects (a config field, your own class's attribute,
    a dict key) is not reported.

    ## Why is this bad?
    Tensors accept any new attribute, so the typo raises nothing: it creates an
    unused attribute and `requires_grad` keeps its value. The layers meant to be
    frozen are trained anyway (and the optimizer state for them is allocated),
    which changes the result of fine-tuning without a sign.

    ## References
    - [`Tensor.requires_grad`](https://pytorch.org/docs/stable/generated/torch.Tensor.requires_grad.html)
    - [Autograd mechanics: excluding subgraphs](https://pytorch.org/docs/stable/notes/autograd.html)
    """

    identity = REQUIRES_GRAD_TYPO
    screen = Screen(re.compile(r"\.\s*(?:" + "|".join(sorted(TYPOS)) + r")\s*=[^=]"))
    fix_safety = """
        Safe: the misspelt attribute is renamed to `requires_grad`, which is what the
        assignment meant. The parameter is then really frozen (or unfrozen), so an
        optimizer built over it afterwards no longer updates it.
    """
    INVALID = (
        """
        for param in model.backbone.parameters():
            param.require_grad = False  # expect: LL020
        """,
        """
        import torch.nn as nn

        for name, p in model.named_parameters():
            if name.startswith("embeddings"):
                p.requires_grads = False  # expect: LL020
        model.classifier.weight.required_grad = True  # expect: LL020
        scale = nn.Parameter(torch.ones(1))
        scale.require_grad = False  # expect: LL020
        """,
    )
    VALID = (
        """
        for param in model.backbone.parameters():
            param.requires_grad = False
        """,
        """
        class Options:
            def __init__(self, require_grad):
                self.require_grad = require_grad

        settings = {"require_grad": False}
        args.require_grad = True
        """,
    )
    FIXES = (
        (
            """
            for param in model.backbone.parameters():
                param.require_grad = False
            """,
            """
            for param in model.backbone.parameters():
                param.requires_grad = False
            """,
        ),
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        imports = facts.imports
        for function in facts.program.functions:
            tensors = tensor_names(function, imports.qualify)
            lists = parameter_lists(function.events)
            for event in all_events(function.events):
                if not isinstance(event, AssignEvent) or event.augmented:
                    continue
                for target in event.targets:
                    if not (isinstance(target, cst.Attribute) and target.attr.value in TYPOS):
                        continue
                    receiver = source_of(target.value)
                    layer_tensor = (
                        isinstance(target.value, cst.Attribute)
                        and target.value.attr.value in _TENSOR_ATTRIBUTES
                    )
                    if (
                        dotted_name(target.value) not in tensors
                        and not layer_tensor
                        and not parameter_element(target.value, lists)
                    ):
                        continue
                    yield Violation(
                        target,
                        f"`{source_of(target)}` creates a new attribute: `{receiver}` has no "
                        f"`{target.attr.value}`, so its `requires_grad` is unchanged and nothing "
                        "is frozen; spell it `requires_grad`",
                        fix=_rename_fix(target),
                    )
