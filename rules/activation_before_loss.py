"""LL012: an activation applied before a loss that applies its own (or expects another)."""

from __future__ import annotations

import re
from collections.abc import Iterator

from looplint.analysis.activation_screen import loss_may_get_wrong_activation
from looplint.analysis.activations import Activation, LossKind
from looplint.analysis.facts import ModuleFacts
from looplint.analysis.syntax import call_display
from looplint.files.screening import Screen
from looplint.identity import ACTIVATION_BEFORE_LOSS
from looplint.rule import Rule, Violation

_WRONG: dict[LossKind, dict[Activation, str]] = {
    LossKind.CROSS_ENTROPY: {
        Activation.SOFTMAX: "applies log-softmax itself: softmax runs twice, the "
        "probabilities are squashed towards uniform and the gradients all but vanish; "
        "pass the logits",
    },
    LossKind.BCE_WITH_LOGITS: {
        Activation.SIGMOID: "applies the sigmoid itself: it runs twice, every input lands "
        "in (0.5, 0.73) and the loss can never reach zero; pass the logits",
        Activation.SOFTMAX: "applies a sigmoid itself, so it squashes probabilities, not "
        "logits; pass the logits",
    },
    LossKind.NLL: {
        Activation.SOFTMAX: "expects log-probabilities: with probabilities it rewards "
        "raising the target's probability linearly and ignores the rest; use "
        "`log_softmax` (or `CrossEntropyLoss` on the logits)",
        Activation.SIGMOID: "expects log-probabilities, not sigmoid outputs; use "
        "`log_softmax` (or `CrossEntropyLoss` on the logits)",
        Activation.LOGITS: "expects log-probabilities: on raw logits it just pushes the "
        "target's logit up without bound; apply `log_softmax` first (or use "
        "`CrossEntropyLoss`)",
    },
    LossKind.BCE: {
        Activation.LOGITS: "expects probabilities in [0, 1]; on raw logits it fails or "
        "trains on clipped values; use `BCEWithLogitsLoss`",
    },
}


_LOSS_WORDS = re.compile(r"cross_entropy|CrossEntropyLoss|nll_loss|NLLLoss|BCE")


class ActivationBeforeLoss(Rule):
    """
    ## What it does
    Traces the input of each loss call back to the activation applied last —
    in the loop, in a helper, or as the last step of the model (`return
    F.softmax(x, 1)` in `forward`, `nn.Softmax` ending an `nn.Sequential`),
    in this module or in the module of the codebase the model class comes
    from — and reports the loss call when the two do not fit:

    - softmax output into `CrossEntropyLoss` / `F.cross_entropy`;
    - sigmoid (or softmax) output into `BCEWithLogitsLoss` /
      `F.binary_cross_entropy_with_logits`;
    - probabilities or raw logits (a final `nn.Linear`) into `NLLLoss` /
      `F.nll_loss`, which expects log-probabilities;
    - raw logits into `BCELoss` / `F.binary_cross_entropy`.

    `log_softmax` into `CrossEntropyLoss` is not reported: log-softmax of
    log-probabilities changes nothing. Only the model's `forward` counts: a
    model that returns logits and applies softmax in `predict()` is fine.
    Where the paths to the loss disagree (softmax only in eval mode) nothing
    is reported.

    ## Why is this bad?
    These losses apply their activation internally for numerical stability.
    Applied twice, the activation squashes its input: gradients shrink, the
    loss plateaus high, and the model trains slowly or not at all — no error,
    only a worse model.

    ## References
    - [`CrossEntropyLoss`](https://pytorch.org/docs/stable/generated/torch.nn.CrossEntropyLoss.html)
    - [`BCEWithLogitsLoss`](https://pytorch.org/docs/stable/generated/torch.nn.BCEWithLogitsLoss.html)
    - [`NLLLoss`](https://pytorch.org/docs/stable/generated/torch.nn.NLLLoss.html)
    """

    identity = ACTIVATION_BEFORE_LOSS
    INVALID = (
        """
        import torch.nn.functional as F

        for x, y in loader:
            probs = F.softmax(model(x), dim=1)
            loss = F.cross_entropy(probs, y)  # expect: LL012
            loss.backward()
        """,
        """
        from torch import nn

        model = nn.Sequential(nn.Linear(784, 10), nn.Softmax(dim=1))
        criterion = nn.CrossEntropyLoss()
        for x, y in loader:
            loss = criterion(model(x), y)  # expect: LL012
            loss.backward()
        """,
    )
    VALID = (
        """
        import torch.nn.functional as F

        for x, y in loader:
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
        """,
    )
    screen = Screen(_LOSS_WORDS, loss_may_get_wrong_activation)

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        for found in facts.loss_inputs:
            problem = _WRONG[found.loss].get(found.origin.activation)
            if problem is None:
                continue
            yield Violation(
                found.call,
                f"`{call_display(found.call)}` gets {found.origin.activation.value} output "
                f"({found.origin.where}), but `{found.loss.value}` {problem}",
            )
