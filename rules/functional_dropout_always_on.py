"""LL019: `F.dropout(x, p)` in a module's code keeps dropping at evaluation time."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterator

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.networks import runs_only_in_training, self_name_of
from looplint.analysis.program import CallEvent, all_events
from looplint.analysis.syntax import keyword_arg, positional_args, source_of
from looplint.files.screening import Glance, Screen, flattened
from looplint.identity import FUNCTIONAL_DROPOUT_ALWAYS_ON
from looplint.rule import Fix, Rule, Violation

DROPOUTS = frozenset(
    {
        "torch.nn.functional.dropout",
        "torch.nn.functional.dropout1d",
        "torch.nn.functional.dropout2d",
        "torch.nn.functional.dropout3d",
    }
)
"""Functional dropouts whose `training` argument (third) defaults to True. (`alpha_dropout`
and `feature_alpha_dropout` default to False: the opposite mistake.)"""
_TRAINING_POSITION = 2
_DROPOUT_NAMES = frozenset(name.rpartition(".")[2] for name in DROPOUTS)
_FUNCTIONAL = "torch.nn.functional"
_FUNCTIONAL_RECEIVERS = frozenset({"F", "functional"})
"""`F.dropout`, `nn.functional.dropout`: the receivers the syntax stage of the screen accepts."""


def _may_drop_always(call: ast.Call, bare_names_imported: bool) -> bool:
    """Whether `call` can be a functional dropout the rule reports: named like one (a bare
    `dropout(x)` only in a module importing from `torch.nn.functional`: elsewhere it is a
    local, such as peft's `dropout = self.lora_dropout[name]`), with no `training`
    argument, no unpacked arguments and at most two positional ones."""
    func = call.func
    if isinstance(func, ast.Attribute):
        receiver = func.value
        last = receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", "")
        if func.attr not in _DROPOUT_NAMES or last not in _FUNCTIONAL_RECEIVERS:
            return False
    elif not (isinstance(func, ast.Name) and func.id in _DROPOUT_NAMES and bare_names_imported):
        return False
    return (
        len(call.args) <= _TRAINING_POSITION
        and not any(isinstance(arg, ast.Starred) for arg in call.args)
        and all(keyword.arg not in ("training", None) for keyword in call.keywords)
    )


class _FunctionalDropoutWords:
    """Stage 1: a call `_may_drop_always` can accept — `F.dropout(x, p)`,
    `nn.functional.dropout2d(x)`, a bare `dropout(x)` — and not `self.dropout(x)`, the
    `nn.Dropout` module call nearly every model file makes, nor a call that already passes
    `training=` (or `**kwargs`, or a third positional argument). The name is found by a
    literal search at C speed; only its few occurrences are read (a bare `dropout(` counts
    in a module importing from `torch.nn.functional`), and a call whose
    arguments hold a string or are not closed in the file is passed on undecided."""

    _CALL = re.compile(r"dropout[123]?d?\s*\(")
    _FUNCTIONAL_RECEIVER = re.compile(r"(?<!\w)(?:F|functional)\s*\.\s*$")
    _KEYWORD = re.compile(r"\s*\w+\s*=(?!=)")
    _IMPORTED = re.compile(r"from\s+torch\.nn\.functional\s+import")

    def search(self, string: str) -> object | None:
        for call in self._CALL.finditer(string):
            if self._named_like_one(string, call.start()) and self._may_omit_training(
                string, call.end()
            ):
                return call
        return None

    def _named_like_one(self, string: str, start: int) -> bool:
        before = string[max(0, start - 64) : start]
        if before[-1:].isidentifier() or before[-1:].isdigit():
            return False  # `my_dropout(`, `self.spatial_dropout(`: another name
        if not before.rstrip().endswith("."):
            # a bare `dropout(`, which can only be torch's when imported from it
            return self._IMPORTED.search(string) is not None
        return self._FUNCTIONAL_RECEIVER.search(before) is not None

    def _may_omit_training(self, string: str, opened: int) -> bool:
        """Whether the arguments after the `(` at `opened` may lack `training`."""
        depth, end = 1, opened
        while depth and end < len(string) and end - opened < 2_000:
            character = string[end]
            if character in "'\"#":
                return True  # a string or comment among the arguments: undecided
            depth += (character in "([{") - (character in ")]}")
            end += 1
        if depth:
            return True
        parts = [part for part in flattened(string[opened : end - 1]).split(",") if part.strip()]
        if any(part.lstrip().startswith("*") for part in parts):
            return False  # unpacked arguments: never reported
        keywords = [part for part in parts if self._KEYWORD.match(part)]
        if any(part.split("=", 1)[0].strip() == "training" for part in keywords):
            return False
        return len(parts) - len(keywords) <= _TRAINING_POSITION


def _dropout_in_a_class(glance: Glance) -> bool:
    """Whether a call the rule could report sits inside a class: the rule only looks at
    the methods of `nn.Module` subclasses (functional dropout in a plain function is fine)."""
    imported = any(node.module == _FUNCTIONAL for node in glance.nodes(ast.ImportFrom))
    calls = [call for call in glance.nodes(ast.Call) if _may_drop_always(call, imported)]
    if not calls:
        return False
    spans = [(c.lineno, c.end_lineno or c.lineno) for c in glance.nodes(ast.ClassDef)]
    return any(first <= call.lineno <= last for call in calls for first, last in spans)


def _training_fix(call: cst.Call, self_name: str) -> Callable[[], Fix | None]:
    def build() -> Fix | None:
        flag = cst.Arg(
            keyword=cst.Name("training"),
            value=cst.Attribute(cst.Name(self_name), cst.Name("training")),
            equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace("")),
        )
        return Fix(((call, call.with_changes(args=(*call.args, flag))),))

    return build


class FunctionalDropoutAlwaysOn(Rule):
    """
    ## What it does
    Reports `F.dropout(x, p)` (also `dropout1d/2d/3d`) called in a method of an
    `nn.Module` subclass — `forward` or a method it uses — without a `training`
    argument. Passing `training=self.training` (or any explicit value, such as
    `training=True` for Monte-Carlo dropout) is fine, so is a call that runs only
    in training mode (under `if self.training:`), the `nn.Dropout` module, and
    functional dropout in plain functions outside a module.

    ## Why is this bad?
    Unlike `nn.Dropout`, the functional form does not look at the module's mode:
    its `training` argument defaults to `True`. `model.eval()` therefore leaves
    it on, and every validation score, test score and prediction is computed
    with activations randomly zeroed — noisy and lower than the model really is,
    with no error raised.

    ## References
    - [`torch.nn.functional.dropout`](https://pytorch.org/docs/stable/generated/torch.nn.functional.dropout.html)
    - [`nn.Dropout`](https://pytorch.org/docs/stable/generated/torch.nn.Dropout.html)
    """

    identity = FUNCTIONAL_DROPOUT_ALWAYS_ON
    screen = Screen(_FunctionalDropoutWords(), _dropout_in_a_class)
    fix_safety = """
        Safe: `training=self.training` is added, so the call drops activations in
        training mode only, as `nn.Dropout` does. Training itself is unchanged;
        evaluation after `model.eval()` becomes deterministic.
    """
    INVALID = (
        """
        import torch.nn as nn
        import torch.nn.functional as F

        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(784, 256)
                self.fc2 = nn.Linear(256, 10)

            def forward(self, x):
                x = F.relu(self.fc1(x))
                x = F.dropout(x, p=0.5)  # expect: LL019
                return self.fc2(x)
        """,
    )
    VALID = (
        """
        import torch.nn as nn
        import torch.nn.functional as F

        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc1 = nn.Linear(784, 256)
                self.fc2 = nn.Linear(256, 10)

            def forward(self, x):
                x = F.relu(self.fc1(x))
                x = F.dropout(x, p=0.5, training=self.training)
                return self.fc2(x)
        """,
        """
        import torch.nn.functional as F

        def augment(x):
            return F.dropout(x, 0.1)
        """,
    )
    FIXES = (
        (
            """
            import torch.nn as nn
            import torch.nn.functional as F

            class Head(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 2)

                def forward(self, x):
                    return self.fc(F.dropout(x, 0.2))
            """,
            """
            import torch.nn as nn
            import torch.nn.functional as F

            class Head(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 2)

                def forward(self, x):
                    return self.fc(F.dropout(x, 0.2, training=self.training))
            """,
        ),
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        networks = facts.networks
        for network in networks.classes.values():
            for method in network.methods:
                self_name = self_name_of(method)
                if self_name is None:
                    continue
                for event in all_events(method.events):
                    if not isinstance(event, CallEvent):
                        continue
                    call = event.node
                    if facts.imports.qualify(call.func) not in DROPOUTS:
                        continue
                    if keyword_arg(call, "training") is not None or any(
                        arg.star for arg in call.args
                    ):
                        continue
                    if len(positional_args(call)) > _TRAINING_POSITION:
                        continue
                    if runs_only_in_training(method, call):
                        continue
                    yield Violation(
                        call,
                        f"`{source_of(call)}` in `{network.info.name}.{method.name}` has no "
                        "`training` argument, so it keeps dropping activations after "
                        f"`.eval()`; pass `training={self_name}.training`",
                        fix=_training_fix(call, self_name),
                    )
