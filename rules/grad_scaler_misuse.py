"""LL007: GradScaler steps that see scaled, unscaled or doubly-applied gradients."""

from __future__ import annotations

from collections.abc import Iterator

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import (
    Assign,
    Backward,
    Clip,
    ScalerCall,
    Site,
    Step,
    display_name,
)
from looplint.analysis.syntax import call_display, dotted_name, source_of
from looplint.identity import GRAD_SCALER_MISUSE
from looplint.rule import Rule, Violation

_ENGINE_WORDS = ("accelerator", "engine", "fabric", "trainer")


def _is_scale_call(node: cst.BaseExpression | None) -> bool:
    return (
        isinstance(node, cst.Call)
        and isinstance(node.func, cst.Attribute)
        and node.func.attr.value == "scale"
    )


def _plain_backward(site: Site, view_sites: list[Site]) -> bool:
    """`loss.backward()` on a tensor that did not go through `scaler.scale(...)`."""
    op = site.op
    assert isinstance(op, Backward)
    if op.scaled or op.node.func.attr.value != "backward":  # type: ignore[attr-defined]
        return False
    receiver = (dotted_name(op.node.func.value) or "").lower()  # type: ignore[attr-defined]
    if any(word in receiver.rsplit(".", 1)[-1] for word in _ENGINE_WORDS):
        return False  # accelerate / DeepSpeed / Fabric scale inside their own backward
    for other in view_sites:
        assign = other.op
        if (
            isinstance(assign, Assign)
            and assign.target == op.tensor
            and isinstance(assign.node, cst.Assign)
            and _is_scale_call(assign.node.value)
        ):
            return False
    return True


class GradScalerMisuse(Rule):
    """
    ## What it does
    In a loop that steps an optimizer through `scaler.step(opt)`, reports:
    - gradients clipped (`clip_grad_norm_`, `clip_grad_value_`) after the
      backward pass and before the step without `scaler.unscale_(opt)` first
      (at the clip);
    - no `scaler.update()` anywhere in the loop (at `scaler.step`);
    - `loss.backward()` on a loss that did not go through `scaler.scale(...)`
      (at the backward);
    - `opt.step()` called directly as well as `scaler.step(opt)` in the same
      iteration (at `opt.step()`); an `if amp: ... else: ...` choice between
      the two is fine.

    A wrapper method that the trainer calls once per step (`backward_and_step(loss)`,
    no loop in sight) is judged on its own sequence; its `update()` may live in
    the caller.

    ## Why is this bad?
    While a `GradScaler` is active the gradients are multiplied by the loss
    scale (65,536 at first). Clipping them unscaled clips at a threshold
    thousands of times too small; without `update()` the scale never adapts,
    so overflows skip every step or underflows lose gradients; an unscaled
    backward feeds `scaler.step` gradients it then divides by the scale; a
    direct `opt.step()` applies scaled gradients as if they were real.

    ## References
    - [Automatic Mixed Precision examples](https://pytorch.org/docs/stable/notes/amp_examples.html)
    """

    identity = GRAD_SCALER_MISUSE
    INVALID = (
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        optimizer = torch.optim.AdamW(model.parameters())
        for x, y in loader:
            optimizer.zero_grad()
            with torch.autocast("cuda"):
                loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # expect: LL007
            scaler.step(optimizer)
            scaler.update()
        """,
        """
        import torch

        scaler = torch.cuda.amp.GradScaler()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        for x, y in loader:
            optimizer.zero_grad()
            scaler.scale(loss_fn(model(x), y)).backward()
            scaler.step(optimizer)  # expect: LL007
        """,
    )
    VALID = (
        """
        import torch

        scaler = torch.amp.GradScaler("cuda")
        optimizer = torch.optim.AdamW(model.parameters())
        for x, y in loader:
            optimizer.zero_grad()
            with torch.autocast("cuda"):
                loss = loss_fn(model(x), y)
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        reported: set[int] = set()
        wrappers: list[tuple[Site, Step, list[Site]]] = []
        updates = False
        for function, sites in facts.all_sites():
            updates |= any(isinstance(s.op, ScalerCall) and s.op.method == "update" for s in sites)
            scaled_steps = [s for s in sites if isinstance(s.op, Step) and s.op.via_scaler]
            if not scaled_steps:
                continue
            views = facts.loop_views(function) if any(s.loop for s in scaled_steps) else {}
            for site in scaled_steps:
                step = site.op
                assert isinstance(step, Step)
                if site.loop is None:
                    # A wrapper the trainer calls once per step (`self.backward_and_step(loss)`),
                    # no loop in sight: its own sequence is judged, after every loop.
                    if any(isinstance(s.op, Backward) for s in sites):
                        wrappers.append((site, step, [s for s in sites if not s.loops]))
                    continue
                view = views[id(site.loop)].sites
                for violation in self._violations(site, step, view):
                    if id(violation.node) not in reported:
                        reported.add(id(violation.node))
                        yield violation
        for site, step, sequence in wrappers:
            for violation in self._violations(site, step, sequence, check_update=not updates):
                if id(violation.node) not in reported:
                    reported.add(id(violation.node))
                    yield violation

    @staticmethod
    def _violations(
        site: Site, step: Step, view: list[Site], check_update: bool = True
    ) -> Iterator[Violation]:
        """What is wrong around one scaled step in `view` (its loop's sites, or a wrapper's
        own sequence). `check_update=False` when `update()` may run in the caller."""
        name = display_name(step.optimizer)
        call = call_display(step.node)
        if check_update and not any(
            isinstance(s.op, ScalerCall) and s.op.method == "update" for s in view
        ):
            yield Violation(
                step.node,
                f"`{call}` runs every iteration but `scaler.update()` is never called, so "
                "the loss scale never adapts; call `scaler.update()` after the step",
            )
        backwards = [s for s in view if isinstance(s.op, Backward) and s.order < site.order]
        last_backward = backwards[-1].order if backwards else -1
        for clip in view:
            if not isinstance(clip.op, Clip):
                continue
            if not last_backward < clip.order < site.order or clip.exclusive_with(site):
                continue
            unscaled = any(
                isinstance(s.op, ScalerCall)
                and s.op.method == "unscale_"
                and s.op.optimizer in (None, step.optimizer)
                and last_backward < s.order < clip.order
                for s in view
            )
            if not unscaled:
                yield Violation(
                    clip.op.node,
                    f"`{source_of(clip.op.node.func)}` clips gradients that are still "
                    f"multiplied by the loss scale; call `scaler.unscale_({name})` first",
                )
        for backward in (s for s in view if isinstance(s.op, Backward)):
            if not backward.exclusive_with(site) and _plain_backward(backward, view):
                yield Violation(
                    backward.op.node,
                    f"`{source_of(backward.op.node)}` runs on the unscaled loss while "
                    f"`{call}` expects scaled gradients; use `scaler.scale(loss).backward()`",
                )
        for other in view:
            direct = other.op
            if (
                isinstance(direct, Step)
                and not direct.via_scaler
                and direct.optimizer == step.optimizer
                and not other.exclusive_with(site)
                and not other.in_closure
            ):
                yield Violation(
                    direct.node,
                    f"`{call_display(direct.node)}` steps `{name}` a second time next to "
                    f"`{call}`, applying gradients that are still scaled; keep only "
                    f"`{call}`",
                )
