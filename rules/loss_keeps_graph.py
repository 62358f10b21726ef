"""LL006: a running total of loss tensors that keeps every iteration's autograd graph."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import libcst as cst

from looplint.analysis.facts import ModuleFacts
from looplint.analysis.operations import Append, Assign, Backward, Site, display_name
from looplint.analysis.syntax import dotted_name, source_of, with_item
from looplint.identity import LOSS_KEEPS_GRAPH
from looplint.rule import Fix, Rule, Violation

_NO_GRAD = ("no_grad", "inference_mode")


def _refers_to(sources: frozenset[str], tensor: str) -> bool:
    return any(s == tensor or s.startswith(tensor + ".") for s in sources)


def _holds(node: cst.CSTNode, sources: frozenset[str], tensor: str) -> bool:
    """Whether what `node` accumulates holds `tensor`. For an entry of a container
    (`out["loss"]`), that is the container itself or the same entry, not its other
    entries (`out["correct"]` may hold no graph)."""
    container, bracket, key = tensor.partition("[")
    if not bracket:
        return _refers_to(sources, tensor)
    if container not in sources:
        return False
    value = _accumulated(node)
    operands = (value.left, value.right) if isinstance(value, cst.BinaryOperation) else (value,)
    for operand in operands:
        if operand is None:
            continue
        if isinstance(operand, cst.Subscript) and len(operand.slice) == 1:
            index = operand.slice[0].slice
            if isinstance(index, cst.Index) and source_of(index.value) == key.removesuffix("]"):
                return True
        elif dotted_name(operand) == display_name(container):
            return True  # the whole container: `outputs.append(out)`
    return False


def _without_grad(site: Site) -> bool:
    return any(context.rsplit(".", 1)[-1] in _NO_GRAD for context in site.contexts)


def _accumulated(node: cst.CSTNode) -> cst.BaseExpression | None:
    """The expression added to the total: `x` in `t += x`, `t = t + x`, `l.append(x)`."""
    if isinstance(node, cst.AugAssign):
        return node.value
    if isinstance(node, cst.Assign) and isinstance(node.value, cst.BinaryOperation):
        return node.value.right
    if isinstance(node, cst.Call) and node.args:
        return node.args[0].value
    return None


def _item_fix(node: cst.CSTNode, name: str) -> Callable[[], Fix | None]:
    def build() -> Fix | None:
        value = _accumulated(node)
        if value is None:
            return None
        if dotted_name(value) == name:
            return Fix(((value, with_item(value)),))
        if isinstance(value, cst.BinaryOperation):
            for operand in (value.left, value.right):
                if dotted_name(operand) == name:
                    return Fix(((operand, with_item(operand)),))
        return None

    return build


class LossKeepsGraph(Rule):
    """
    ## What it does
    In a loop that runs `loss.backward()`, reports a running total or list of
    that loss tensor which outlives the iteration and is not cut from the
    graph: `total += loss`, `total = total + loss`, `losses.append(loss)`; for
    a loss backpropagated through an entry (`out["loss"].backward()`), keeping
    the container (`outputs.append(out)`) or that entry.
    `loss.item()`, `loss.detach()`, `float(loss)` and `.data` are fine, so is
    anything under `torch.no_grad()`/`torch.inference_mode()`, summing several
    losses within one iteration before a single backward, and a total that the loop
    resets itself (every iteration, or every N steps after logging it): its history
    stays bounded.

    ## Why is this bad?
    The total is a tensor that depends on every iteration's loss, so autograd
    keeps every iteration's graph (activations included) alive. Memory grows
    each batch until the run dies out of memory hours later — the PyTorch FAQ's
    "don't accumulate history across your training loop".

    ## References
    - [PyTorch FAQ: my model reports "cuda runtime error(2): out of memory"](https://pytorch.org/docs/stable/notes/faq.html#my-model-reports-cuda-runtime-error-2-out-of-memory)
    """

    identity = LOSS_KEEPS_GRAPH
    fix_safety = """
        Usually safe. `total += loss` becomes `total += loss.item()` (likewise for
        `append` and `loss * n`), so the total becomes a Python number: code that later
        calls tensor methods on it (`.cpu()`, `.to(...)`) must be adjusted. `.item()`
        waits for the GPU once per iteration. Other shapes get no automatic fix.
        """
    FIXES = (
        (
            """
            import torch

            total = 0.0
            for x, y in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                total += loss * x.size(0)
            """,
            """
            import torch

            total = 0.0
            for x, y in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                total += loss.item() * x.size(0)
            """,
        ),
    )
    INVALID = (
        """
        import torch

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        total_loss = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total_loss += loss  # expect: LL006
        """,
    )
    VALID = (
        """
        import torch

        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        total_loss = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            total_loss += loss.item()
        """,
    )

    def check(self, facts: ModuleFacts) -> Iterator[Violation]:
        for function, sites in facts.all_sites():
            backwards = [s for s in sites if isinstance(s.op, Backward) and s.loop is not None]
            if not backwards:
                continue
            views = facts.loop_views(function)
            reported: set[int] = set()
            for backward in backwards:
                tensor = backward.op.tensor  # type: ignore[union-attr]
                if tensor is None or backward.loop is None:
                    continue
                view = views[id(backward.loop)]
                # A total reset inside the loop, even every N steps (torchtune resets after
                # each accumulated optimizer step), holds a bounded history: not a leak.
                renewed = {
                    s.op.target for s in view.sites if isinstance(s.op, Assign) and s.op.fresh
                }
                # `loss = loss.detach().item()` after the backward: the name holds no graph.
                released = [
                    s.order
                    for s in view.sites
                    if isinstance(s.op, Assign)
                    and s.op.target == tensor
                    and s.op.detached
                    and s.order > backward.order
                ]
                for site in view.sites:
                    op = site.op
                    if id(op.node) in reported or _without_grad(site):
                        continue
                    if any(order < site.order for order in released):
                        continue
                    if isinstance(op, Assign):
                        accumulates = op.augmented or _refers_to(op.sources, op.target)
                        if (
                            not accumulates
                            or op.detached
                            or op.target == tensor
                            or op.target in renewed
                            or not _holds(op.node, op.sources, tensor)
                        ):
                            continue
                        holder = display_name(op.target)
                    elif isinstance(op, Append):
                        if (
                            op.detached
                            or op.container in renewed
                            or not _holds(op.node, op.sources, tensor)
                        ):
                            continue
                        holder = display_name(op.container)
                    else:
                        continue
                    reported.add(id(op.node))
                    name = display_name(tensor)
                    yield Violation(
                        op.node,
                        f"`{source_of(op.node)}` keeps `{name}` with its autograd graph in "
                        f"`{holder}` across iterations, so every iteration's graph stays in "
                        f"memory; accumulate `{name}.item()` (or `{name}.detach()`)",
                        fix=_item_fix(op.node, name),
                    )
